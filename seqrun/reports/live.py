"""The terminal reporter's live area: what runs now, what is waited for.

:class:`LiveStatus` holds what the area shows — the running attempt
(:class:`Running`: node id, title, backend, attempt, elapsed time, why the
previous attempt did not pass, the last line of its output read from the tail
of its log, the ``tmux attach`` hint) and the countdown of a ``--delay`` or
rate-limit wait (:class:`Waiting`). :class:`LiveView` draws it under the
output lines with a transient :class:`rich.live.Live`.

:mod:`seqrun.reports.terminal` imports this module when the first task
starts: ``seqrun --co`` never loads it, and :mod:`rich` is imported only when
a :class:`LiveView` is made. Every text shown is already
:func:`~seqrun.text.printable`.
"""
from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqrun.text import human_seconds, printable

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_TAIL_BYTES = 65536


@dataclass(frozen=True)
class Running:
    """The agent run in progress (one attempt)."""

    nodeid: str
    title: str
    backend: str
    attempt: int
    started: float
    log_path: Path | None
    log_start: int = 0
    """Size of the log when the attempt started: logs are appended to."""
    position: str = ""
    """``[3/10]``: how far the run is."""
    previous: str = ""
    """Why the attempt this one follows did not pass (a rerun), printable, one line."""


@dataclass(frozen=True)
class Waiting:
    """A ``--delay`` or rate-limit sleep: the countdown's deadline and why."""

    deadline: float
    reason: str
    kind: str = "delay"
    """``delay`` or ``rate-limit``."""


class LiveStatus:
    """What the live area shows. Hooks replace its immutable fields in the
    main thread; rich's refresh thread only reads them (:meth:`rows`)."""

    def __init__(self, tmux_session: Callable[[], str | None] = lambda: None) -> None:
        self.running: Running | None = None
        self.waiting: Waiting | None = None
        self.upcoming: tuple[str, str] | None = None
        """(node id, title) of the task about to start, shown during a delay."""
        self.tmux_session = tmux_session
        """The tmux session agents run in, asked each frame: the runner names
        it when its first agent starts, after ``seqrun_runtest_attempt``."""

    def rows(self, now: float) -> list[tuple[str, str]]:
        """The live area as ``(text, style)`` rows, every text already printable."""
        rows: list[tuple[str, str]] = []
        frame = _SPINNER[int(now * 8) % len(_SPINNER)]
        running, waiting = self.running, self.waiting
        if running is not None:
            head = f"{frame} {running.position + ' ' if running.position else ''}{running.nodeid}"
            rows.append((f"{head} {running.title}", "bold"))
            rows.append((f"  {running.backend} · attempt {running.attempt} · "
                         f"{human_seconds(now - running.started)}", "cyan"))
            if running.previous:
                rows.append((f"  {running.previous}", "yellow"))
            last = last_output_line(running.log_path, running.log_start) if running.log_path else ""
            if last:
                rows.append((f"  > {last}", "dim"))
            tmux = self.tmux_session()
            if tmux:
                from seqrun.terminal.tmux import watch_command

                rows.append((f"  watch: {watch_command(printable(tmux))}", "dim"))
        if waiting is not None:
            left = human_seconds(math.ceil(max(0.0, waiting.deadline - now)))
            if waiting.kind == "rate-limit":
                text = f"{waiting.reason} - retry in {left}"
            elif running is not None:
                text = f"next attempt in {left} ({waiting.reason})"
            else:
                text = f"next task in {left} ({waiting.reason})"
            rows.append((f"{frame} {text}" if running is None else f"  {text}", "yellow"))
            if running is None and self.upcoming is not None:
                rows.append((f"  up next: {self.upcoming[0]} {self.upcoming[1]}", "dim"))
        return rows


def last_output_line(path: Path, start: int = 0) -> str:
    """The last line with something to read in the tail of a log, control
    characters removed; only bytes from offset ``start`` on count (logs are
    appended to: what is before is an earlier run's).

    Carriage returns end a line too: a progress bar redrawn in place shows its
    latest state. A JSON event line shows as its text (:func:`describe_json_line`);
    an event with no text (a tool result) leaves the previous one shown.
    """
    try:
        with open(path, "rb") as log:
            size = os.fstat(log.fileno()).st_size
            offset = max(start, size - _TAIL_BYTES)
            log.seek(offset)
            data = log.read(_TAIL_BYTES)
    except OSError:
        return ""
    lines = re.split(r"[\r\n]+", data.decode("utf-8", "replace"))
    if offset > start and len(lines) > 1:
        del lines[0]  # the end of a line cut by the window
    fallback = ""
    for line in reversed(lines):
        text = printable(line).strip()
        if not text:
            continue
        event = describe_json_line(text)
        if event is None:
            return text
        label, said = event
        if said:
            return f"[{label}] {said}"
        fallback = fallback or f"[{label}]"
    return fallback


#: Keys whose string values are what a person wants to see of a JSON event.
_TEXT_KEYS = frozenset({"text", "result", "command", "description", "message"})


def describe_json_line(line: str) -> tuple[str, str] | None:
    """``("assistant", "I'll add the greeting")`` for one event of a CLI's
    JSON stream (claude, codex, gemini and opencode print one per line): its
    type and its last text ("" when it has none), or None when ``line`` is not
    a JSON object."""
    if not line.startswith("{"):
        return None
    import json

    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    texts: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _TEXT_KEYS and isinstance(value, str) and value.strip():
                    texts.append(value)
                else:
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)

    walk(event, 0)
    kind = event.get("type") or event.get("event")
    label = printable(kind) if isinstance(kind, str) and kind else "event"
    return label, " ".join(printable(texts[-1]).split()) if texts else ""


class LiveView:
    """A transient :class:`rich.live.Live` drawing a :class:`LiveStatus`."""

    def __init__(self, console: Any, status: LiveStatus) -> None:
        from rich.live import Live

        self.status = status
        self.live = Live(console=console, transient=True, refresh_per_second=4,
                         get_renderable=self.render, redirect_stdout=True, redirect_stderr=True)

    def render(self) -> Any:
        """Called by rich's refresh thread: never raise there."""
        from rich.console import Group
        from rich.text import Text

        try:
            rows = self.status.rows(time.monotonic())
        except Exception:  # noqa: BLE001 - a broken frame must not kill the refresh thread
            rows = []
        return Group(*(Text(text, style=style, no_wrap=True, overflow="ellipsis")
                       for text, style in rows))

    def start(self) -> None:
        self.live.start(refresh=True)

    def refresh(self) -> None:
        """Redraw now (the status changed): lines printed next are followed
        by the new area, not by the previous frame."""
        if self.live.is_started:
            self.live.refresh()

    def stop(self) -> None:
        """Erase the area and give the terminal back (cursor, stdout)."""
        if self.live.is_started:
            self.live.stop()
