"""The checkbox writer behind :mod:`seqrun.writeback`: ``[-]``, ``[x]``, ``[ ]`` in place.

:class:`WriteBack` is the plugin a run registers (``writeback-marker``);
:class:`LineTracker` follows each task's line through other people's edits,
:func:`set_mark` writes one byte at its offset, and :class:`MarkLedger`
records every ``[-]`` (:class:`RunningMark`) until its task's verdict
resolves it. :mod:`seqrun.writeback`'s docstring states what they guarantee.

Imported when a run (not ``--co``, which writes nothing) registers the
plugin; its names stay importable from :mod:`seqrun.writeback`.
"""
from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from seqrun.atomicfile import atomic_write
from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Spec, Step, Task, TaskKind, TaskState, Warning_
from seqrun.outcome import Kind, Outcome, Skipped
from seqrun.paths import safe_name, seqrun_dir, specs_root
from seqrun.runner import runstate
from seqrun.text import LazyPattern

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport
    from seqrun.main import Session

_MARK = LazyPattern(rb"\[[ xX~/-]\]")
RUNNING_MARK = "-"
#: The marks a ``[-]`` can have replaced (every mark of :data:`_MARK` but itself).
_RESTORABLE = " xX~/"


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

    It keeps the file as last seen (each line as :func:`_diff_key`, and where
    each line starts) and where each task's line is in it. When the file has
    changed, a line diff between that version and the current one carries each
    task to its new place: lines added or removed above it move it, an edited
    or deleted line loses it. A line the diff cannot place (moved elsewhere) is
    still found if its content is unique, before and now; otherwise it is
    reported gone rather than risk ticking an identical line of another task.

    The file is compared with the version last seen as one bytes comparison:
    while nobody else edits it (the usual case, seqrun's own one-byte marks
    aside, which :meth:`wrote` records), placing a line costs no pass over
    its lines in Python, so ticking task 800 costs what ticking task 8 does.
    """

    def __init__(self, data: bytes, tasks: Iterable[Task | Step]) -> None:
        lines = data.splitlines(keepends=True)
        self.seen = data
        """The file's bytes when last looked at (or last written by us)."""
        self.keys = [_diff_key(line) for line in lines]
        self.starts = _line_starts(lines)
        """Each line's offset in :attr:`seen`, then its length."""
        self.task_key: dict[Task | Step, bytes] = {}  # its line's key
        self.index: dict[Task | Step, int | None] = {}  # its line's index now
        for task in tasks:
            index = task.line - 1
            if 0 <= index < len(lines) and _MARK.search(lines[index]):
                self.task_key[task] = self.keys[index]
                self.index[task] = index

    def __contains__(self, task: Task | Step) -> bool:
        return task in self.task_key

    def locate(self, task: Task | Step, data: bytes) -> int | None:
        """The index of ``task``'s line in ``data`` (the file now), or None."""
        key = self.task_key.get(task)
        if key is None:
            return None
        if data != self.seen:
            # Someone else edited the file: re-key it (the common case, an
            # unchanged file, costs one bytes comparison, not a pass in Python).
            lines = data.splitlines(keepends=True)
            keys = [_diff_key(line) for line in lines]
            if keys != self.keys:
                self._follow(keys)
            self.seen = data
            self.starts = _line_starts(lines)
        index = self.index.get(task)
        if index is not None:
            return index
        now = [i for i, k in enumerate(self.keys) if k == key]
        if len(now) == 1 and self._was_unique(key):
            self.index[task] = now[0]
            return now[0]
        return None

    def line(self, index: int) -> tuple[int, bytes]:
        """Where line ``index`` of the file as last seen starts, and the line."""
        start = self.starts[index]
        return start, self.seen[start:self.starts[index + 1]]

    def wrote(self, offset: int, byte: bytes) -> None:
        """We wrote ``byte`` at ``offset``: a mark is not an edit, the line
        keys and offsets are unchanged."""
        self.seen = self.seen[:offset] + byte + self.seen[offset + 1:]

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


def _line_starts(lines: list[bytes]) -> list[int]:
    """The offset of each of ``lines`` in their concatenation, then its length."""
    return list(itertools.accumulate(map(len, lines), initial=0))


def set_mark(path: Path, tracker: LineTracker, task: Task | Step, mark: str, expect: str | None = None,
             before_write: Callable[[int, bytes], None] | None = None) -> str:
    """Set the checkbox of ``task``'s line in ``path`` to ``mark``.

    With ``expect`` (a string of marks), only a checkbox currently holding one
    of them is changed. ``before_write(index, line)`` is called with the line
    as it is when it holds ``mark`` already or is about to get it. Returns ``"changed"``, ``"same"``
    (already ``mark``), ``"kept"`` (another mark than expected, left alone) or
    ``"missing"``. Raises OSError when the file cannot be read or written.
    """
    index = tracker.locate(task, path.read_bytes())
    if index is None:
        return "missing"
    start, line = tracker.line(index)
    m = _MARK.search(line)
    assert m is not None  # the tracker only places a line with its key
    current = line[m.start() + 1: m.start() + 2].decode("ascii")
    if current != mark and expect is not None and current not in expect:
        return "kept"
    if before_write is not None:
        before_write(index, line)
    if current == mark:
        return "same"
    offset = start + m.start() + 1
    new = mark.encode("ascii")
    # One byte written in place: a crash leaves the old mark or the new one, and
    # nothing else in the file is rewritten. [-] is a courtesy to a person
    # watching; [x] and restores must survive a power cut.
    if not _write_byte(path, offset, current.encode("ascii"), new, durable=mark != RUNNING_MARK):
        return "missing"  # the file changed under us since it was read: not ours to guess
    tracker.wrote(offset, new)
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


@dataclass(frozen=True)
class RunningMark:
    """A ``[-]`` seqrun wrote, as recorded just before writing it."""

    task_id: str
    index: int
    """The line's index in the file then."""
    text: bytes
    """The line then, with the mark it had, without its line ending."""
    was: str
    """That mark: what a run that finds the ``[-]`` left behind puts back."""

    def to_json(self) -> dict[str, object]:
        return {"task": self.task_id, "line": self.index, "was": self.was,
                "text": self.text.decode("utf-8", "surrogateescape")}

    @classmethod
    def from_json(cls, data: object) -> RunningMark | None:
        if not isinstance(data, dict):
            return None
        task, index, was, text = (data.get(k) for k in ("task", "line", "was", "text"))
        if not (isinstance(task, str) and isinstance(index, int) and isinstance(text, str)
                and isinstance(was, str) and len(was) == 1 and was in _RESTORABLE):
            return None
        try:
            return cls(task, index, text.encode("utf-8", "surrogateescape"), was)
        except UnicodeEncodeError:
            return None


def _content_key(line: bytes) -> bytes | None:
    """What a line says whatever its mark, indentation and line ending."""
    key = _line_key(line)
    return key.lstrip() if key is not None else None


def find_running_mark(lines: list[bytes], mark: RunningMark) -> int | None:
    """The index of the line ``mark`` was written to: the one that says what
    it said then and holds ``[-]``, nearest to where it was; None if none."""
    key = _content_key(mark.text)
    found = []
    for i, line in enumerate(lines):
        m = _MARK.search(line)
        if m and line[m.start() + 1: m.start() + 2] == RUNNING_MARK.encode() and _content_key(line) == key:
            found.append(i)
    return min(found, key=lambda i: (abs(i - mark.index), i)) if found else None


def write_at_running_mark(path: Path, mark: RunningMark, new: str) -> bool:
    """Replace the ``[-]`` of ``mark``'s line (found again by its text) with
    ``new``, in place and fdatasync'd; False when no such line is there."""
    lines = path.read_bytes().splitlines(keepends=True)
    index = find_running_mark(lines, mark)
    if index is None:
        return False
    m = _MARK.search(lines[index])
    assert m is not None
    offset = sum(map(len, lines[:index])) + m.start() + 1
    return _write_byte(path, offset, RUNNING_MARK.encode(), new.encode("ascii"), durable=True)


class MarkLedger:
    """``<specs root>/.seqrun/marks/<spec>.json``: the ``[-]`` marks seqrun
    has out in one spec's tasks file. Written before each ``[-]`` and after
    its verdict's mark (not fsync'd: ``[-]`` is not either; atomically when it
    already records a mark); removed when none is out. An unreadable ledger
    counts as empty."""

    def __init__(self, spec: Spec) -> None:
        self.path = seqrun_dir(specs_root(spec)) / "marks" / f"{safe_name(spec.name)}.json"

    def load(self) -> list[RunningMark]:
        import json

        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return []
        if not isinstance(data, dict):
            return []
        found = (RunningMark.from_json(m) for m in data.get("marks", ()))
        return [m for m in found if m is not None]

    def save(self, marks: Iterable[RunningMark]) -> None:
        """Raises OSError when it cannot be written."""
        import json

        records = [m.to_json() for m in marks]
        if not records:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        data = json.dumps({"marks": records}, indent=1).encode("utf-8")
        try:
            self._write(data)
        except FileNotFoundError:  # the first [-] of the spec: its folder is made once
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write(data)

    def _write(self, data: bytes) -> None:
        # No ledger yet (the usual case: it is removed when its marks resolve):
        # written straight to its name. Cut short by a kill, it reads as empty,
        # which is what it should say: the [-] it announces is not written yet.
        # One that exists is replaced atomically: it records a [-] already out.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            atomic_write(self.path, data, durable=False)
            return
        try:
            view = memoryview(data)
            while view:  # a short write (a full disk) raises at the next one
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


class WriteBack:
    """The plugin: marks, ticks and restores checkboxes as tasks run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.trackers: dict[Path, LineTracker] = {}  # tasks file -> its task lines
        self.running: dict[Task, RunningMark | None] = {}
        """Tasks we marked [-], until they resolve: what the ledger says of each."""
        self.ledgers: dict[Path, MarkLedger] = {}  # tasks file -> its spec's ledger
        self.warned: set[Task] = set()

    @hookimpl
    def seqrun_collection_finish(self, session: Session) -> None:
        # After the spec locks (tryfirst): a [-] in the ledger of a spec this
        # run holds is no live run's, so it was left behind.
        selected = {item.spec for item in session.items}
        for spec in session.specs:
            if spec in selected:
                self.ledgers[spec.tasks_file] = ledger = MarkLedger(spec)
                self._take_back(spec, ledger)
        # The lines as collected: later agents may add lines above a task, so
        # its line number alone would point at another line.
        for spec in session.specs:
            tasks: list[Task | Step] = [t for t in spec.iter_tasks() if t.kind is TaskKind.CHECKBOX]
            tasks += [step for t in spec.iter_tasks() for step in t.steps]
            if not tasks:
                continue
            try:
                data = spec.tasks_file.read_bytes()
            except OSError:
                continue
            self.trackers[spec.tasks_file] = LineTracker(data, tasks)

    def _take_back(self, spec: Spec, ledger: MarkLedger) -> None:
        """Put back the mark under each ``[-]`` a killed run left in ``spec``'s file."""
        left = ledger.load()
        if not left:
            return
        for mark in left:
            try:
                write_at_running_mark(spec.tasks_file, mark, mark.was)
            except OSError as exc:
                print(f"WARNING {spec.tasks_file}: cannot take back the [-] of task {mark.task_id}: "
                      f"{exc.strerror or exc}", file=sys.stderr)
                return  # the ledger stays for the next run
        try:
            ledger.save([])
        except OSError:
            pass  # found again next time: only a [-] still there is written

    def _record(self, task: Task) -> Callable[[int, bytes], None]:
        """Record the [-] about to be written to ``task``'s line in its ledger."""

        def record(index: int, line: bytes) -> None:
            m = _MARK.search(line)
            assert m is not None
            was = line[m.start() + 1: m.start() + 2].decode("ascii")
            # A [-] found at the start is a killed run's: it was [ ] before.
            self.running[task] = RunningMark(task.id, index, line.rstrip(b"\r\n"),
                                             " " if was == RUNNING_MARK else was)
            self._save_ledger(task)

        return record

    def _save_ledger(self, task: Task) -> None:
        ledger = self.ledgers.get(task.spec.tasks_file) if task.spec is not None else None
        if ledger is None:
            return
        try:
            ledger.save(m for t, m in self.running.items() if m is not None and t.spec is task.spec)
        except OSError:
            pass  # only a run killed while the task runs would miss it

    def _mark(self, task: Task, mark: str, expect: str | None = None, *,
              before_write: Callable[[int, bytes], None] | None = None,
              ours: RunningMark | None = None) -> str:
        """Set ``task``'s checkbox; ``ours`` is the [-] we wrote there, found
        by its text when the tracker lost the line."""
        if task.spec is None:
            return "missing"
        path = task.spec.tasks_file
        tracker = self.trackers.get(path)
        if tracker is None or task not in tracker:
            return "missing"  # not a checkbox line: nothing to tick
        try:
            outcome = set_mark(path, tracker, task, mark, expect, before_write)
            if outcome == "missing" and ours is not None and write_at_running_mark(path, ours, mark):
                outcome = "changed"
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

    def _resolve(self, task: Task, mark: str, expect: str | None = None) -> None:
        """Replace our [-] on ``task``'s line by its verdict's ``mark``, and
        strike it from the ledger: a line not found now (changed otherwise)
        is not ours to look for again."""
        ours = self.running.pop(task, None)
        self._mark(task, mark, expect, ours=ours)
        if ours is not None:
            self._save_ledger(task)

    @hookimpl
    def seqrun_runtest_setup(self, item: Task, session: Session) -> None:
        """A task ticked [x] since collection (by an agent that did it along
        with its own task, or by a person) is not run again."""
        if not item.is_leaf or item.spec is None or item.state is TaskState.DONE:
            return  # ticked before the run: the runner's own skip says so
        path = item.spec.tasks_file
        tracker = self.trackers.get(path)
        if tracker is None or item not in tracker:
            return
        try:
            index = tracker.locate(item, path.read_bytes())
        except OSError:
            return
        if index is None:
            return
        _, line = tracker.line(index)
        mark = _MARK.search(line)
        if mark is not None and line[mark.start() + 1: mark.start() + 2] in (b"x", b"X"):
            raise Skipped("already done (ticked in tasks.md during this run)", Kind.ALREADY_DONE)

    @hookimpl
    def seqrun_runtest_attempt(self, item: Task, attempt: int) -> None:
        if item in self.running or item.mark not in (" ", RUNNING_MARK):
            return
        # A [-] found at the start was left by a killed run: it is ours too.
        outcome = self._mark(item, RUNNING_MARK, expect=" " + RUNNING_MARK, before_write=self._record(item))
        if outcome in ("changed", "same"):
            self.running.setdefault(item, None)

    @hookimpl
    def seqrun_runtest_teardown(self, item: Task, session: Session, report: TaskReport) -> None:
        if report.outcome is not Outcome.PASSED:
            # Back to [ ]: the task, and a parent dispatched as a unit.
            for task in (item, *item.ancestors()):
                if task in self.running:
                    self._resolve(task, " ")
            return
        self._resolve(item, "x")
        self._tick_steps(item)
        # A parent whose required subtasks are all done is done too (Kiro's convention).
        # (Each child is looked up, not every outcome of the run gathered: the
        # cost stays that of one family at task 800.)
        outcomes = runstate(session.config).outcomes
        passed = {item}
        for parent in item.ancestors():
            if not all(c.done or c.optional or c in passed or outcomes.get(c) is Outcome.PASSED
                       for c in parent.children):
                break
            self._resolve(parent, "x")
            passed.add(parent)

    def _tick_steps(self, task: Task) -> None:
        """Tick the steps of a heading task that passed (those still ``[ ]``)."""
        tracker = self.trackers.get(task.spec.tasks_file) if task.spec is not None else None
        if tracker is None:
            return
        for step in task.steps:
            if step not in tracker:
                continue
            try:
                outcome = set_mark(task.spec.tasks_file, tracker, step, "x", expect=" ")
            except OSError as exc:
                self._warn(task, f"cannot tick the steps of task {task.id}: {exc.strerror or exc}")
                return
            if outcome == "missing":
                self._warn(task, f"a step of task {task.id} (line {step.line}) is not in the file any more; "
                                 "not ticked")

    @hookimpl
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        # A task still [-] (a unit parent whose subtasks did not all pass, a
        # run ended by an internal error) is not in progress any more.
        for task in list(self.running):
            self._resolve(task, " ", expect=RUNNING_MARK)
