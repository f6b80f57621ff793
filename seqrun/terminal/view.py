"""What a person watching an agent run sees: a tmux window, or ``-s``/``-v``.

The log always gets the agent's bytes unchanged (:class:`~seqrun.terminal.output.OutputSink`);
this module decides what is *shown*. An :class:`AgentView` sits between the
pty and the places output is shown (the task's window, the console):

- ``rendered`` (the default): each line goes to the backend's parser first,
  then to its :class:`~seqrun.backends.base.Renderer`, which reuses the event
  the parser decoded (:attr:`~seqrun.backends.base.LineParser.last_event`),
  so no line is decoded twice. A backend without a renderer (plain-text
  CLIs) is shown as it is, byte for byte, as in ``raw``;
- ``raw``: the agent's bytes as they are (``--window-output raw``).

A window also gets a :class:`Header` first (spec, task, attempt, backend,
model, log) and seqrun's :func:`verdict_line` last, once the verdict is
decided; the console gets neither (the terminal reporter prints its own).
Nothing here raises into the run: a renderer bug shows the raw line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from seqrun.backends.base import NOT_DECODED, Renderer, printable_line
from seqrun.outcome import Outcome, Verdict

__all__ = ["AgentView", "Header", "WINDOW_OUTPUTS", "verdict_line"]

#: The choices of ``--window-output``.
WINDOW_OUTPUTS = ("rendered", "raw")

_BOLD, _RESET = "\x1b[1m", "\x1b[0m"
_COLOURS = {Outcome.PASSED: "\x1b[1;32m", Outcome.HALTED: "\x1b[1;33m", Outcome.RATE_LIMITED: "\x1b[1;33m",
            Outcome.INTERRUPTED: "\x1b[1;33m"}
_FAILED_COLOUR = "\x1b[1;31m"


class Screen(Protocol):
    """Where output is shown: a :class:`~seqrun.terminal.tmux.TaskWindow`, the console."""

    def write(self, data: bytes) -> Any: ...

    def flush(self) -> Any: ...


@dataclass(frozen=True)
class Header:
    """The top of a task's window: which run this is, and where its log is."""

    spec: str
    task_id: str
    title: str
    attempt: int
    backend: str
    model: str | None
    log_path: str

    def text(self) -> str:
        def safe(value: object) -> str:
            return printable_line(" ".join(str(value).split()))

        return "\n".join([
            f"{_BOLD}seqrun · task {safe(self.task_id)}: {safe(self.title)}{_RESET}",
            f"  spec     {safe(self.spec)}",
            f"  attempt  {self.attempt}",
            f"  backend  {safe(self.backend)} · model {safe(self.model or 'default')}",
            f"  log      {safe(self.log_path)}",
            "", "",
        ])


def verdict_line(verdict: Verdict) -> str:
    """seqrun's verdict as one line: ``PASSED``, ``FAILED: <reason>``,
    ``HALTED: <reason>``, ``RATE_LIMITED: <reason>``, ``INTERRUPTED``."""
    name = verdict.outcome.name
    if verdict.outcome in (Outcome.PASSED, Outcome.INTERRUPTED) or not verdict.reason:
        text = name
    else:
        text = f"{name}: {' '.join(verdict.reason.split())}"
    colour = _COLOURS.get(verdict.outcome, _FAILED_COLOUR)
    return f"{colour}{printable_line(text)}{_RESET}"


class AgentView:
    """Shows one agent run on zero or more :class:`Screen` s.

    Give :meth:`on_line` to the pty as its line callback and the view itself
    as its echo: ``on_line`` feeds ``feed`` (the parser's ``feed_line``) and,
    when rendering, shows the rendered lines; :meth:`write` shows the raw
    bytes when not rendering. With no screen at all it only feeds the parser.
    """

    def __init__(
        self,
        feed: Callable[[str], None],
        parser: object,
        renderer: Renderer | None,
        *,
        raw: bool = False,
        screens: tuple[Screen, ...] = (),
    ) -> None:
        self._feed = feed
        self._parser = parser
        self._renderer = None if raw else renderer
        self._screens: list[Screen] = list(screens)

    @property
    def rendering(self) -> bool:
        return self._renderer is not None

    @property
    def showing(self) -> bool:
        """Whether anything is shown anywhere (else the view only feeds the parser)."""
        return bool(self._screens)

    def add_screen(self, screen: Screen) -> None:
        self._screens.append(screen)

    # -- the pty's callbacks ---------------------------------------------------

    def on_line(self, line: str) -> None:
        self._feed(line)
        if self._renderer is None or not self._screens:
            return
        event = getattr(self._parser, "last_event", NOT_DECODED)
        self._show(self._renderer.render(line, event))

    def write(self, data: bytes) -> int:
        """The agent's raw bytes: shown only when not rendering."""
        if self._renderer is None:
            self._send(data)
        return len(data)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        """Show what the renderer held back (the agent has exited)."""
        if self._renderer is not None and self._screens:
            try:
                held = self._renderer.finish()
            except Exception:  # noqa: BLE001 - showing output must never stop a run
                held = []
            self._show(held)

    # -- internals -------------------------------------------------------------

    def _show(self, lines: list[str]) -> None:
        if lines:
            self._send(("\n".join(lines) + "\n").encode("utf-8", "replace"))

    def _send(self, data: bytes) -> None:
        for screen in list(self._screens):
            try:
                screen.write(data)
                screen.flush()
            except (OSError, ValueError):  # a closed terminal: shown nowhere from now on
                self._screens.remove(screen)
