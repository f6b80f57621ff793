"""Text seqrun shows to people: made safe to print, and short.

Anything that came from a tasks file or an agent passes through
:func:`printable` before seqrun prints or stores it for a person, so a title
cannot move the cursor, retitle the terminal or hide lines.

:class:`LazyPattern` is how seqrun's modules keep a regular expression at
module level without compiling it at import: ``seqrun --co -q`` imports
every plugin, and most of their patterns serve only a run.
"""
from __future__ import annotations

import os
import re
from typing import Any

#: The methods a :class:`LazyPattern` binds to its compiled pattern on first use.
_PATTERN_METHODS = ("search", "match", "fullmatch", "sub", "subn", "finditer", "findall", "split")


class LazyPattern:
    """A regular expression compiled on first use, used as the compiled
    pattern is (``PATTERN.search(text)``). The first use binds the compiled
    pattern's methods on the instance, so later calls cost what a compiled
    pattern's do."""

    def __init__(self, pattern: str | bytes, flags: int = 0) -> None:
        self._args = (pattern, flags)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle, repr probes: not the pattern's
            raise AttributeError(name)
        compiled = re.compile(*self._args)
        for method in _PATTERN_METHODS:
            setattr(self, method, getattr(compiled, method))
        return getattr(compiled, name)


_CONTROL = LazyPattern(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI: colours, cursor movement, erasing
    r"|\x1b[ -/]*[0-~]?"  # two-character escapes (reset, charset)
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: str) -> str:
    """``text`` with control characters and escape sequences removed."""
    return _CONTROL.sub("", text.replace("\t", " "))


def oneline(text: str) -> str:
    """:func:`printable` on one line: newlines become spaces."""
    return printable(text.replace("\r\n", " ").replace("\n", " "))


def human_seconds(seconds: float) -> str:
    """``4s``, ``1m05s``, ``2h03m``: how long, for a person."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def read_end(path: str | os.PathLike[str], limit: int) -> tuple[bytes, int] | None:
    """The last ``limit`` bytes of a file and the file's size, or None when
    it cannot be read: a log's tail without reading a night's log whole."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            return f.read(limit), size
    except OSError:
        return None
