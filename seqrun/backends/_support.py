"""Small helpers the built-in backends share: bounded text (:func:`clip`,
:class:`TailLines`), JSON value coercion, and the invocation builders (where a
prompt may go, the executable). The public interface a backend implements is
in :mod:`seqrun.backends.base`; reset-time arithmetic is in
:mod:`seqrun.backends._resets`.
"""
from __future__ import annotations

from pathlib import Path

from seqrun.backends.base import MAX_ARGV_PROMPT

#: Longest text a parser keeps (a final message, an error). The tail is kept:
#: that is where the marker is.
MAX_KEPT_CHARS = 1_000_000


def clip(text: str, limit: int = MAX_KEPT_CHARS) -> str:
    return text if len(text) <= limit else text[-limit:]


class TailLines:
    """The last lines of a block of text, within :data:`MAX_KEPT_CHARS`: an
    agent may print without end, a parser keeps a bounded tail.

    Called for every line of output: old lines are dropped in batches (when
    twice the limit is held), not one by one.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.chars = 0

    def append(self, line: str) -> None:
        if len(line) > MAX_KEPT_CHARS:
            line = line[-MAX_KEPT_CHARS:]
        self.lines.append(line)
        self.chars += len(line) + 1
        if self.chars > 2 * MAX_KEPT_CHARS:
            self._trim()

    def _trim(self) -> None:
        drop, chars = 0, self.chars
        while chars > MAX_KEPT_CHARS and drop < len(self.lines) - 1:
            chars -= len(self.lines[drop]) + 1
            drop += 1
        del self.lines[:drop]
        self.chars = chars

    def drop_last(self, count: int) -> None:
        for _ in range(min(count, len(self.lines))):
            self.chars -= len(self.lines.pop()) + 1

    def clear(self) -> None:
        self.lines.clear()
        self.chars = 0

    def text(self) -> str:
        self._trim()
        return "\n".join(self.lines)

    def __len__(self) -> int:
        return len(self.lines)


def as_int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def as_float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


# -- invocations --------------------------------------------------------------


def fits_on_argv(prompt: str) -> bool:
    """Whether the prompt may be one argv element.

    Not when it is large (ARG_MAX is shared with the environment), holds a NUL
    (argv cannot), or starts with ``-`` (the CLI would read it as an option).
    """
    return len(prompt.encode("utf-8", "surrogatepass")) <= MAX_ARGV_PROMPT and "\0" not in prompt and not prompt.startswith("-")


def pointer_prompt(prompt_file: Path) -> str:
    """What goes on argv instead of a prompt too large for it."""
    return (
        f"Your task is written in the file {prompt_file} (it is also on standard input when "
        "the tool reads it). Read the whole file first and follow it exactly, including how to "
        "end your final message."
    )
