"""JSON files that several seqrun runs update at once: a locked read-merge-write.

Two seqrun processes running two specs under one specs root share the files
of ``<specs root>/.seqrun/cache/`` (``lastfailed.json``, ``stuck.json``).
:func:`update_json` never writes back what a run read at its start: under an
``flock`` of the file's folder it reads the file as it is now, lets the
caller apply only its own changes to that object, and replaces the file
atomically (:func:`seqrun.atomicfile.atomic_write`), so no run loses another
run's entries. The file is only written when the object changed. A missing or
damaged file, or one that does not hold a JSON object, reads as ``{}``.

The lock is best effort, as the state file's: where ``flock`` is unsupported
or another run holds it for more than :data:`LOCK_WAIT` seconds, the update
goes ahead unlocked rather than stopping the run.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from seqrun.atomicfile import atomic_write

#: How long an update waits for another run's update of the same folder.
LOCK_WAIT = 10.0


class FolderLock:
    """An exclusive ``flock`` on a folder for the duration of a ``with`` block
    (``held`` says whether it was obtained)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None
        self.held = False

    def __enter__(self) -> FolderLock:
        import fcntl  # only when a file is written: a listing never locks

        try:
            self.fd = os.open(self.folder, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return self
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return self
                time.sleep(0.01)
            except OSError:
                return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None


def read_json_object(path: Path) -> dict[str, Any]:
    """The object in ``path``; ``{}`` when it is missing, damaged or not an object."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def update_json(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Apply ``change`` to the object ``path`` holds now, under the folder's
    lock, and write the result (``indent=2``, in the order ``change`` gives)
    when it differs. ``path``'s folder must exist. Returns the new object;
    an ``OSError`` (a full disk) names ``path``."""
    import json

    with FolderLock(path.parent):
        current = read_json_object(path)
        new = change(dict(current))
        if new != current or list(new) != list(current):
            text = json.dumps(new, indent=2, ensure_ascii=False) + "\n"
            atomic_write(path, text.encode("utf-8", errors="replace"))
        return new
