"""The interface every agent backend implements.

A backend is three small things: the argv (and environment) that runs the CLI
non-interactively, and an output parser fed the CLI's output line by line that
decides a :class:`~seqrun.outcome.Verdict` when the process has exited.

Output arrives through a pty, so stdout and stderr are merged, lines end in
``\\r\\n`` and non-JSON noise can sit between JSON events: parsers skip what
they do not understand. They keep only what the verdict needs (the last
assistant message, usage, the error seen last), so memory stays bounded however
much the agent prints.

Markers count only in the agent's own final message of a run that ended
without error; never search the raw output (the prompt, which contains the
markers, is echoed by gemini and by every CLI's tool output).

This module is the whole public interface a backend author needs:
:class:`AgentCall` in, :class:`Invocation` out, :class:`LineParser`, the
base of every output parser, and :class:`Renderer`, the base of what turns a
CLI's structured stream into lines a person reads (a tmux window, ``-s``). It cleans each line the pty hands over and makes
sure no exception escapes — a parser bug must cost one verdict, never the
night — and never hides one either: the errors are in the verdict's
``longrepr``, and a verdict they may have made wrong is a ``backend-error``.
It also gives every verdict the CLI's ``session_id``.
"""
from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, Union

from seqrun.outcome import Kind, Outcome, Usage, Verdict

#: Prompts larger than this never go on argv (ARG_MAX is shared with the env).
MAX_ARGV_PROMPT = 100_000

DONE_MARKERS = ("<promise>TASK_DONE</promise>", "<promise>COMPLETE</promise>")
HALT_MARKER = "<promise>HALT</promise>"


@dataclass(frozen=True)
class AgentCall:
    """Everything a backend needs to build one invocation."""

    prompt: str
    prompt_file: Path
    """The prompt, already written to disk (UTF-8)."""
    workdir: Path
    task_id: str
    model: str | None = None
    extra_args: tuple[str, ...] = ()
    options: dict[str, object] = field(default_factory=dict)
    """Backend-specific settings from ``[tool.seqrun.backends.<name>]``."""
    resume_session: str | None = None
    """Continue this CLI session (its own id) instead of starting a fresh one:
    set only for a backend whose ``can_resume`` is true."""
    sandbox: bool = False
    """``--is-sandbox``: the user declared this machine a throwaway sandbox,
    so a CLI that refuses to skip its permission prompts as root may be told
    so (claude: ``IS_SANDBOX=1``)."""


#: Where the agent's stdin comes from: the terminal ("tty", so a person attached
#: in tmux can type), nothing ("null"), or a file (the prompt, for big prompts).
Stdin = Union[str, Path]


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to (not replacing) the inherited environment."""
    cwd: Path | None = None
    stdin: Stdin = "tty"


def executable(call: AgentCall, default: str) -> str:
    """The program to run: ``executable`` in the backend's options (an install
    outside PATH), else the CLI's usual name."""
    value = call.options.get("executable")
    return value if isinstance(value, str) and value else default


#: Session ids a backend can resume, when its class sets none of its own.
ANY_SESSION_ID = re.compile(r"[\w.:-]{1,200}")


def can_resume(backend: object, session_id: str | None) -> bool:
    """Whether ``backend`` can continue CLI session ``session_id`` headless:
    it says so with a ``resume_ids`` pattern the id matches."""
    pattern = getattr(backend, "resume_ids", None)
    return bool(session_id) and pattern is not None and pattern.fullmatch(session_id) is not None


class OutputParser(Protocol):
    def feed_line(self, line: str) -> None:
        """One line of merged output, without its line ending."""

    def finish(self, exit_status: int, *, now: datetime | None = None) -> Verdict:
        """The verdict once the process has exited (``exit_status`` as the shell
        reports it: 128+N for a signal). ``now`` anchors relative reset times."""


class Backend(Protocol):
    """What every backend has. It may also define ``environment_problem(env,
    sandbox) -> str | None``: why its CLI would refuse to run in this
    environment (``env``, ``--is-sandbox``), as one line with the fix; the
    run is then refused before any agent starts (exit 4). A backend whose CLI
    prints a structured stream (JSON lines) defines ``renderer() ->
    Renderer``, so a person watching reads text rather than JSON; without
    one, its output is shown as it is."""

    name: ClassVar[str]
    executable: ClassVar[str]

    def invocation(self, call: AgentCall) -> Invocation: ...

    def parser(self) -> OutputParser: ...


def final_message_verdict(message: str | None, usage: Usage | None = None) -> Verdict:
    """The verdict of a run that ended without error, from its final message."""
    text = message or ""
    if HALT_MARKER in text:
        return Verdict(Outcome.HALTED, "agent asked to halt", message, usage=usage)
    if any(m in text for m in DONE_MARKERS):
        return Verdict(Outcome.PASSED, "", message, usage=usage)
    # The run ended cleanly: the agent simply did not say it was done.
    if not text.strip():
        return Verdict(Outcome.FAILED, "no final message from the agent", message, usage=usage, kind=Kind.NO_MARKER)
    return Verdict(Outcome.FAILED, "no TASK_DONE marker in the final message", message, usage=usage, kind=Kind.NO_MARKER)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text  # per line: the test is cheaper


_JSON = json.JSONDecoder()

#: :attr:`LineParser.last_event` when the parser did not decode the line.
NOT_DECODED: object = type("NotDecoded", (), {"__repr__": lambda self: "NOT_DECODED"})()


def decode_json_line(line: str) -> dict[str, Any] | None:
    """The JSON object on one line of merged pty output, or None.

    Tolerates what a pty does to a JSON-lines stream: ``\\r`` endings, colour
    codes, and stderr text glued in front of an event when the two streams
    interleave without a newline. Only objects count; anything else is noise.
    """
    text = strip_ansi(line).strip()
    start = text.find("{")
    # A few candidate starts are enough: noise is short, events are long.
    for _ in range(4):
        if start < 0:
            return None
        try:
            obj, _end = _JSON.raw_decode(text, start)
        except ValueError:
            start = text.find('{"', start + 1)
            continue
        return obj if isinstance(obj, dict) else None
    return None


# -- the parser base class ----------------------------------------------------


def aware_now(now: datetime | None) -> datetime:
    """``now`` as an aware datetime; a naive one is local time."""
    if now is None:
        return datetime.now().astimezone()
    return now if now.tzinfo is not None else now.astimezone()


def clean_line(line: str) -> str:
    """A pty line as a person would read it: no line ending, no colour codes,
    and only what the last carriage return left visible (spinners redraw a
    line with ``\\r``)."""
    text = line.rstrip("\r\n")
    if "\r" in text:
        tail = text.rsplit("\r", 1)[1]
        text = tail if tail.strip() else text.replace("\r", "")
    return strip_ansi(text)


def one_line(text: str, limit: int = 300) -> str:
    """A reason-sized version of an error text."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


#: How many parse errors a parser keeps: the first ones say what broke, the
#: rest are usually the same error again.
MAX_PARSE_ERRORS = 5

#: Outcomes a parse error cannot have made wrong: each needs a signal the
#: parser did read (a marker in the final message, the CLI's limit error).
_TRUSTED_OUTCOMES = frozenset({Outcome.PASSED, Outcome.HALTED, Outcome.RATE_LIMITED})


class LineParser:
    """Base class of the output parsers.

    Subclasses implement :meth:`_feed` (one cleaned line, plus the raw one for
    the rare parser that needs colour codes as structure) and :meth:`_finish`,
    and set :attr:`session_id` when the CLI's output names its session.
    """

    #: The CLI's own session id, the first one its output named.
    session_id: str | None = None
    #: What the CLI prints when the session an attempt resumes is gone.
    session_gone: ClassVar[re.Pattern[str] | None] = None
    #: Set by the runner when this attempt resumes a session.
    resuming: bool = False
    saw_session_gone: bool = False
    #: How many parse errors were not kept (beyond :data:`MAX_PARSE_ERRORS`).
    parse_errors_dropped: int = 0
    #: The JSON object the line just fed held (None: none), or
    #: :data:`NOT_DECODED` when the parser did not look. A
    #: :class:`Renderer` shown the same line uses it instead of decoding the
    #: line a second time.
    last_event: dict[str, Any] | None | object = NOT_DECODED
    parse_errors: list[str]
    """What :meth:`_feed` raised, as "TypeError: … (line '…' at claude.py:87)"."""

    def __new__(cls, *args: object, **kwargs: object) -> LineParser:
        # Here, not in __init__: a subclass (a plugin's too) need not call
        # super().__init__() for its parser to work.
        self = super().__new__(cls)
        self.parse_errors = []
        return self

    def feed_line(self, line: str) -> None:
        self.last_event = NOT_DECODED
        try:
            text = clean_line(line)
            if self.resuming and self.session_gone is not None and self.session_gone.search(text):
                self.saw_session_gone = True
            self._feed(text, line.rstrip("\r\n"))
        except Exception as exc:  # noqa: BLE001 - a malformed line must never stop a run
            self._parse_error(exc, line)

    def _parse_error(self, exc: Exception, line: str) -> None:
        """Keep what went wrong, never raising: this runs inside ``except``.

        The line is named by its start, not its number: counting lines would
        cost every line, and an error is rare.
        """
        if len(self.parse_errors) >= MAX_PARSE_ERRORS:
            self.parse_errors_dropped += 1
            return
        try:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            at = f" at {Path(where.filename).name}:{where.lineno}"
        except Exception:  # noqa: BLE001
            at = ""
        try:
            self.parse_errors.append(f"{describe(exc)} (line {one_line(clean_line(line), 80)!r}{at})")
        except Exception:  # noqa: BLE001 - an unprintable line or exception
            self.parse_errors.append(f"{type(exc).__name__}{at}")

    def finish(self, exit_status: int, now: datetime | None = None) -> Verdict:
        try:
            verdict = self._finish(exit_status, aware_now(now))
        except Exception as exc:  # noqa: BLE001 - same: report, don't raise
            verdict = Verdict(
                Outcome.FAILED,
                f"could not read the agent output: {describe(exc)}",
                kind=Kind.BACKEND_ERROR,
                longrepr="".join(traceback.format_exception(exc))[-4000:],
            )
        if not isinstance(verdict, Verdict):  # a plugin's parser bug: still one verdict, not a crash
            verdict = Verdict(Outcome.FAILED, f"the output parser returned {type(verdict).__name__}, not a Verdict",
                              kind=Kind.BACKEND_ERROR)
        if self.parse_errors:
            verdict = self._with_parse_errors(verdict)
        if self.saw_session_gone and not verdict.passed:
            verdict = replace(verdict, outcome=Outcome.FAILED, kind=Kind.SESSION_GONE,
                              reason=f"the CLI session to resume is gone ({verdict.reason or 'no reason given'})")
        if verdict.session_id is None and self.session_id:
            verdict = replace(verdict, session_id=self.session_id)
        return verdict

    def _with_parse_errors(self, verdict: Verdict) -> Verdict:
        """The verdict with the parse errors in its ``longrepr``; a BACKEND_ERROR
        unless its outcome rests on something the parser did read."""
        lines = ["the parser could not read some of the agent output:", *(f"  {e}" for e in self.parse_errors)]
        if self.parse_errors_dropped:
            lines.append(f"  … and {self.parse_errors_dropped} more")
        text = "\n".join(lines)
        longrepr = f"{verdict.longrepr}\n\n{text}" if verdict.longrepr else text
        if verdict.outcome in _TRUSTED_OUTCOMES or verdict.kind is Kind.QUOTA:
            # Read from what the parser did understand (a marker, a limit, a billing error).
            return replace(verdict, longrepr=longrepr)
        return replace(verdict, kind=Kind.BACKEND_ERROR, longrepr=longrepr)

    def _decode(self, text: str) -> dict[str, Any] | None:
        """:func:`decode_json_line`, remembered as :attr:`last_event`."""
        event = self.last_event = decode_json_line(text)
        return event

    def _feed(self, text: str, raw: str) -> None:
        raise NotImplementedError

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        raise NotImplementedError


def describe(exc: BaseException) -> str:
    """"TypeError: message", on one line (never raising: it runs in ``except``)."""
    try:
        text = one_line(str(exc), 200)
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_failure(exit_status: int, message: str | None = None, usage: Usage | None = None) -> Verdict:
    """A run whose process failed: whatever the message says, it did not end cleanly."""
    return Verdict(Outcome.FAILED, f"exit status {exit_status}", message, usage=usage)


# -- rendering: what a person watching reads ------------------------------------------

#: Lines of a tool's output shown before ``… (N more lines)``.
RESULT_LINES = 4
#: Longest argument summary on a tool-call line.
SUMMARY_CHARS = 160

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable_line(text: str) -> str:
    """``text`` safe to write to a terminal: no colour codes, no control
    characters (JSON can carry an escaped ESC that decoding makes real)."""
    text = strip_ansi(text).replace("\t", "    ")
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


def text_lines(text: str, indent: str = "") -> list[str]:
    """A message as lines, trailing blank lines dropped."""
    lines = [indent + printable_line(line) for line in text.rstrip().split("\n")]
    return lines if text.strip() else []


def tool_line(name: str, summary: str = "", *, edit: bool = False) -> str:
    """``▶ Bash  npm test``; ``✎ Edit  src/app.py`` for a tool that changes files."""
    mark = "✎" if edit else "▶"
    summary = one_line(printable_line(summary), SUMMARY_CHARS)
    return f"{mark} {printable_line(name) or 'tool'}  {summary}".rstrip()


def result_lines(text: str, limit: int = RESULT_LINES, indent: str = "  ") -> list[str]:
    """A tool's output, abbreviated: its first ``limit`` lines, then ``… (N more lines)``."""
    lines = text.rstrip().split("\n") if text.strip() else []
    shown = [indent + one_line(printable_line(line), 2 * SUMMARY_CHARS) if line.strip() else indent.rstrip()
             for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"{indent}… ({len(lines) - limit} more lines)")
    return shown


#: Argument names that say what a tool call is about, most telling first.
SUMMARY_KEYS = ("command", "cmd", "file_path", "absolute_path", "notebook_path", "filePath", "pattern", "path",
                "query", "url", "description", "prompt")


def arg_summary(args: object, keys: tuple[str, ...] = SUMMARY_KEYS) -> str:
    """The argument a person wants to see of a tool call (its command, its file…)."""
    if isinstance(args, str):
        return args
    if not isinstance(args, dict):
        return ""
    for key in keys:
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            if key == "pattern" and isinstance(args.get("path"), str) and args["path"]:
                return f"{value} in {args['path']}"
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return " ".join(value)
    for value in args.values():
        if isinstance(value, str) and value.strip():
            return value
    return ""


class Renderer:
    """Base class of what turns a CLI's output, line by line, into what a
    person watching reads: the assistant's text, one line per tool call
    (:func:`tool_line`), abbreviated tool output (:func:`result_lines`),
    errors and rate-limit notices.

    Subclasses implement :meth:`_event` for one decoded JSON event. Lines
    that are not JSON are shown as they are, and an event :meth:`_event`
    does not know (it returns None) shows as ``· <type>``: nothing the CLI
    printed disappears without a trace. :meth:`render` never raises: a bug
    here shows the line as it is and costs nothing else.
    """

    def render(self, line: str, event: object = NOT_DECODED) -> list[str]:
        """The lines to show for one line of output. ``event`` is what the
        parser decoded from it (:attr:`LineParser.last_event`), if it did."""
        try:
            text = clean_line(line)
            if event is NOT_DECODED:
                event = decode_json_line(text)
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                return [*self.finish(), printable_line(text)]  # not an event of the stream
            shown = self._event(event)
            if shown is None:
                subtype = event.get("subtype")
                name = f"{event['type']}/{subtype}" if isinstance(subtype, str) and subtype else event["type"]
                shown = [f"· {printable_line(name)}"]
            return shown
        except Exception:  # noqa: BLE001 - showing output must never stop a run
            return [printable_line(clean_line(line))]

    def finish(self) -> list[str]:
        """Lines held back (a message still arriving in pieces), at the end
        of the stream or before a line that is not part of it."""
        return []

    def _event(self, event: dict[str, Any]) -> list[str] | None:
        """The lines for one event; [] to show nothing; None if unknown."""
        return None
