"""The attempt history of a spec: an append-only journal beside the state file.

``<specs root>/.seqrun/history/<spec>.jsonl`` (``<spec>`` is the spec's name
through :func:`seqrun.paths.safe_name`) holds one JSON object per line, one
line per attempt, oldest first::

    {"tasks": ["3"], "attempt": 2, "run_id": "...", "started_at": "...", "duration": 61.2,
     "outcome": "failed", "kind": "no-marker", "reason": "...", "backend": "claude",
     "log": "...", "prompt": "...", "session_id": "...", "usage": {...}}

``tasks`` names the task the attempt ran — or the tasks of a ``--dispatch
unit`` run, which share it; the rest is the attempt's record
(:class:`AttemptRecord`). A failed attempt also carries what the next one is
told (``final_message``, ``checks``).

Appending costs the same at the 5,000th attempt as at the first: one
``write`` of the new line(s) with ``O_APPEND``, then ``fsync`` (and the
folder's, when the write created the file). A crash leaves whole lines and at
worst one cut short at the end; readers skip a line that is not a JSON
object, and the next append starts on a line of its own.

Readers see each task's history as the state file used to hold it
(:func:`bounded`): the last :data:`HISTORY_LIMIT` records, the older ones
counted in ``history_dropped``, and only the newest keeping its feedback.
The journal itself keeps every line; ``--fresh`` moves it aside.

What ties the journal to ``SEQUENTIAL_STATE.json`` is described in
:mod:`seqrun.statefile` (the ``journal`` checkpoint and ``history_at``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypedDict

from seqrun.atomicfile import fsync_dir

#: Attempt records a reader is given per task; older ones are counted in ``history_dropped``.
HISTORY_LIMIT = 20
#: What only the newest record of a task keeps: the feedback for the next attempt.
FEEDBACK_KEYS = ("final_message", "checks")
#: The journals' folder, under the specs root.
HISTORY_DIR = Path(".seqrun") / "history"


class AttemptRecord(TypedDict, total=False):
    """One attempt as readers see it (a task's ``history`` entry)."""

    attempt: int
    run_id: str | None
    started_at: str | None
    duration: float | None
    outcome: str
    kind: str
    reason: str | None
    backend: str | None
    log: str | None
    prompt: str | None
    session_id: str | None
    usage: dict[str, int | float]


Line = tuple[int, int, dict[str, Any]]
"""A journal line: its offset, its length (newline included) and its object."""


def journal_path(specs_root: Path, spec_name: str) -> Path:
    """Where spec ``spec_name`` of ``specs_root`` keeps its history."""
    from seqrun.paths import safe_name

    return specs_root / HISTORY_DIR / f"{safe_name(spec_name)}.jsonl"


def encode_line(tasks: Sequence[str], record: Mapping[str, Any]) -> bytes:
    """One journal line: ``tasks`` first, then the record, newline-terminated
    (JSON escapes every newline inside a value)."""
    import json  # not at start-up: ``--version`` and ``--co`` never read the history

    text = json.dumps({"tasks": list(tasks), **{k: v for k, v in record.items() if k != "tasks"}},
                      ensure_ascii=False)
    # A lone surrogate (undecodable agent output) becomes a JSON \u escape.
    return text.encode("utf-8", errors="backslashreplace") + b"\n"


def _decode(raw: bytes) -> dict[str, Any] | None:
    import json

    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not _is_tasks(value.get("tasks")):
        return None
    return value


def _is_tasks(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(t, str) for t in value)


@dataclass
class Journal:
    """A spec's journal as one run uses it (the run holds the spec's lock:
    nobody else appends to it)."""

    path: Path
    size: int = 0
    """Where the next line will start: the end of the file as this run knows it."""
    accounted: int = 0
    """The checkpoint the state file records: every line before it is
    counted in the task records and has its progress entry."""

    @classmethod
    def open(cls, path: Path, accounted: int) -> Journal:
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        return cls(path, size, min(accounted, size))

    def append(self, entries: Sequence[tuple[Sequence[str], Mapping[str, Any]]]) -> list[tuple[int, int]]:
        """Append one line per (tasks, record), with a single ``write`` and
        an ``fsync``; return each line's (offset, length)."""
        lines = [encode_line(tasks, record) for tasks, record in entries]
        if not lines:
            return []
        created = not os.path.exists(self.path)
        if created and not self.path.parent.is_dir():
            from seqrun.paths import seqrun_dir

            seqrun_dir(self.path.parent.parent.parent)  # .seqrun/ and its .gitignore
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.path.parent.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            end = os.fstat(fd).st_size
            # A line cut short by a crash: the new one starts on a line of its own.
            prefix = b"\n" if end and os.pread(fd, 1, end - 1) != b"\n" else b""
            data = prefix + b"".join(lines)
            view = memoryview(data)
            while view:  # one write, unless the disk takes it in parts
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        positions = []
        offset = end + len(prefix)
        for line in lines:
            positions.append((offset, len(line)))
            offset += len(line)
        self.size = offset
        return positions

    def lines_from(self, offset: int) -> list[Line]:
        """The whole lines from ``offset`` to the end that hold an attempt."""
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        self.size = max(self.size, offset + len(data))
        found = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break  # a line cut short at the end: not an attempt
            record = _decode(data[start:end])
            if record is not None:
                found.append((offset + start, end + 1 - start, record))
            start = end + 1
        return found

    def line_at(self, at: Any) -> dict[str, Any] | None:
        """The record at ``at`` ([offset, length], as a task record keeps it)."""
        if not (isinstance(at, list) and len(at) == 2 and all(type(x) is int and x >= 0 for x in at)):
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            raw = os.pread(fd, at[1], at[0])
        except OSError:
            return None
        finally:
            os.close(fd)
        return _decode(raw) if raw.endswith(b"\n") and len(raw) == at[1] else None

    def newest(self, task_id: str, at: Any) -> dict[str, Any] | None:
        """The newest record of task ``task_id``: the line ``at`` points to,
        or (when it does not name the task) the last line that does."""
        record = self.line_at(at)
        if record is not None and task_id in record["tasks"]:
            return record
        for _, _, record in reversed(self.lines_from(0)):
            if task_id in record["tasks"]:
                return record
        return None


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every attempt of a journal, oldest first; [] when there is none."""
    import json

    try:
        data = path.read_bytes()
    except OSError:
        return []
    data = data[:data.rfind(b"\n") + 1]  # a line cut short at the end is not an attempt
    if not data:
        return []
    try:
        # One parse of the whole file: the C decoder, not a call per line.
        values = json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):
        values = None  # a damaged line somewhere (or an empty one): line by line
    if isinstance(values, list):
        return [v for v in values if isinstance(v, dict) and _is_tasks(v.get("tasks"))]
    return [record for line in data.split(b"\n") if (record := _decode(line)) is not None]


def by_task(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each task's records (without ``tasks``), in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        plain = {k: v for k, v in record.items() if k != "tasks"}
        for task_id in dict.fromkeys(record["tasks"]):
            found.setdefault(task_id, []).append(dict(plain))
    return found


def bounded(records: Sequence[Any], dropped: int = 0) -> tuple[list[Any], int]:
    """A task's history as readers get it, from all its records (oldest
    first): one record per attempt (a unit's record is not repeated), the
    last :data:`HISTORY_LIMIT`, feedback only on the newest; and how many
    were dropped, ``dropped`` (counted earlier) included."""
    kept: list[Any] = []
    for record in records:
        if kept and isinstance(record, dict) and isinstance(kept[-1], dict) \
                and kept[-1].get("attempt") == record.get("attempt") \
                and kept[-1].get("run_id") == record.get("run_id"):
            continue
        kept.append(record)
    if len(kept) > HISTORY_LIMIT:
        dropped += len(kept) - HISTORY_LIMIT
        kept = kept[-HISTORY_LIMIT:]
    for older in kept[:-1]:
        if isinstance(older, dict) and any(key in older for key in FEEDBACK_KEYS):
            for key in FEEDBACK_KEYS:
                older.pop(key, None)
    return kept, dropped


