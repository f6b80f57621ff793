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
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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


class OutputParser(Protocol):
    def feed_line(self, line: str) -> None:
        """One line of merged output, without its line ending."""

    def finish(self, exit_status: int, *, now: datetime | None = None) -> Verdict:
        """The verdict once the process has exited (``exit_status`` as the shell
        reports it: 128+N for a signal). ``now`` anchors relative reset times."""


class Backend(Protocol):
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
