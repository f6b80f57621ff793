"""``SEQUENTIAL_PROGRESS.md``: the seed's progress log, one entry per dispatch.

Append-only: one ``## Iteration N`` entry per attempt (rate-limited ones
included and marked so), each written with a single ``write`` under an
``flock`` and fsync'd, so two seqruns of one folder never interleave and a
crash loses at most the entry being written. N continues from the highest
number already in the file.
"""
from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from seqrun.config import UsageError
from seqrun.outcome import Attempt, Outcome
from seqrun.statefile import existing_regular_file, utcnow

PROGRESS_NAME = "SEQUENTIAL_PROGRESS.md"


def progress_path_for(state_file: Path) -> Path:
    """The progress file beside a state file."""
    return state_file.with_name(PROGRESS_NAME)


_ITERATION = re.compile(rb"^## Iteration (\d+)", re.M)


class ProgressLog:
    """Appends ``## Iteration N`` entries, the seed's progress format.

    N continues from the highest number already in the file, which is
    re-scanned only from where this run last looked (entries appended by
    another run in between are counted; the cost does not grow with the file).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known_size = 0
        self.iteration = 0
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
        start = self.known_size
        chunk = os.pread(fd, size - start, start) if size > start else b""
        for m in _ITERATION.finditer(chunk):
            # A match at the chunk's start is a heading only if a line starts there.
            if m.start() == 0 and start > 0 and os.pread(fd, 1, start - 1) != b"\n":
                continue
            self.iteration = max(self.iteration, int(m.group(1)))
        self.known_size = size

    def append(self, spec: str, title: str, attempt: Attempt, log: str | None) -> None:
        """One ``## Iteration N`` entry for one dispatch (one attempt)."""
        from seqrun.text import printable

        verdict = attempt.verdict
        message = " ".join(printable(verdict.reason or verdict.final_message or "").split())
        status = attempt.outcome.value
        if attempt.outcome is not Outcome.PASSED and attempt.kind.value != status:
            status = f"{status} ({attempt.kind.value})"
        if attempt.outcome is Outcome.RATE_LIMITED:
            status += ", retried after the wait; not counted as an iteration of --max-iterations"
        members = [m for m in attempt.members if m != attempt.task_id]
        entry = (
            f"- **Task**: {spec}::{attempt.task_id} {printable(title)}\n"
            + (f"- **Subtasks**: {', '.join(members)}\n" if members else "")
            + f"- **Status**: {status}\n"
            f"- **Time**: {utcnow()} ({attempt.duration:.1f}s, attempt {attempt.number})\n"
            f"- **Message**: {message[:500]}\n"
            + (f"- **Log**: {log}\n" if log else "")
        )
        self._append_entry(entry)

    def _append_entry(self, body: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Another seqrun (another spec of this folder) may append too.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size != self.known_size:
                self._scan(fd, size)
            self.iteration += 1
            entry = f"## Iteration {self.iteration}\n\n{body}\n"
            if size == 0:
                prefix = "# Sequential progress\n\n"
            elif os.pread(fd, 1, size - 1) != b"\n":
                prefix = "\n\n"  # an entry cut short by a crash, or a hand edit
            else:
                prefix = ""
            data = (prefix + entry).encode("utf-8", errors="replace")
            os.write(fd, data)
            os.fsync(fd)
            self.known_size = size + len(data)
        finally:
            os.close(fd)


