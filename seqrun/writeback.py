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
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pluggy

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, TaskKind, Warning_
from seqrun.outcome import Kind, Outcome, Skipped, TaskReport
from seqrun.runner import runstate

if TYPE_CHECKING:
    from seqrun.main import Session

_MARK = re.compile(rb"\[[ xX~/-]\]")
RUNNING_MARK = "-"


def _line_key(line: bytes) -> bytes | None:
    """The line with its checkbox mark blanked and without its line ending:
    what identifies a task line whatever its mark."""
    m = _MARK.search(line)
    if not m:
        return None
    return line[: m.start() + 1] + b"?" + line[m.start() + 2:].rstrip(b"\r\n")


def _diff_key(line: bytes) -> bytes:
    """A line as compared between two versions of the file: marks blanked
    (ticking is not an edit) and line endings dropped (nor is converting them)."""
    key = _line_key(line)
    return key if key is not None else line.rstrip(b"\r\n")


class LineTracker:
    """Follows the task lines of one tasks file through other people's edits.

    It keeps the file as last seen (each line as :func:`_diff_key`) and where
    each task's line is in it. When the file has changed, a line diff between
    that version and the current one carries each task to its new place: lines
    added or removed above it move it, an edited or deleted line loses it. A
    line the diff cannot place (moved elsewhere) is still found if its content
    is unique, before and now; otherwise it is reported gone rather than risk
    ticking an identical line of another task.
    """

    def __init__(self, data: bytes, tasks: Iterable[Task]) -> None:
        lines = data.splitlines(keepends=True)
        self.seen = data
        """The file's bytes when last looked at (or last written by us)."""
        self.keys = [_diff_key(line) for line in lines]
        self.task_key: dict[Task, bytes] = {}  # its line's key
        self.index: dict[Task, int | None] = {}  # its line's index now
        for task in tasks:
            index = task.line - 1
            if 0 <= index < len(lines) and _MARK.search(lines[index]):
                self.task_key[task] = self.keys[index]
                self.index[task] = index

    def __contains__(self, task: Task) -> bool:
        return task in self.task_key

    def locate(self, task: Task, lines: list[bytes]) -> int | None:
        """The index of ``task``'s line in ``lines`` (the file now), or None."""
        key = self.task_key.get(task)
        if key is None:
            return None
        data = b"".join(lines)
        if data != self.seen:
            # Someone else edited the file: re-key it (the common case, an
            # unchanged file, costs one bytes comparison, not a pass in Python).
            keys = [_diff_key(line) for line in lines]
            if keys != self.keys:
                self._follow(keys)
            self.seen = data
        index = self.index.get(task)
        if index is not None:
            return index
        now = [i for i, k in enumerate(self.keys) if k == key]
        if len(now) == 1 and self._was_unique(key):
            self.index[task] = now[0]
            return now[0]
        return None

    def _was_unique(self, key: bytes) -> bool:
        return sum(1 for k in self.task_key.values() if k == key) == 1

    def _follow(self, keys: list[bytes]) -> None:
        # Longest matching blocks, not a greedy head/tail match: a run of lines
        # that moved together keeps its identity even next to identical lines.
        # (About 30 ms for the largest real tasks.md of the corpus, 3000 lines.)
        import difflib  # only when the agent edited tasks.md: startup time

        matcher = difflib.SequenceMatcher(None, self.keys, keys, autojunk=False)
        moved: dict[int, int] = {}
        for tag, i1, i2, j1, _ in matcher.get_opcodes():
            if tag == "equal":
                moved.update((i, j1 + i - i1) for i in range(i1, i2))
        self.index = {task: None if i is None else moved.get(i) for task, i in self.index.items()}
        self.keys = keys


def set_mark(path: Path, tracker: LineTracker, task: Task, mark: str, expect: str | None = None) -> str:
    """Set the checkbox of ``task``'s line in ``path`` to ``mark``.

    With ``expect`` (a string of marks), only a checkbox currently holding one
    of them is changed. Returns ``"changed"``, ``"same"`` (already ``mark``),
    ``"kept"`` (another mark than expected, left alone) or ``"missing"``.
    Raises OSError when the file cannot be read or written.
    """
    lines = path.read_bytes().splitlines(keepends=True)
    index = tracker.locate(task, lines)
    if index is None:
        return "missing"
    line = lines[index]
    m = _MARK.search(line)
    assert m is not None  # the tracker only places a line with its key
    current = line[m.start() + 1: m.start() + 2].decode("ascii")
    if current == mark:
        return "same"
    if expect is not None and current not in expect:
        return "kept"
    offset = sum(map(len, lines[:index])) + m.start() + 1
    new = mark.encode("ascii")
    # One byte written in place: a crash leaves the old mark or the new one, and
    # nothing else in the file is rewritten. [-] is a courtesy to a person
    # watching; [x] and restores must survive a power cut.
    if not _write_byte(path, offset, current.encode("ascii"), new, durable=mark != RUNNING_MARK):
        return "missing"  # the file changed under us since it was read: not ours to guess
    lines[index] = line[: m.start() + 1] + new + line[m.start() + 2:]
    tracker.seen = b"".join(lines)  # a mark is not an edit: the line keys are unchanged
    return "changed"


def _write_byte(path: Path, offset: int, old: bytes, new: bytes, *, durable: bool) -> bool:
    """Replace the byte ``old`` at ``offset`` with ``new``, in place; False
    (nothing written) when the byte there is no longer ``old``."""
    fd = os.open(path, os.O_RDWR)
    try:
        if os.pread(fd, 1, offset) != old:
            return False
        os.pwrite(fd, new, offset)
        if durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    return True


class WriteBack:
    """The plugin: marks, ticks and restores checkboxes as tasks run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.trackers: dict[Path, LineTracker] = {}  # tasks file -> its task lines
        self.running: dict[Task, Task] = {}  # tasks we marked [-], until they resolve
        self.warned: set[Task] = set()

    @hookimpl
    def seqrun_collection_finish(self, session: Session) -> None:
        # The lines as collected: later agents may add lines above a task, so
        # its line number alone would point at another line.
        for spec in session.specs:
            tasks = [t for t in spec.iter_tasks() if t.kind is TaskKind.CHECKBOX]
            if not tasks:
                continue
            try:
                data = spec.tasks_file.read_bytes()
            except OSError:
                continue
            self.trackers[spec.tasks_file] = LineTracker(data, tasks)

    def _mark(self, task: Task, mark: str, expect: str | None = None) -> str:
        if task.spec is None:
            return "missing"
        path = task.spec.tasks_file
        tracker = self.trackers.get(path)
        if tracker is None or task not in tracker:
            return "missing"  # not a checkbox line: nothing to tick
        try:
            outcome = set_mark(path, tracker, task, mark, expect)
        except OSError as exc:
            self._warn(task, f"cannot mark task {task.id} [{mark}]: {exc.strerror or exc}")
            return "missing"
        if outcome == "missing":
            self._warn(task, f"task {task.id} not found in the file any more; not marked [{mark}]")
        return outcome

    def _warn(self, task: Task, message: str) -> None:
        if task in self.warned or task.spec is None:
            return
        self.warned.add(task)
        warning = Warning_(task.spec.tasks_file, task.line, message)
        task.spec.warnings.append(warning)
        # Collection warnings are printed already: say this one now.
        print(f"WARNING {warning}", file=sys.stderr)

    @hookimpl
    def seqrun_runtest_setup(self, item: Task, session: Session) -> None:
        """A task ticked [x] since collection (by an agent that did it along
        with its own task, or by a person) is not run again."""
        if not item.is_leaf or item.spec is None:
            return
        path = item.spec.tasks_file
        tracker = self.trackers.get(path)
        if tracker is None or item not in tracker:
            return
        try:
            lines = path.read_bytes().splitlines(keepends=True)
        except OSError:
            return
        index = tracker.locate(item, lines)
        mark = _MARK.search(lines[index]) if index is not None else None
        if mark is not None and lines[index][mark.start() + 1: mark.start() + 2] in (b"x", b"X"):
            raise Skipped("already done (ticked in tasks.md during this run)", Kind.ALREADY_DONE)

    @hookimpl
    def seqrun_runtest_attempt(self, item: Task, attempt: int) -> None:
        if item in self.running or item.mark not in (" ", RUNNING_MARK):
            return
        # A [-] found at the start was left by a killed run: it is ours too.
        if self._mark(item, RUNNING_MARK, expect=" " + RUNNING_MARK) in ("changed", "same"):
            self.running[item] = item

    @hookimpl
    def seqrun_runtest_teardown(self, item: Task, session: Session, report: TaskReport) -> None:
        if report.outcome is not Outcome.PASSED:
            # Back to [ ]: the task, and a parent dispatched as a unit.
            for task in (item, *item.ancestors()):
                if self.running.pop(task, None) is not None:
                    self._mark(task, " ")
            return
        self.running.pop(item, None)
        self._mark(item, "x")
        # A parent whose required subtasks are all done is done too (Kiro's convention).
        outcomes = runstate(session.config).outcomes
        passed = {item} | {task for task, outcome in outcomes.items() if outcome is Outcome.PASSED}
        for parent in item.ancestors():
            if not all(c.done or c.optional or c in passed for c in parent.children):
                break
            self.running.pop(parent, None)
            self._mark(parent, "x")
            passed.add(parent)

    @hookimpl
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        # A task still [-] (a unit parent whose subtasks did not all pass, a
        # run ended by an internal error) is not in progress any more.
        for task in list(self.running.values()):
            self._mark(task, " ", expect=RUNNING_MARK)
        self.running.clear()


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("state")
    group.add_argument("--no-mark", dest="mark", action="store_false", default=True,
                       help="do not tick tasks in tasks.md")


@hookimpl
def seqrun_configure(config: Config) -> None:
    if config.option.mark and not config.option.collectonly:
        config.pluginmanager.register(WriteBack(config), "writeback-marker")
