"""``SEQUENTIAL_PROGRESS.md``: the seed's progress log, one entry per dispatch.

Append-only: one ``## Iteration N`` entry per attempt (rate-limited ones
included and marked so), each written with a single ``write`` under an
``flock`` and fsync'd, so two seqruns of one folder never interleave and a
crash loses at most the entry being written. N continues from the highest
number already in the file.

An entry's identity is its ``- **Log**:`` line: every attempt has a log file
of its own (``<task>/<attempt>.log``, never reused), and the attempt's
history record (its journal line, :mod:`seqrun.statefile`) names the same
path. A seqrun that dies after writing the attempt's line and before
appending the entry loses that entry only until the next run of the spec: at
its start, every attempt after the state's checkpoint (every attempt before
it has its entry; the history of a state file of the previous format is
checked whole, once) whose log no entry names gets its entry
(:meth:`ProgressLog.recover`), oldest first, marked ``- **Recovered**:``.
The file is read once, when the run starts (a search for a literal, a few
ms for a night's 5,000 entries); later reads cover only what other runs
appended since.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrun.config import UsageError
from seqrun.outcome import Outcome
from seqrun.statefile import existing_regular_file, utcnow
from seqrun.text import LazyPattern

if TYPE_CHECKING:
    from seqrun.outcome import Attempt

PROGRESS_NAME = "SEQUENTIAL_PROGRESS.md"


def progress_path_for(state_file: Path) -> Path:
    """The progress file beside a state file."""
    return state_file.with_name(PROGRESS_NAME)


# Each preceded by a newline rather than anchored with re.M: a literal the
# search engine skips to, so a night's file of 5,000 entries scans in a few ms.
_ITERATION = LazyPattern(rb"\n## Iteration (\d+)")
_LOG_LINE = LazyPattern(rb"\n- \*\*Log\*\*: ([^\r\n]*)")
_LOG_PREFIX = b"\n- **Log**: "
#: Up to this many watched logs, each is looked for by itself (a search for
#: its line); more, and every Log line of the file is read.
_FEW_LOGS = 64


@dataclass(frozen=True)
class RecordedAttempt:
    """One attempt as the state file's ``history`` records it: enough to
    write its progress entry after the fact."""

    spec: str
    task_id: str
    title: str
    subtasks: tuple[str, ...]
    """The other tasks of its ``--dispatch unit`` run (they share the record)."""
    number: int
    outcome: str
    kind: str
    reason: str
    started_at: str
    duration: float | None
    log: str


def recorded_attempts(spec: str, record: Mapping[str, Any]) -> list[RecordedAttempt]:
    """Every attempt the history of ``spec``'s record holds that names its
    log, oldest first; a record a dispatch unit's tasks share counts once."""
    by_log: dict[str, RecordedAttempt] = {}
    members: dict[str, list[str]] = {}
    tasks = record.get("tasks")
    for task_id, entry in (tasks.items() if isinstance(tasks, dict) else ()):
        history = entry.get("history") if isinstance(entry, dict) else None
        for past in history if isinstance(history, list) else ():
            log = past.get("log") if isinstance(past, dict) else None
            if not isinstance(log, str) or not log or "\n" in log or "\r" in log:
                continue
            members.setdefault(log, []).append(str(task_id))
            if log in by_log:
                continue
            number, duration = past.get("attempt"), past.get("duration")
            by_log[log] = RecordedAttempt(
                spec=spec, task_id=str(task_id), title=str(entry.get("title") or ""), subtasks=(),
                number=number if isinstance(number, int) else 0,
                outcome=str(past.get("outcome") or "unknown"), kind=str(past.get("kind") or ""),
                reason=str(past.get("reason") or ""), started_at=str(past.get("started_at") or "?"),
                duration=float(duration) if isinstance(duration, (int, float)) else None, log=log)
    found = [RecordedAttempt(**{**vars(a), "subtasks": tuple(m for m in members[a.log] if m != a.task_id)})
             for a in by_log.values()]
    return sorted(found, key=lambda a: (a.started_at, a.number))


def _status(outcome: str, kind: str) -> str:
    status = outcome
    if outcome != Outcome.PASSED.value and kind and kind != outcome:
        status = f"{status} ({kind})"
    if outcome == Outcome.RATE_LIMITED.value:
        status += ", retried after the wait; not counted as an iteration of --max-iterations"
    return status


def _entry(task: str, subtasks: Iterable[str], status: str, time: str, message: str,
           log: str | None, recovered: str = "") -> str:
    """The body of one entry: the seed's Task, Status, Time, Message, then seqrun's lines."""
    from seqrun.text import printable

    others = ", ".join(subtasks)
    return (
        f"- **Task**: {task}\n"
        + (f"- **Subtasks**: {others}\n" if others else "")
        + f"- **Status**: {status}\n"
        f"- **Time**: {time}\n"
        f"- **Message**: {' '.join(printable(message).split())[:500]}\n"
        + (f"- **Log**: {log}\n" if log else "")
        + (f"- **Recovered**: {recovered}\n" if recovered else "")
    )


def _names_log(chunk: bytes, log: str) -> bool:
    """Whether a ``- **Log**:`` line of ``chunk`` names exactly ``log``."""
    needle = _LOG_PREFIX + log.encode("utf-8", errors="replace")
    at = chunk.find(needle)
    while at >= 0:
        end = at + len(needle)
        if end == len(chunk) or chunk[end] in b"\r\n":
            return True
        at = chunk.find(needle, end)
    return False


class ProgressLog:
    """Appends ``## Iteration N`` entries, the seed's progress format.

    N continues from the highest number already in the file, which is
    re-scanned only from where this run last looked (entries appended by
    another run in between are counted; the cost does not grow with the file).
    The same scan notes which of the ``watch`` logs an entry names already.
    """

    def __init__(self, path: Path, watch: Iterable[str] = ()) -> None:
        self.path = path
        self.known_size = 0
        self.iteration = 0
        self.watch = frozenset(watch)
        """The logs whose entries :meth:`recover` looks for."""
        self.logged: set[str] = set()
        """Those of ``watch`` that an entry names."""
        if not existing_regular_file(path, "progress file"):
            return
        try:
            # Opened for appending, as each entry will be: a file that cannot
            # take one is found now, not after the first agent worked for an hour.
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise UsageError(f"cannot write progress file {path}: {exc.strerror or exc}") from None
        try:
            self._scan(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def _scan(self, fd: int, size: int) -> None:
        """Count the entries between what this run knows and ``size``."""
        if size < self.known_size:  # truncated or replaced: start again
            self.known_size, self.iteration = 0, 0
            self.logged.clear()
        start = self.known_size
        chunk = os.pread(fd, size - start, start) if size > start else b""
        # A match at the chunk's start is a line's start only if a newline precedes it.
        if start == 0 or os.pread(fd, 1, start - 1) == b"\n":
            chunk = b"\n" + chunk
        numbers = _ITERATION.findall(chunk)
        if numbers:
            self.iteration = max(self.iteration, *map(int, numbers))
        wanted = self.watch - self.logged
        if len(wanted) > _FEW_LOGS:
            for m in _LOG_LINE.finditer(chunk):
                log = m.group(1).decode("utf-8", "replace")
                if log in wanted:
                    self.logged.add(log)
        else:
            for log in wanted:
                if _names_log(chunk, log):
                    self.logged.add(log)
        self.known_size = size

    def append(self, spec: str, title: str, attempt: Attempt, log: str | None) -> None:
        """One ``## Iteration N`` entry for one dispatch (one attempt)."""
        from seqrun.text import printable

        verdict = attempt.verdict
        self._append_entries([_entry(
            task=f"{spec}::{attempt.task_id} {printable(title)}",
            subtasks=[m for m in attempt.members if m != attempt.task_id],
            status=_status(attempt.outcome.value, attempt.kind.value),
            time=f"{utcnow()} ({attempt.duration:.1f}s, attempt {attempt.number})",
            message=verdict.reason or verdict.final_message or "", log=log)])
        if log is not None:
            self.logged.add(log)

    def recover(self, attempts: Sequence[RecordedAttempt], run_id: str) -> int:
        """Write the entry of each of ``attempts`` (from the state file) that
        no entry names yet, in their order; return how many were written.

        Only the run that holds the spec's lock writes its entries, so what
        the scan found is the whole answer: nothing to re-read under the
        file's lock but the numbering."""
        from seqrun.text import printable

        entries = []
        for a in attempts:
            if a.log in self.logged:
                continue
            took = f"{a.duration:.1f}s, " if a.duration is not None else ""
            entries.append(_entry(
                task=f"{a.spec}::{a.task_id} {printable(a.title)}", subtasks=a.subtasks,
                status=_status(a.outcome, a.kind), time=f"{a.started_at} ({took}attempt {a.number})",
                message=a.reason, log=a.log,
                recovered=(f"written by run {run_id} from the state file's record: seqrun stopped "
                           "before writing this entry (Time is when the attempt started)")))
        if entries:
            self._append_entries(entries)
            self.logged.update(a.log for a in attempts)
        return len(entries)

    def _append_entries(self, bodies: list[str]) -> None:
        """Append entries under the file's lock, numbered on from the highest
        there: one ``write``, one fsync."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Another seqrun (another spec of this folder) may append too.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size != self.known_size:
                self._scan(fd, size)
            entries = []
            for body in bodies:
                self.iteration += 1
                entries.append(f"## Iteration {self.iteration}\n\n{body}\n")
            if size == 0:
                prefix = "# Sequential progress\n\n"
            elif os.pread(fd, 1, size - 1) != b"\n":
                prefix = "\n\n"  # an entry cut short by a crash, or a hand edit
            else:
                prefix = ""
            data = (prefix + "".join(entries)).encode("utf-8", errors="replace")
            os.write(fd, data)
            os.fsync(fd)
            self.known_size = size + len(data)
        finally:
            os.close(fd)
