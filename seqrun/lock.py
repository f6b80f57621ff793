"""One run per spec: a second seqrun on a spec that a live run holds is refused.

A run holds two kinds of ``flock`` for each spec it runs, for the whole
session:

- **runtime locks**, outside the work tree, so that an agent that cleans the
  tree (``git clean -fdx``, ``rm -rf .kiro/specs/.seqrun``) cannot delete
  them: ``<runtime folder>/locks/spec-<hash>.lock``, where ``<hash>`` is a
  hash of the real path of the spec's tasks file (two paths to one spec, a
  symlink or ``..``, share it; two specs never do, whatever their names
  sanitise to). The runtime folders are ``$XDG_RUNTIME_DIR/seqrun`` when that
  variable names a folder of ours, and ``/tmp/seqrun-<uid>``, created 0700
  and used only while it is a real folder (not a symlink) owned by us and
  closed to others. The lock is taken in *each* usable one, so a run started
  without ``XDG_RUNTIME_DIR`` (cron) and one started with it (a login shell)
  still see each other; when neither is usable the run is refused (exit 4).
  The file holds the holder's pid and the spec's path, and is removed when
  the run ends; a file replaced while we waited for it is locked again.
- **the tree lock** ``<specs root>/.seqrun/locks/<spec>.lock``, as before
  (``<spec>`` is the spec's name, its path relative to the specs root, as a
  one-to-one :func:`~seqrun.paths.safe_name`):
  it is what runs of other users, or with another ``/tmp`` (a container
  sharing the tree), have in common, and what tools that look for a running
  seqrun in the tree find. It holds the holder's pid.

The kernel drops a lock when its process dies, however it dies (``kill -9``
included), so a lock left by a killed run is simply taken over by the next
one; the pid written in the files is only there to name the holder in the
error message ("spec … is being run by another seqrun (pid N) …", exit 4).

Readers that only want to know whether a run goes on (``--status``) use
:func:`runtime_lock_paths`, :func:`tree_lock_path` and :func:`lock_holder`:
they create no folder and no file, and take no lock they keep.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.paths import safe_name, seqrun_dir

if TYPE_CHECKING:
    from seqrun.main import Session
    from seqrun.nodes import Spec

#: The shared per-user folder used whatever the environment says.
TMP_RUNTIME = Path("/tmp")


def lock_path(specs_root: Path, spec_name: str) -> Path:
    """The tree lock of spec ``spec_name`` under ``specs_root``, its folder created."""
    seqrun_dir(specs_root)  # .seqrun/ with its .gitignore
    path = tree_lock_path(specs_root, spec_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def tree_lock_path(specs_root: Path, spec_name: str) -> Path:
    """Where the tree lock of spec ``spec_name`` is; nothing is created."""
    return specs_root / ".seqrun" / "locks" / f"{safe_name(spec_name)}.lock"


def spec_identity(spec: Spec) -> str:
    """What makes two paths the same spec: the real path of its tasks file."""
    return os.path.realpath(spec.tasks_file)


def runtime_lock_name(identity: str) -> str:
    import hashlib

    return f"spec-{hashlib.sha256(os.fsencode(identity)).hexdigest()[:32]}.lock"


def _private_folder(path: Path) -> Path | None:
    """``path`` as a folder only we can enter, created 0700 if missing;
    None when it is a symlink, not a folder, someone else's, or unusable."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return None
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, 0o700)  # ours: close it (a umask may have opened it)
    except OSError:
        return None
    return path


def runtime_lock_folders() -> list[Path]:
    """Every usable ``<runtime folder>/locks``: ``$XDG_RUNTIME_DIR/seqrun``
    when set to a folder of ours, and ``/tmp/seqrun-<uid>``."""
    bases: list[Path] = []
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        try:
            info = os.stat(xdg)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and os.access(xdg, os.W_OK | os.X_OK):
                bases.append(Path(xdg) / "seqrun")
        except OSError:
            pass
    bases.append(TMP_RUNTIME / f"seqrun-{os.getuid()}")
    folders: list[Path] = []
    for base in bases:
        top = _private_folder(base)
        locks = _private_folder(top / "locks") if top is not None else None
        if locks is not None:
            folders.append(locks)
    return folders


def runtime_lock_candidates() -> list[Path]:
    """The runtime lock folders a run would use (:func:`runtime_lock_folders`),
    for a reader: nothing is created, changed or closed; a folder that is a
    symlink, or someone else's, is left out, as a run leaves it out."""
    bases: list[Path] = []
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        bases.append(Path(xdg) / "seqrun")
    bases.append(TMP_RUNTIME / f"seqrun-{os.getuid()}")
    found = []
    for base in bases:
        try:
            if all(stat.S_ISDIR((info := os.lstat(folder)).st_mode) and info.st_uid == os.getuid()
                   for folder in (base, base / "locks")):
                found.append(base / "locks")
        except OSError:
            continue
    return found


def runtime_lock_paths(spec: Spec) -> list[Path]:
    """Where a run of ``spec`` holds its runtime locks; nothing is created."""
    name = runtime_lock_name(spec_identity(spec))
    return [folder / name for folder in runtime_lock_candidates()]


def lock_holder(path: Path) -> str | None:
    """Who holds the lock at ``path`` (the pid written in it, or
    ``"unknown"``), None when nobody holds it or there is no such file.

    For readers (``--status``): the file is opened read-only, never created
    nor written, and never waited for. Whether it is held is asked with a
    non-blocking shared ``flock`` on our own open file, dropped at once: a run
    that tries to take the lock in that instant (microseconds) is refused as
    if another seqrun held it.
    """
    import fcntl  # only where a lock is taken or asked about: a listing never does

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None  # no file: no run holds it (a run's lock file exists while it is held)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        except OSError:
            return None  # a file system without flock: nobody can hold it either
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    return (text.splitlines() or [""])[0].strip() or "unknown"


class SpecLock:
    """One ``flock``ed file; ``removable`` files are deleted by their holder
    when it releases them (the runtime locks), the others stay (the tree lock)."""

    def __init__(self, path: Path, *, removable: bool = False, about: str = "") -> None:
        self.path = path
        self.removable = removable
        self.about = about
        """What follows the pid in the file (the spec's real path)."""
        self.fd: int | None = None
        self.owner: int | None = None

    def acquire(self, what: str) -> None:
        import fcntl  # only where a lock is taken or asked about: a listing never does

        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        while True:
            fd = os.open(self.path, flags, 0o600 if self.removable else 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise UsageError(f"{what} is being run by another seqrun (pid {holder}); "
                                 f"wait for it to finish or stop it") from None
            if not self.removable or self._still_named(fd):
                break
            # Its holder removed it between our open and our flock: the file
            # at the path now is the lock.
            os.close(fd)
        self.fd = fd
        self.write_pid()

    def _still_named(self, fd: int) -> bool:
        try:
            here, there = os.fstat(fd), os.lstat(self.path)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def write_pid(self) -> None:
        """Name this process as the holder (again, in a ``--detach`` child)."""
        if self.fd is not None:
            self.owner = os.getpid()
            text = f"{self.owner}\n" + (f"{self.about}\n" if self.about else "")
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text.encode("utf-8", "surrogateescape"), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        if self.removable and self.owner == os.getpid() and self._still_named(self.fd):
            try:
                os.unlink(self.path)  # while still locked: a waiter re-checks the name
            except OSError:
                pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None


def locks_for(spec: Spec, folders: list[Path]) -> list[SpecLock]:
    """The runtime locks of ``spec`` (one per folder), then its tree lock."""
    identity = spec_identity(spec)
    name = runtime_lock_name(identity)
    runtime = [SpecLock(folder / name, removable=True, about=identity) for folder in folders]
    return [*runtime, SpecLock(lock_path(spec.folder.parent, spec.name))]


class LockPlugin:
    def __init__(self) -> None:
        self.locks: list[SpecLock] = []

    @hookimpl(tryfirst=True)
    def seqrun_collection_finish(self, session: Session) -> None:
        if session.config.option.collectonly:
            return
        specs = [spec for spec in session.specs if any(item.spec is spec for item in session.items)]
        if not specs:
            return
        folders = runtime_lock_folders()
        if not folders:
            raise UsageError(f"no private folder for seqrun's locks: {TMP_RUNTIME}/seqrun-{os.getuid()} "
                             "is not a folder of yours (and XDG_RUNTIME_DIR names none)")
        for spec in specs:
            for lock in locks_for(spec, folders):
                # Held locks are kept in self.locks, so sessionfinish releases them on a refusal too.
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
