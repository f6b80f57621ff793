"""One run per spec: a second seqrun on a spec that a live run holds is refused.

The lock is an ``flock`` on ``<specs root>/.seqrun/locks/<spec>.lock``, held
for the whole session; ``<spec>`` is the spec's name (its path relative to the
specs root) as a :func:`~seqrun.paths.safe_name`, one-to-one, so two specs
never share a lock (``feat x`` and ``feat_x``, ``backend/phase_1.md`` and
``frontend/phase_1.md``). The kernel drops it when its process dies, however it
dies (``kill -9`` included), so a lock left by a killed run is simply taken
over by the next one; the pid written in the file is only there to name the
holder in the error message.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.paths import safe_name, seqrun_dir

if TYPE_CHECKING:
    from seqrun.main import Session


def lock_path(specs_root: Path, spec_name: str) -> Path:
    folder = seqrun_dir(specs_root) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{safe_name(spec_name)}.lock"


class SpecLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, what: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"{what} is being run by another seqrun (pid {holder}); "
                             f"wait for it to finish or stop it") from None
        self.fd = fd
        self.write_pid()

    def write_pid(self) -> None:
        """Name this process as the holder (again, in a ``--detach`` child)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class LockPlugin:
    def __init__(self) -> None:
        self.locks: list[SpecLock] = []

    @hookimpl(tryfirst=True)
    def seqrun_collection_finish(self, session: Session) -> None:
        if session.config.option.collectonly:
            return
        for spec in session.specs:
            if not any(item.spec is spec for item in session.items):
                continue
            lock = SpecLock(lock_path(spec.folder.parent, spec.name))
            lock.acquire(f"spec {spec.nodeid}")
            self.locks.append(lock)

    @hookimpl
    def seqrun_detached(self, session: Session, log_path: Path) -> None:
        # The forked child holds the same flocks; the error message must name it.
        for lock in self.locks:
            lock.write_pid()

    @hookimpl(trylast=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        for lock in self.locks:
            lock.release()
        self.locks.clear()


@hookimpl
def seqrun_configure(config: Config) -> None:
    config.pluginmanager.register(LockPlugin(), "spec-lock")
