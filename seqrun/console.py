"""The console can go away under a run; the run goes on.

``seqrun | head -2`` closes seqrun's stdout after two lines; a terminal
multiplexer or a log collector can close stderr. Neither is a reason to stop
the tasks: what a run must leave behind is its work, its log, state, progress
and report files, and an exit status the tasks decide.

:func:`guarded_console` (entered by the ``seqrun`` console script, for the
whole process) puts a :class:`ConsoleStream` in front of ``sys.stdout`` and
``sys.stderr``. Guarantees:

* A write or flush that fails because the reader is gone (``EPIPE``, or
  ``EIO``/``ENXIO`` from a vanished terminal) or because the stream object was
  closed is dropped, never raised: every reporter, warning and error message
  (and rich, which would otherwise exit on a broken pipe) keeps running.
* From then on that stream is *silenced*: its descriptor is pointed at
  ``/dev/null`` (``dup2``), so a child that inherits it, a later ``print`` and
  the interpreter's final flush write nowhere instead of failing.
* ``SIGPIPE`` stays ignored in seqrun itself (Python's default, made explicit
  for embedding hosts), so a closed pipe is an error code, never a death;
  an agent started by :mod:`seqrun.terminal.ptyexec` gets it back at its default.
* Any other error (a full disk under ``seqrun > out.txt``) still raises: it
  is the environment's fault, reported as such (exit 4).
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["ConsoleStream", "guarded_console", "is_console_gone", "went_away"]

#: The reader of the stream is gone for good: a closed pipe or socket, a
#: terminal that was hung up.
_GONE_ERRNOS = frozenset({errno.EPIPE, errno.ECONNRESET, errno.EIO, errno.ENXIO})


def is_console_gone(exc: BaseException) -> bool:
    """``exc`` says the console's reader is gone (not that a disk is full)."""
    if isinstance(exc, ValueError):  # "I/O operation on closed file"
        return True
    return isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS


class ConsoleStream:
    """A text stream that silences itself when its reader goes away.

    Wraps ``sys.stdout`` or ``sys.stderr``; anything else (``encoding``,
    ``isatty``, ``buffer``…) is the wrapped stream's. ``buffer`` is handed out
    as is: its one user, the ``-s`` echo (:class:`seqrun.terminal.output.OutputSink`),
    drops a failing echo itself.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.wrapped = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.wrapped.write(text)
            except (OSError, ValueError) as exc:
                self._went_away(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.wrapped.flush()
            except (OSError, ValueError) as exc:
                self._went_away(exc)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def isatty(self) -> bool:
        if self.gone:
            return False
        try:
            return self.wrapped.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def _went_away(self, exc: OSError | ValueError) -> None:
        went_away(self.wrapped, exc)
        self.gone = True


def went_away(stream: IO[str], exc: OSError | ValueError) -> None:
    """``stream`` failed with ``exc``: re-raise it unless the reader is gone;
    if gone, point the descriptor at ``/dev/null``."""
    if not is_console_gone(exc):
        raise exc
    # Whatever the stream still buffers, and every later write to the
    # descriptor (children, the interpreter's last flush), goes to
    # /dev/null rather than failing again.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()


@contextlib.contextmanager
def guarded_console() -> Iterator[None]:
    """Guard ``sys.stdout`` and ``sys.stderr`` (and ignore ``SIGPIPE``) inside the block."""
    saved = sys.stdout, sys.stderr
    previous_sigpipe: Any = None
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not the main thread
        previous_sigpipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # None when Python runs without a console (pythonw): nothing to guard.
    sys.stdout = ConsoleStream(saved[0]) if saved[0] is not None else None  # type: ignore[assignment]
    sys.stderr = ConsoleStream(saved[1]) if saved[1] is not None else None  # type: ignore[assignment]
    try:
        yield
    finally:
        guarded = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = saved
        for stream in guarded:
            if stream is not None:
                stream.flush()  # through the guard: a final flush cannot fail
        if previous_sigpipe is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGPIPE, previous_sigpipe)
