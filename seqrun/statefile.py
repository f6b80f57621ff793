"""``SEQUENTIAL_STATE.json``: the file that makes a run resumable.

Both live where the seed script kept them, in the folder that holds the spec
folders (``.kiro/specs/``). The state file keeps the seed's keys (``completed``,
``halted``, ``started_at``, ``assignments``, ``halted_at``, ``halted_task``,
``completed_at``) per spec under ``specs.<name>``, so two specs under one
folder never mix their ids, and mirrors the spec run last at the top level,
where the seed wrote them. ``<name>`` is the spec's path relative to that
folder (:func:`seqrun.kiro.spec_name`: ``my-feature`` for
``my-feature/tasks.md``, ``backend/phase_1.md`` for a task file of another
name), so no two specs of a folder share a record.

A spec without a record claims one when the run starts (:meth:`StateFile.claim`),
under the folder's lock and from the file as it is at that moment: the
record an earlier version kept under the spec's former name (``phase_1``),
when the caller found that no other spec can own it, or else a file written
by the seed (those keys, no ``spec``). The seed's record is adopted by one
spec only: the file names it (``adopted_seed_state``) before the lock is let
go, so a second seqrun starting at the same moment starts its spec empty.

Per spec, beside the seed's keys: ``failed`` (ids whose last verdict was a
failure or an error), ``journal`` and ``tasks``. ``tasks`` holds one summary
per task — status, kind, title, attempts, duration, last_error, backend, log,
rate_limit_waits, usage, updated_at, and ``history_at``: where the task's
newest attempt is in the journal ([offset, length]) — whose size does not
grow with its attempts. ``attempts`` counts the task's attempts over every
run. A task's status is ``running`` while its agent runs, with
``processes``: the agent's pid, start time, session, process group and tree
token, and the processes that left its session (see
:class:`seqrun.terminal.proctree.TreeRecord`). A run that was killed leaves
it so; the next run first ends what is left of those processes (never a
reused pid: start times must match), then turns it into ``interrupted`` and
adds the attempt in flight to the history (or ``passed`` when tasks.md has
it ticked: the kill came between the tick and the record). An interrupted
task is not ``failed``: it runs again. A run stopped while it waited
(``--delay``, a rate limit) puts back what the record said before, keeping
the attempts it made.

**The history** (one record per attempt — attempt, run_id, started_at,
duration, outcome, kind, reason, backend, log, prompt, session_id, usage)
is not in this file: it is appended to the spec's journal,
``.seqrun/history/<spec>.jsonl`` beside it (:mod:`seqrun.history`), one
line per attempt, a single ``write`` and an fsync. Every reader gets it
through :func:`with_history` (:func:`read_spec_record`): each task's
``history`` as this file used to hold it — the last :data:`HISTORY_LIMIT`
records, ``history_dropped`` counting the older ones, the feedback
(``final_message``, ``checks``) on the newest only. A file written by the
previous seqrun (each task's ``history`` inside it) is read as it is, and
the first run that owns the spec moves that history to the journal; a
record already in the journal is not added twice, so a move cut short is
simply done again. A record without a ``journal`` never takes a journal
file it finds (left by a state deleted by hand): that file is moved aside
under a backup name, and the run says so.

``journal`` is ``{"file": ".seqrun/history/<spec>.jsonl", "size": N}``:
``N`` is the checkpoint, the length of the journal whose every line this
file counts (in ``attempts`` and ``history_at``) and whose every attempt has
its progress entry. The order of the writes of an attempt is: its journal
line (fsync'd), its progress entry, then this file. A crash at any instant
leaves a consistent pair: when a run starts, the lines after the checkpoint
(at most the few written since the last save) are read; each raises its
task's ``attempts`` to at least its number and points ``history_at`` to
it (a task the file lost to a power cut gets an ``interrupted`` record),
and gets its progress entry if the progress file has none. Doing so twice
changes nothing: an attempt is never counted twice, and never lost once
its line is written. The interrupted attempt ``begin_run`` adds is written
the same way, only when the task's newest line is not that attempt already.

The state is written when the run starts, when each agent starts, after each
attempt and after each task, atomically (temporary file, fsync, rename): a crash at any instant
leaves the previous or the new file, both valid JSON. A save writes every
task's summary line (a summary is a few hundred bytes, whatever the number
of attempts: a save at the 5,000th attempt costs what it costs at the
500th), encoding only the records that changed (:meth:`StateFile.touch`):
the others' lines are kept from the last save, or, at a run's first save,
taken from the text the run read; the file is read again only when another
run wrote it since. Every write re-reads the
file under an ``flock`` of its folder and replaces only the specs this run
owns, so two runs of two specs of one folder (each holds its own spec lock,
and each spec has its own journal) never lose each other's records. The
progress file is append-only, one ``## Iteration N`` entry per dispatch
(each attempt, rate-limited ones included and marked so), each written with
a single ``write`` and fsync'd.

A corrupt or unreadable state file is a usage error (exit 4) that names the
file and leaves it untouched; ``--fresh`` copies it to a backup, forgets
the record of the specs being run, and moves their journals aside (kept
under a backup name, as the state's).
"""
from __future__ import annotations

import itertools
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Container, Iterable, Mapping, TypedDict

from seqrun.atomicfile import atomic_write, remove_stale_temps
from seqrun.config import UsageError
from seqrun.history import (  # noqa: F401  (HISTORY_LIMIT, FEEDBACK_KEYS: still importable from here)
    FEEDBACK_KEYS,
    HISTORY_LIMIT,
    AttemptRecord,
    Journal,
    bounded,
    by_task,
    encode_line,
    journal_path,
    read_journal,
)
from seqrun.nodes import Spec, TaskState
from seqrun.outcome import Kind, Outcome
from seqrun.sharedjson import FolderLock

if TYPE_CHECKING:
    from seqrun.outcome import PreviousAttempt


class TaskRecord(TypedDict, total=False):
    """A task's record under ``specs.<name>.tasks.<id>``."""

    status: str
    kind: str
    title: str
    attempts: int
    duration: float
    last_error: str | None
    backend: str | None
    log: str | None
    rate_limit_waits: int
    usage: dict[str, int | float]
    updated_at: str
    history_at: list[int]
    history_dropped: int
    processes: dict[str, Any]


class SpecRecord(TypedDict, total=False):
    """A spec's record under ``specs.<name>``: the seed's keys, then seqrun's."""

    completed: list[str]
    halted: bool
    started_at: str | None
    assignments: dict[str, Any]
    halted_at: str | None
    halted_task: str | None
    completed_at: str | None
    failed: list[str]
    journal: dict[str, Any]
    tasks: dict[str, TaskRecord]


STATE_NAME = "SEQUENTIAL_STATE.json"
FORMAT_VERSION = 3
SEED_KEYS = ("completed", "halted", "started_at", "assignments", "halted_at", "halted_task", "completed_at")
RUNNING = "running"
INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = "interrupted: seqrun stopped while this task ran (killed, crashed or power cut)"
PASSED_UNRECORDED = ("ticked in tasks.md: it passed, and seqrun was stopped before it recorded the attempt "
                     "(its verdict is not known beyond that)")


def utcnow() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def state_path(spec: Spec) -> Path:
    return spec.folder.parent / STATE_NAME


def new_spec_state() -> SpecRecord:
    return {
        "completed": [],
        "halted": False,
        "started_at": None,
        "assignments": {},
        "halted_at": None,
        "halted_task": None,
        "completed_at": None,
        "failed": [],
        "tasks": {},
    }


# -- reading and checking ----------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any] | None:
    """The parsed and checked state file, None when there is none.

    Anything else — not a regular file, unreadable, not UTF-8, not JSON, not
    the expected shape — is a one-line :class:`UsageError` naming the file;
    the file is never modified.
    """
    return _read_state(path)[0]


def _read_state(path: Path) -> tuple[dict[str, Any] | None, tuple[int, int, int] | None, str | None]:
    """:func:`read_state`, the identity of the file it read (see
    :func:`_identity`) and its text."""
    import json  # not at start-up: ``--version`` and ``--co`` never read the state

    if not existing_regular_file(path, "state file"):
        return None, None, None
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            raw = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise UsageError(f"state file {path} is corrupt ({_one_line(exc)}); fix it, or start over "
                         "with --fresh (the old file is kept as a backup)") from None
    problem = state_problem(data)
    if problem:
        raise UsageError(f"state file {path}: {problem}; fix it, or start over with --fresh "
                         "(the old file is kept as a backup)")
    return data, (info.st_ino, info.st_size, info.st_mtime_ns), text


def existing_regular_file(path: Path, what: str) -> bool:
    """Whether ``path`` exists; a usage error naming it when it cannot be
    read, or is not a regular file (opening a FIFO would block forever; a
    folder cannot be replaced by a file)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{what} {path} is not a regular file; remove it, or move it away")
    return True


def state_problem(data: Any) -> str | None:
    """What makes ``data`` unusable as a state file, or None.

    Only what seqrun reads or updates is checked (lists it appends to, objects
    it updates); other values are carried over as they are.
    """
    if not isinstance(data, dict):
        return f"not a JSON object (a JSON {_json_type(data)})"
    specs = data.get("specs", {})
    if not isinstance(specs, dict):
        return f"'specs' is not an object (a JSON {_json_type(specs)})"
    for name, state in [(None, data), *specs.items()]:
        where = "at the top level" if name is None else f"of spec {name!r}"
        if not isinstance(state, dict):
            return f"the record {where} is not an object (a JSON {_json_type(state)})"
        problem = _spec_state_problem(state)
        if problem:
            return f"{problem} {where}"
    return None


def _spec_state_problem(state: dict[str, Any]) -> str | None:
    for key in ("completed", "failed"):
        value = state.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            return f"'{key}' is not a list (a JSON {_json_type(value)})"
        if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in value):
            return f"'{key}' holds something other than task ids"
    for key in ("assignments", "tasks", "journal"):
        value = state.get(key)
        if value is not None and not isinstance(value, dict):
            return f"'{key}' is not an object (a JSON {_json_type(value)})"
    size = (state.get("journal") or {}).get("size", 0)
    if type(size) is not int or size < 0:
        return "'journal.size' is not a byte count"
    for task_id, entry in (state.get("tasks") or {}).items():
        if not isinstance(entry, dict):
            return f"'tasks.{task_id}' is not an object (a JSON {_json_type(entry)})"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def normalized(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with every key seqrun uses present and ids as strings (in place)."""
    for key, default in new_spec_state().items():
        if state.get(key) is None and default is not None:
            state[key] = default
        else:
            state.setdefault(key, default)
    # The seed may have written numbers; ids are strings everywhere else.
    state["completed"] = _unique(str(x) for x in state["completed"])
    state["failed"] = _unique(str(x) for x in state["failed"])
    return state


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# -- the file ----------------------------------------------------------------------------------


@dataclass
class StateFile:
    """One ``SEQUENTIAL_STATE.json`` (shared by every spec of its folder)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    owned: list[str] = field(default_factory=list)
    """Specs this run reads and writes; the others are kept as found on disk."""
    changed: set[tuple[str, str]] = field(default_factory=set)
    """(spec, task id) records changed since the last save."""
    forgotten: set[str] = field(default_factory=set)
    """Records ``--fresh`` dropped: a save does not take them back from the file."""
    journals: dict[str, Journal] = field(default_factory=dict)
    """The history journal of each spec this run owns."""
    set_aside: list[tuple[str, Path]] = field(default_factory=list)
    """(spec, backup) for each journal no record owned, moved aside when its spec was claimed."""
    _encoded: dict[str, tuple[list[str], dict[str, int]]] = field(default_factory=dict, repr=False)
    _seen: tuple[int, int, int] | None = field(default=None, repr=False)
    """The file as this run last read or wrote it: unchanged since, it is not read again."""
    _text: str | None = field(default=None, repr=False)
    """The text :meth:`load` read, until the first save or a new read: the
    first save takes the lines of the records nobody changed from it
    (:meth:`_lines_as_read`) instead of encoding them again."""

    @classmethod
    def load(cls, path: Path) -> StateFile:
        """Read the file; a corrupt or unreadable one is a usage error and is
        left exactly as it is."""
        data, seen, text = _read_state(path)
        file = cls(path, data if data is not None else {"version": FORMAT_VERSION, "specs": {}})
        file._seen, file._text = seen, text
        file.data.setdefault("specs", {})
        file._clear_leftovers()
        return file

    @classmethod
    def fresh(cls, path: Path, names: Iterable[str], forget: Iterable[str] = ()) -> tuple[StateFile, Path | None]:
        """``--fresh``: back the file up, then forget specs ``names`` (the
        whole file when it cannot be used) and the records ``forget`` (what
        an earlier version called them); ``names`` start empty and are this
        run's, their journals moved aside (:attr:`set_aside`). Returns the
        file and the backup.

        Whatever is at ``path`` is recovered from: a file that cannot be read,
        or that is not a file at all (a folder, a FIFO), is renamed to the
        backup name rather than copied, so every byte of it is kept."""
        import json

        names = list(names)
        if not os.path.lexists(path):
            file = cls.load(path)
            file._own_new(names)
            return file, None
        backup = _backup_name(path)
        data: Any = {}
        try:
            # Never opened unless a regular file: a FIFO would block forever.
            raw = path.read_bytes() if stat.S_ISREG(path.stat().st_mode) else None
        except OSError:
            raw = None
        try:
            if raw is None:
                os.rename(path, backup)
            else:
                shutil.copy2(path, backup)
        except OSError as exc:
            raise UsageError(f"--fresh: cannot back up {path} to {backup.name}: "
                             f"{exc.strerror or exc}") from None
        try:
            data = json.loads(raw.decode("utf-8")) if raw is not None else {}
        except (UnicodeDecodeError, ValueError, RecursionError):
            data = {}
        forgotten = set(forget)
        if isinstance(data, dict):
            if isinstance(data.get("specs"), dict):
                for name in (*names, *forgotten):
                    data["specs"].pop(name, None)
            # The top-level keys are only a mirror (or the seed's record, which
            # would otherwise be adopted again): drop them.
            for key in ("spec", *SEED_KEYS):
                data.pop(key, None)
        if state_problem(data):
            data = {}  # unusable beyond repair; the backup keeps every byte
        file = cls(path, data, forgotten=forgotten)
        file.data.setdefault("specs", {})
        file._clear_leftovers()
        file._own_new(names)
        return file, backup

    def _own_new(self, names: Iterable[str]) -> None:
        """Start records ``names`` empty, as this run's (``--fresh``)."""
        specs = self.data.setdefault("specs", {})
        for name in names:
            specs[name] = new_spec_state()
            if name not in self.owned:
                self.owned.append(name)
                self._attach_journal(name)

    def _clear_leftovers(self) -> None:
        # Temporary files of a save that was killed: removed under the lock,
        # when no other seqrun can have one in flight.
        if not self.path.parent.is_dir():
            return
        with FolderLock(self.path.parent) as lock:
            if lock.held:
                remove_stale_temps(self.path)

    def for_spec(self, name: str) -> dict[str, Any]:
        """The state of spec ``name``, claimed for this run (:meth:`claim`)
        when it is not yet."""
        if name not in self.owned:
            self.claim([name])
        return self.data["specs"][name]

    def claim(self, names: Iterable[str], former: Mapping[str, str] | None = None) -> list[str]:
        """Make specs ``names`` this run's, under the file's lock, and return
        the names that adopted a record.

        The file is read again under the lock, so what other seqruns wrote
        since it was loaded counts. A spec without a record takes, in this
        order: the record an earlier version kept under its former name
        (``former[name]``, given only when no other spec can own it); or the
        seed's record (top-level keys, no ``spec``), which is adopted once:
        the file records ``adopted_seed_state`` and is written before the lock
        is let go, so another seqrun starting at the same moment sees it and
        starts its spec empty. Each spec's history journal is then opened
        (:meth:`_attach_journal`). Raises OSError when an adoption cannot be written.
        """
        wanted = [name for name in dict.fromkeys(names) if name not in self.owned]
        if not wanted:
            return []
        former = former or {}
        adopted: list[str] = []
        with FolderLock(self.path.parent):
            self._reload()
            specs = self.data["specs"]
            for name in wanted:
                if name in specs:
                    continue
                old = former.get(name)
                if old is not None and old not in self.owned and isinstance(specs.get(old), dict):
                    specs[name] = specs.pop(old)
                    if isinstance(specs[name].get("journal"), dict):
                        self._move_journal(old, name)
                    adopted.append(name)
                elif self._holds_seed_record():
                    state = new_spec_state()
                    for key in SEED_KEYS:
                        if key in self.data:
                            state[key] = self.data[key]
                    self.data["adopted_seed_state"] = name
                    specs[name] = state
                    adopted.append(name)
                else:
                    specs[name] = new_spec_state()
            for name in wanted:
                normalized(specs[name])
                self.owned.append(name)
                self._attach_journal(name)
            if adopted:
                self._write(adopted[0], durable=True)
        return adopted

    # -- the history journal -----------------------------------------------------------

    def journal(self, name: str) -> Journal:
        """The history journal of spec ``name`` (claimed when it is not yet)."""
        if name not in self.owned:
            self.claim([name])
        return self.journals[name]

    def _journal_path(self, name: str) -> Path:
        return journal_path(self.path.parent, name)

    def _attach_journal(self, name: str) -> None:
        """Open spec ``name``'s journal (this run holds the spec's lock) and
        bring the record up to date with it.

        - A record without a ``journal`` never takes a journal file it finds
          (left by a record deleted or forgotten): the file is moved aside,
          kept under a backup name (:attr:`set_aside`).
        - A record written by an earlier seqrun keeps each task's ``history``
          in the state: those records go to the journal (once: a record
          already there is not added again), and leave the state at the next save.
        - The lines after the record's checkpoint (``journal.size``) are
          attempts the state may not count yet (seqrun stopped between the
          line and the save): each task's ``attempts`` becomes at least the
          line's attempt, and ``history_at`` points to its newest line. Doing
          it again changes nothing, so no attempt is counted twice.
        """
        state = self.data["specs"][name]
        path = self._journal_path(name)
        meta = state.get("journal")
        tasks = state["tasks"]
        inline = {task_id: entry["history"] for task_id, entry in tasks.items()
                  if isinstance(entry, dict) and isinstance(entry.get("history"), list)}
        if not isinstance(meta, dict):
            # Unless it is exactly what moving this record's history writes:
            # a move cut short by a kill, before the state said so.
            if os.path.lexists(path) and not (inline and _holds_exactly(path, _migration_lines(inline))):
                backup = _backup_name(path)
                try:
                    os.rename(path, backup)
                except OSError as exc:
                    raise UsageError(f"cannot move {path} aside to {backup.name}: {exc.strerror or exc}") from None
                self.set_aside.append((name, backup))
            meta = {"size": 0}
        journal = Journal.open(path, meta.get("size", 0))
        self.journals[name] = journal
        # The journal follows the seed's keys and "failed", before the task records.
        state.pop("tasks")
        state["journal"] = {"file": path.relative_to(self.path.parent).as_posix(), "size": journal.accounted}
        state["tasks"] = tasks
        if inline:
            self._migrate(name, journal, inline)
        for offset, length, record in journal.lines_from(journal.accounted):
            number = record.get("attempt")
            for task_id in record["tasks"]:
                entry = tasks.get(task_id)
                if not isinstance(entry, dict):
                    # Its record was never saved (a power cut): the attempt was cut off.
                    entry = tasks[task_id] = {"status": INTERRUPTED, "kind": Kind.INTERRUPTED.value,
                                              "attempts": 0, "last_error": INTERRUPTED_ERROR,
                                              "updated_at": record.get("started_at") or utcnow()}
                if isinstance(number, int) and not isinstance(number, bool):
                    entry["attempts"] = max(attempts_of(entry), number)
                entry["history_at"] = [offset, length]
                self.touch(name, task_id)

    def _migrate(self, name: str, journal: Journal, inline: dict[str, list[Any]]) -> None:
        """Move the ``history`` an earlier seqrun kept in task records to the
        journal: one line per task and record, each task's in its order; a
        record the journal holds already (same task, attempt and run) is not
        added again, so a migration cut short is simply done again."""
        present = {(task_id, record.get("attempt"), record.get("run_id"))
                   for _, _, record in journal.lines_from(0) for task_id in record["tasks"]} if journal.size else set()
        journal.append(_migration_lines(inline, present))
        for task_id in inline:
            del self.data["specs"][name]["tasks"][task_id]["history"]
            self.touch(name, task_id)

    def _move_journal(self, old: str, new: str) -> None:
        """A record adopted under a new name takes its journal along."""
        source, target = self._journal_path(old), self._journal_path(new)
        if not os.path.exists(source):
            return
        try:
            if os.path.lexists(target):
                backup = _backup_name(target)
                os.rename(target, backup)
                self.set_aside.append((new, backup))
            os.rename(source, target)
        except OSError as exc:
            raise UsageError(f"cannot move {source} to {target}: {exc.strerror or exc}") from None

    def unaccounted(self, name: str) -> dict[str, Any]:
        """The attempts of spec ``name``'s journal after its checkpoint, in
        the shape of a spec record (tasks with their title and ``history``),
        for :func:`seqrun.reports.progress.recorded_attempts`."""
        journal = self.journals[name]
        tasks = self.data["specs"][name]["tasks"]
        found: dict[str, Any] = {}
        for task_id, records in by_task(r for _, _, r in journal.lines_from(journal.accounted)).items():
            entry = tasks.get(task_id)
            title = entry.get("title") if isinstance(entry, dict) else None
            found[task_id] = {"title": title, "history": records}
        return {"tasks": found}

    def newest_attempt(self, name: str, task_id: str) -> dict[str, Any] | None:
        """The newest attempt record of a task of spec ``name`` (None when it has none)."""
        entry = self.data["specs"][name]["tasks"].get(task_id)
        if not isinstance(entry, dict) or "history_at" not in entry:
            return None  # no attempt recorded
        record = self.journal(name).newest(task_id, entry.get("history_at"))
        if record is None:
            return None
        return {k: v for k, v in record.items() if k != "tasks"}

    # -- reading it again, writing it ---------------------------------------------------

    def _reload(self) -> None:
        """Take the file as it is now, keeping the records this run owns."""
        if self._seen is not None and _identity(self.path) == self._seen:
            return
        disk, seen, _ = _read_state(self.path)
        if disk is None:
            return
        mine = {name: self.data["specs"][name] for name in self.owned}
        disk.setdefault("specs", {})
        for name in self.forgotten:
            disk["specs"].pop(name, None)
        disk["specs"].update(mine)
        self.data = disk
        self._seen = seen
        self._encoded.clear()
        self._text = None

    def _holds_seed_record(self) -> bool:
        return ("spec" not in self.data and "adopted_seed_state" not in self.data
                and any(k in self.data for k in SEED_KEYS))

    def save(self, current: str, *, durable: bool = True) -> None:
        """Write the file, the seed's keys at the top level mirroring spec
        ``current``. Specs this run does not own are taken from the file as
        it is now, not as it was when this run read it. ``durable=False``
        skips the fsyncs (still atomic): for records a power cut may lose."""
        with FolderLock(self.path.parent):
            self._merge_from_disk()
            self._write(current, durable=durable)

    def _write(self, current: str, *, durable: bool) -> None:
        """Write the file as this run holds it (the caller holds the lock)."""
        self.data["version"] = FORMAT_VERSION
        self.data["spec"] = current
        for key in SEED_KEYS:
            self.data[key] = self.data["specs"][current].get(key)
        for name, journal in self.journals.items():
            self.data["specs"][name]["journal"]["size"] = journal.accounted
        # The seed's keys first: a person opening the file sees them at once.
        ordered = {k: self.data[k] for k in ("spec", *SEED_KEYS, "version", "specs")}
        ordered.update((k, v) for k, v in self.data.items() if k not in ordered)
        self.data = ordered
        text = self._encode(ordered)
        # A lone surrogate (undecodable agent output) becomes a JSON \u
        # escape instead of an error or invalid UTF-8.
        atomic_write(self.path, text.encode("utf-8", errors="backslashreplace"), durable=durable)
        self._seen = _identity(self.path)
        self._text = None  # every owned spec's lines are in the cache now

    def _encode(self, data: dict[str, Any]) -> str:
        """The file's text: keys one per line, each task record on one line.

        Only task records that changed since the last save are encoded again
        (``changed``), so a save costs the same at task 800 as at task 8;
        everything is encoded by the C json encoder (``indent`` would fall
        back to the slow pure-Python one).
        """
        lines = ["{"]
        top = [(k, v) for k, v in data.items()]
        for i, (key, value) in enumerate(top):
            comma = "," if i < len(top) - 1 else ""
            if key == "specs":
                lines.append('  "specs": {')
                names = list(value)
                for j, name in enumerate(names):
                    lines.append(f"    {_dumps(name)}: {{")
                    self._encode_spec(name, value[name], lines)
                    lines.append("    }" + ("," if j < len(names) - 1 else ""))
                lines.append("  }" + comma)
            else:
                lines.append(f"  {_dumps(key)}: {_dumps(value)}{comma}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _encode_spec(self, name: str, state: Any, lines: list[str]) -> None:
        if not isinstance(state, dict):
            lines[-1] = f"    {_dumps(name)}: {_dumps(state)}"
            lines.append("    ")
            return
        items = list(state.items())
        for i, (key, value) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            if key != "tasks" or not isinstance(value, dict):
                lines.append(f"      {_dumps(key)}: {_dumps(value)}{comma}")
                continue
            lines.append('      "tasks": {')
            records = self._task_records(name, value)
            if records:
                lines.append(",\n".join(records))
            lines.append("      }" + comma)
        self.changed = {c for c in self.changed if c[0] != name}

    def _task_records(self, name: str, tasks: dict[str, Any]) -> list[str]:
        """Each task record of spec ``name`` as one encoded line, in order.

        For a spec this run owns, the lines are kept between saves with each
        task's place: a save re-encodes the changed records and replaces them
        in place, so its Python work does not grow with the number of tasks.
        """
        if name not in self.owned:
            return [f"        {_dumps(k)}: {_dumps(v)}" for k, v in tasks.items()]
        cached = self._encoded.get(name)
        if cached is None and self._text is not None:
            cached = self._lines_as_read(name, tasks)
            if cached is not None:
                self._encoded[name] = cached
        if cached is None or len(cached[1]) > len(tasks):
            lines = [f"        {_dumps(k)}: {_dumps(v)}" for k, v in tasks.items()]
            self._encoded[name] = (lines, {k: i for i, k in enumerate(tasks)})
            return lines
        lines, place = cached
        # Records are only ever added at the end (a dict keeps insertion order).
        for task_id in itertools.islice(tasks, len(place), None):
            place[task_id] = len(lines)
            lines.append(f"        {_dumps(task_id)}: {_dumps(tasks[task_id])}")
        for spec, task_id in self.changed:
            if spec == name and task_id in place:
                lines[place[task_id]] = f"        {_dumps(task_id)}: {_dumps(tasks[task_id])}"
        return lines

    def _lines_as_read(self, name: str, tasks: dict[str, Any]) -> tuple[list[str], dict[str, int]] | None:
        """The task lines of spec ``name`` in the text :meth:`load` read,
        when they are one line per record in the order of ``tasks`` (as
        :meth:`_encode` writes them); None otherwise (a file written by
        another program, or by hand), and the records are encoded.

        A record is what its line says unless it was changed since, and
        every change is :meth:`touch`'d: the save encodes those again."""
        text = self._text
        assert text is not None
        header = f"\n    {_dumps(name)}: {{\n"
        at = text.find(header)
        opening = '\n      "tasks": {\n'
        start = text.find(opening, at + len(header)) if at >= 0 and tasks else -1
        if start < 0:
            return None
        start += len(opening)
        end = text.find("\n      }", start)
        lines = text[start:end].split("\n") if end > start else []
        if len(lines) != len(tasks):
            return None
        for i, task_id in enumerate(tasks):
            line = lines[i]
            # Each starts with its own key: no record spans two lines (JSON
            # text holds no raw newline), and none is missing or moved.
            if not line.startswith(f"        {_encode_key(task_id)}: "):
                return None
            if line.endswith(","):
                lines[i] = line[:-1]
        return lines, {task_id: i for i, task_id in enumerate(tasks)}

    def touch(self, spec: str, task_id: str) -> None:
        """A task's record changed: encode it again at the next save. Every
        change to a record of an owned spec must be touched, from the moment
        the file is loaded: a save writes an untouched record as it was read."""
        self.changed.add((spec, task_id))

    def _merge_from_disk(self) -> None:
        if self._seen is not None and _identity(self.path) == self._seen:
            return  # nobody else wrote it since we last read or wrote it: nothing to merge
        self._encoded.clear()  # specs of other runs may have changed
        self._text = None
        try:
            disk = read_state(self.path)
        except UsageError:
            disk = None  # damaged since we read it: our view is the best there is
        if not disk:
            return
        mine = {name: self.data["specs"][name] for name in self.owned}
        specs = {k: v for k, v in disk.get("specs", {}).items() if k not in mine and k not in self.forgotten}
        specs.update(mine)
        extra = {k: v for k, v in disk.items() if k not in self.data and k not in ("specs", "spec", *SEED_KEYS)}
        self.data.update(extra)
        self.data["specs"] = specs


def _migration_lines(inline: Mapping[str, list[Any]],
                     present: Container[tuple[str, Any, Any]] = ()) -> list[tuple[list[str], dict[str, Any]]]:
    """The journal lines of the ``history`` lists task records hold (one per
    task and record, each task's in order), but those ``present`` already
    (same task, attempt and run)."""
    return [([task_id], record) for task_id, history in inline.items() for record in history
            if isinstance(record, dict) and (task_id, record.get("attempt"), record.get("run_id")) not in present]


def _holds_exactly(path: Path, lines: list[tuple[list[str], dict[str, Any]]]) -> bool:
    try:
        return path.read_bytes() == b"".join(encode_line(tasks, record) for tasks, record in lines)
    except OSError:
        return False


_coders: tuple[Callable[[Any], str], Callable[[str], str]] | None = None


def _json_coders() -> tuple[Callable[[Any], str], Callable[[str], str]]:
    """One encoder for every value (``json.dumps`` with an option builds a
    new one per call, which costs more than encoding a task record), and the
    C function it encodes a string with; made on first use, not at start-up."""
    global _coders
    if _coders is None:
        import json

        _coders = json.JSONEncoder(ensure_ascii=False).encode, json.encoder.encode_basestring  # type: ignore[attr-defined]
    return _coders


def _dumps(value: Any) -> str:
    return _json_coders()[0](value)


def _encode_key(key: str) -> str:
    """A key as :func:`_dumps` writes it."""
    return _json_coders()[1](key)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells our last write of the file from anybody else's."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _backup_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while os.path.lexists(candidate):  # two --fresh in one second keep both backups
        n += 1
        candidate = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    return candidate


def restore(entry: dict[str, Any], before: dict[str, Any]) -> None:
    """Put back what a task's record said before this run marked it running,
    keeping what is true now: its attempts and where their history is."""
    kept = {k: entry[k] for k in ("attempts", "history", "history_at", "history_dropped") if k in entry}
    entry.clear()
    entry.update(before)
    entry.update(kept)
    if "status" not in entry:
        entry["status"] = Outcome.SKIPPED.value
        entry["kind"] = Kind.NOT_REACHED.value


def add_history(entry: TaskRecord | dict[str, Any], record: AttemptRecord) -> None:
    """Append ``record`` to a ``history`` held in a task record (once per
    attempt, bounded as readers get it): a record read with its history
    (:func:`with_history`), or written by an earlier seqrun."""
    history = entry.get("history")
    if not isinstance(history, list):
        history = entry["history"] = []
    history.append(record)
    kept, dropped = bounded(history, int(entry.get("history_dropped") or 0))
    history[:] = kept
    if dropped:
        entry["history_dropped"] = dropped


def with_history(record: dict[str, Any], journal: Path) -> dict[str, Any]:
    """Spec ``record`` (read from the state file, not modified) with each
    task's ``history`` and ``history_dropped`` as the state file held them
    before the journal: what every reader of the history is given.

    The journal's attempts follow any ``history`` the record still holds (a
    record an earlier seqrun wrote, not yet run by this one). A record
    without a ``journal`` has none: a file found there is not its."""
    tasks = record.get("tasks")
    if not isinstance(tasks, dict):
        return record
    lines = by_task(read_journal(journal)) if isinstance(record.get("journal"), dict) else {}
    filled = {}
    for task_id, entry in tasks.items():
        if not isinstance(entry, dict):
            filled[task_id] = entry
            continue
        inline = entry.get("history") if isinstance(entry.get("history"), list) else []
        records = [dict(r) if isinstance(r, dict) else r for r in inline] + lines.get(str(task_id), [])
        entry = {k: v for k, v in entry.items() if k != "history_at"}
        if records:
            dropped = entry.get("history_dropped")
            entry["history"], dropped = bounded(records, dropped if type(dropped) is int else 0)
            if dropped:
                entry["history_dropped"] = dropped
        filled[task_id] = entry
    return {**record, "tasks": filled}


def read_spec_record(path: Path, name: str) -> dict[str, Any] | None:
    """Spec ``name``'s record in state file ``path``, each task with its
    ``history`` (:func:`with_history`); None when the file has no such
    record. A corrupt state file is a :class:`UsageError`, as :func:`read_state`."""
    data = read_state(path)
    record = (data or {}).get("specs", {}).get(name)
    if not isinstance(record, dict):
        return None
    return with_history(record, journal_path(path.parent, name))


def last_failed_attempt(newest: Callable[[str], dict[str, Any] | None],
                        among: Iterable[Any]) -> PreviousAttempt | None:
    """The newest attempt recorded for any of the tasks ``among`` (``newest``
    gives a task's newest record), when it did not pass."""
    found: dict[str, Any] | None = None
    for task in among:
        record = newest(task.id)
        if isinstance(record, dict):
            if found is None or (record.get("started_at") or "") > (found.get("started_at") or ""):
                found = record
    if found is None or found.get("outcome") == Outcome.PASSED.value:
        return None
    from seqrun.outcome import PreviousAttempt

    return PreviousAttempt.from_record(found)


def attempts_of(entry: Any) -> int:
    value = entry.get("attempts") if isinstance(entry, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def session_file(log_path: Path) -> Path:
    """Where a running attempt's CLI session id is kept: beside its log."""
    return log_path.with_suffix(".session")


def begin_run(state: dict[str, Any], spec: Spec,
              session_of: Callable[[str], str | None] = lambda log: None,
              end_processes: Callable[[str, Any], None] = lambda task_id, record: None,
              journal: Journal | None = None) -> list[str]:
    """A new run of ``spec``: not halted, not complete, and what a killed run
    left ``running`` is now known to have been interrupted — or to have
    passed, when tasks.md has it ticked (seqrun ticks a task after its
    verdict and records it just after: a kill in between lost only the record).
    First, ``end_processes(task id, record)`` is given each running record's
    ``processes`` (what the killed run knew of its agent's processes), so that
    no survivor works on beside the next agent.

    The attempt in flight is added to the history: to ``journal`` (one write
    for all of them, before the state is saved), or without one to the
    ``history`` the record holds (``--status``, which writes nothing). It is
    added only when the task's newest record is not that attempt already, so
    a run killed again before its save does not add it twice.

    Returns the ids of the task records it changed (to :meth:`StateFile.touch`)."""
    state["started_at"] = utcnow()
    state["halted"] = False
    state["halted_at"] = state["halted_task"] = None
    state["completed_at"] = None
    ticked = {t.id for t in spec.iter_tasks() if t.state is TaskState.DONE}
    added: list[tuple[str, AttemptRecord]] = []
    changed: list[str] = []
    for task_id, entry in state["tasks"].items():
        if entry.get("status") != RUNNING:
            continue
        changed.append(task_id)
        if "processes" in entry:
            end_processes(task_id, entry.pop("processes"))
        if task_id in ticked:
            outcome, kind, reason = Outcome.PASSED, Kind.PASSED, PASSED_UNRECORDED
            entry.update(status=outcome.value, kind=kind.value, last_error=None)
            if task_id not in state["completed"]:
                state["completed"].append(task_id)
            if task_id in state["failed"]:
                state["failed"].remove(task_id)
        else:
            outcome, kind, reason = Outcome.INTERRUPTED, Kind.INTERRUPTED, INTERRUPTED_ERROR
            entry.update(status=INTERRUPTED, kind=kind.value, last_error=reason)
        number = attempts_of(entry)
        if journal is not None:
            newest = journal.newest(task_id, entry["history_at"]) if "history_at" in entry else None
        else:
            history = entry.get("history")
            newest = history[-1] if isinstance(history, list) and history else None
        if number and not (isinstance(newest, dict) and newest.get("attempt") == number):
            # The attempt in flight when seqrun was killed is an attempt too,
            # whether it was cut off or had passed and been ticked.
            added.append((task_id, {"attempt": number, "run_id": None, "started_at": entry.get("updated_at"),
                                    "duration": None, "outcome": outcome.value,
                                    "kind": kind.value, "reason": reason,
                                    "backend": entry.get("backend"), "log": entry.get("log"),
                                    "prompt": None,
                                    "session_id": session_of(entry["log"]) if entry.get("log") else None}))
    if journal is None:
        for task_id, record in added:
            add_history(state["tasks"][task_id], record)
        return changed
    for (task_id, _), at in zip(added, journal.append([([task_id], record) for task_id, record in added])):
        state["tasks"][task_id]["history_at"] = list(at)
    return changed
