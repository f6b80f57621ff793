"""Crash-safe file writes: a reader sees the old file or the whole new one.

:func:`atomic_write` writes a temporary file in the target's folder, fsyncs
it, renames it over the target and fsyncs the folder. Killed (or the power
cut) at any instant, the target holds either its previous bytes or the new
ones; at worst a ``.<name>.*.tmp`` file is left beside it, which
:func:`remove_stale_temps` clears on a later run. A failure (a full disk, a
read-only folder) raises an ``OSError`` whose ``filename`` is the target's.
"""
from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder,
    fsync'd and renamed over the target, so a crash at any instant leaves
    either the previous content or the new one, never a mix.

    A symlink is written through (its target is replaced, the link stays).
    A new file gets the usual ``0o666 & ~umask`` mode rather than the
    owner-only mode of the temporary file; an existing one keeps its mode.
    If anything fails, the temporary file is removed and the target is left
    as it was. ``durable=False`` skips the fsyncs: still atomic (old or new,
    never a mix), but a power cut may bring back the old content — for marks
    that are only a courtesy, such as ``[-]`` while a task runs.
    """
    # Renaming over a symlink would replace the link itself by a plain file.
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(target, mode))
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from None
        raise
    if durable:
        fsync_dir(target.parent)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path``: the file the caller asked for, which the user
    knows, rather than the temporary file they never saw."""
    return type(exc)(exc.errno, exc.strerror, os.fspath(path)) if exc.errno else exc


def temp_pattern(path: Path) -> str:
    """The glob matching the temporary files :func:`atomic_write` makes for ``path``."""
    return f".{path.name}.*.tmp"


def remove_stale_temps(path: Path, older_than: float = 0.0) -> int:
    """Remove temporary files a killed :func:`atomic_write` left beside
    ``path`` (modified more than ``older_than`` seconds ago); return how many.

    Only call it with ``older_than=0`` while no other process can be writing
    ``path`` (a lock is held), since it would delete their file in flight.
    """
    removed = 0
    now = time.time()
    try:
        leftovers = list(path.parent.glob(temp_pattern(path)))
    except OSError:
        return 0
    for leftover in leftovers:
        try:
            if now - leftover.lstat().st_mtime >= older_than:
                leftover.unlink()
                removed += 1
        except OSError:
            pass  # gone already, or not ours to remove: harmless
    return removed


def _mode_for(target: Path, mode: int | None) -> int:
    if mode is not None:
        return mode
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only way to read it is to set it: restore it at once.
    current = os.umask(0o022)
    os.umask(current)
    return current


def fsync_dir(folder: Path) -> None:
    """Make ``folder``'s entries durable: a rename, or a new file's name, is
    only on disk once its folder is. Best effort (a folder that cannot be
    opened or synced is left as it is)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
