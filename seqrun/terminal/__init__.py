"""Running agent processes: in a pty (always), shown in tmux windows (to watch).

:func:`run_in_pty` runs one :class:`~seqrun.backends.base.Invocation` and ends
its whole process tree afterwards; :class:`TmuxSession` runs it the same way
and shows it in a tmux window a person can attach to and type into;
:class:`AgentView` decides what is shown (the rendered stream or the raw
bytes), in a window and on the console.
"""
from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: `seqrun --collect-only` and the reporters need none of
# this, and each module costs start-up time.
_EXPORTS = {
    "MAX_LINE": "output", "LineSplitter": "output", "OutputSink": "output",
    "ProcessTree": "proctree", "kill_tree": "proctree",
    "ProcessResult": "ptyexec", "Started": "ptyexec", "run_in_pty": "ptyexec",
    "TaskWindow": "tmux", "TmuxError": "tmux", "TmuxSession": "tmux", "sanitize_name": "tmux",
    "tmux_available": "tmux",
    "AgentView": "view", "Header": "view", "verdict_line": "view",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
