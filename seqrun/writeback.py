"""Tick tasks in tasks.md: ``[-]`` while a task runs, ``[x]`` when it passes.

Only the one character between the brackets changes, and it is written in
place (one byte at its offset, checked just before): every other byte (line
endings, encoding, ``\\*`` escapes, spacing) stays as it was, and a crash
leaves the old mark or the new one. ``[x]`` and restores are fdatasync'd. The agent may
edit tasks.md while it runs, so the file is re-read before each write and the
task's line is found again by its content, never by its old line number: a
line diff against the file as last seen follows it (see :class:`LineTracker`),
so identical lines of two tasks are never confused. If the line is gone,
nothing is written and a warning says so.

The checkbox of the task being run is seqrun's: ``[-]`` when its agent
starts (if it is ``[ ]`` or ``[-]`` then), ``[x]`` if it passes, back to
``[ ]`` if it fails — even if its own agent ticked it, since the verdict, not
the agent's claim, says whether it is done. Every other byte is the agent's:
a checkbox someone changed since collection (the agent of an earlier task
ticked it) is not taken over. A task found as ``[-]`` (left by a run that was
killed) runs again like ``[ ]`` and goes back to ``[ ]`` if it fails.

Every ``[-]`` seqrun writes is recorded first, with the line as it was and
its index, in ``<specs root>/.seqrun/marks/<spec>.json`` (:class:`MarkLedger`),
until the task's verdict resolves it. So a ``[-]`` the tracker lost (the agent
re-indented the file, or moved its line among identical ones) and one a
killed run left behind are still taken back: at the end of the task, or when
the next run of the spec starts (it holds the spec's lock), the line is found
by that text with ``[-]`` in its checkbox (leading whitespace and the line
ending aside), the nearest to the recorded index if several, and gets its
verdict's mark — or, at a run's start, the mark it had before. A line whose
text was changed otherwise is never touched.

The steps of a heading task (``### Task 3: …`` then ``- [ ] step`` lines,
see seqrun.kiro) are ticked ``[x]`` when the task passes, each one byte in
place and found by the same tracker; a step already ticked, or changed to
another mark, is left as it is. Steps get no ``[-]`` and are not reset when
the task fails: a step the agent ticked on the way is its progress record.

This module is the plugin's light part, its option and its registration; the
writer itself is :mod:`seqrun.checkbox`, imported when a run registers it:
``seqrun --co`` never loads it. Its names stay importable from here.
"""
from __future__ import annotations

import argparse

import pluggy

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("state")
    group.add_argument("--no-mark", dest="mark", action="store_false", default=True,
                       help="do not tick tasks in tasks.md")


@hookimpl
def seqrun_configure(config: Config) -> None:
    if config.option.mark and not config.option.collectonly:
        from seqrun.checkbox import WriteBack

        config.pluginmanager.register(WriteBack(config), "writeback-marker")


#: The writer's names, importable from here as before (see the module docstring).
_CHECKBOX = frozenset({"LineTracker", "set_mark", "RunningMark", "MarkLedger", "WriteBack", "RUNNING_MARK",
                       "find_running_mark", "write_at_running_mark"})


__getattr__ = moved_names(__name__, "seqrun.checkbox", _CHECKBOX)
