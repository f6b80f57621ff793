"""Run one agent invocation in a pseudo-terminal, and leave nothing behind.

Agent CLIs behave differently without a terminal (no colours is fine; some
refuse to run, buffer their output, or wait for a key), so they get a pty.
Its output is read in large chunks with ``select``, which lets the timeouts
and the cancel event be checked while the agent is silent, and goes to an
:class:`~seqrun.terminal.output.OutputSink` (log file, echo, line callback).

Output post-processing (``OPOST``) is switched off in the agent's pty: the log
holds exactly the bytes the agent wrote (no ``\\n`` → ``\\r\\n`` rewriting),
and a terminal that echoes them applies its own.

When the run ends (normally, by a timeout, or cancelled), the agent's whole
process tree is ended (see :mod:`seqrun.terminal.proctree`).  While it runs,
``on_processes`` is told how to find the tree again (agent, session, token,
and the processes that left the session, checked for every 0.05 s), so a
seqrun that follows a ``kill -9`` of this one can end the survivors.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import shutil
import signal
import struct
import termios
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from seqrun.backends.base import Invocation
from seqrun.terminal.output import OutputSink
from seqrun.terminal.proctree import TOKEN_VAR, ProcessTree, TreeRecord, child_subreaper

__all__ = ["ProcessResult", "Started", "run_in_pty", "prepare", "agent_env"]

#: Reported when the agent's status could not be collected (something else
#: in the process waited for it, or it could not be killed): never a success.
UNKNOWN_STATUS = 255

_READ_SIZE = 1 << 20
_POLL = 0.05
"""Longest wait in one ``select``: bounds how late a cancel is noticed."""
_SNAPSHOT_EVERY = 0.5
"""How often the process tree is walked while the agent runs."""
_ADOPTION_CHECK_EVERY = 0.05
"""How often seqrun's own children are listed: an orphan it just adopted
(a daemon that left the agent's session) is recorded at once, not at the
next walk, so a ``kill -9`` of seqrun soon after still finds it."""
_DRAIN_AFTER_EXIT = 0.75
"""How long output is still read after the agent exited while something else
keeps its pty open (a background child): long enough to get the agent's last
words, short enough not to wait for the straggler."""


@dataclass
class ProcessResult:
    """How an agent process ended."""

    exit_status: int
    """Shell style: the exit code, or 128+N if signal N ended it."""
    pid: int
    duration: float
    """Seconds from start until the agent process exited."""
    bytes_out: int
    timed_out: bool = False
    """The ``timeout`` was reached and the tree was killed."""
    idle_timed_out: bool = False
    """No output for ``idle_timeout`` seconds; the tree was killed."""
    interrupted: bool = False
    """The caller cancelled the run (Ctrl-C or SIGTERM in seqrun)."""
    leftover_killed: int = 0
    """Processes of the agent's tree still running after it exited, then ended."""
    error: str | None = None
    """Why seqrun lost track of the agent (e.g. its tmux window was closed);
    None when the status above is the agent's own."""

    @property
    def killed(self) -> bool:
        return self.timed_out or self.idle_timed_out or self.interrupted


@dataclass(frozen=True)
class Started:
    """Handed to ``on_start`` once the agent runs."""

    pid: int
    token: str
    """The ``SEQRUN_TREE_TOKEN`` value in the agent's environment."""
    resize: Callable[[int, int], None]
    """Set the pty size (rows, cols), e.g. when the watching terminal resizes."""


def agent_env(invocation: Invocation, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an agent runs with: inherited plus the invocation's."""
    env = dict(os.environ if base is None else base)
    env.update(invocation.env)
    return env


def resolve_executable(argv0: str, env: dict[str, str], cwd: str | os.PathLike[str] | None) -> str:
    """The path ``argv0`` executes, found the way a shell would find it.

    PATH comes from the agent's environment (not seqrun's); a relative path
    with a slash is relative to the agent's working directory.
    Raises FileNotFoundError so a missing CLI is reported before anything runs.
    """
    if os.sep in argv0:
        path = argv0 if os.path.isabs(argv0) or cwd is None else os.path.join(cwd, argv0)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    else:
        found = shutil.which(argv0, path=env.get("PATH", os.defpath))
        if found:
            return os.path.abspath(found)
    raise FileNotFoundError(errno.ENOENT, "command not found or not executable", argv0)


@dataclass(frozen=True)
class Prepared:
    """An invocation checked and made absolute, ready to exec."""

    argv: list[str]
    cwd: str | None
    stdin: str
    """"tty", "null", or the absolute path of the stdin file."""


def prepare(invocation: Invocation, env: dict[str, str]) -> Prepared:
    """Check what can be checked before forking, and resolve paths.

    Both modes call this first, so a missing CLI, working directory or stdin
    file raises the same FileNotFoundError/NotADirectoryError in the caller
    whether or not tmux is used.  A relative stdin path is relative to
    seqrun's directory, not the agent's.
    """
    cwd = os.path.abspath(invocation.cwd) if invocation.cwd is not None else None
    if cwd is not None and not os.path.isdir(cwd):
        kind = NotADirectoryError if os.path.exists(cwd) else FileNotFoundError
        raise kind(errno.ENOTDIR if os.path.exists(cwd) else errno.ENOENT, "agent working directory", cwd)
    argv = list(invocation.argv)
    if not argv:
        raise ValueError("empty argv")
    argv[0] = resolve_executable(argv[0], env, cwd)
    stdin = invocation.stdin
    if isinstance(stdin, Path) or stdin not in ("tty", "null"):
        stdin = os.path.abspath(stdin)
        if not os.path.isfile(stdin):
            raise FileNotFoundError(errno.ENOENT, "stdin file not found", stdin)
    return Prepared(argv, cwd, str(stdin))


class _Pty:
    """The agent's pty (master side) and pid, however it was started."""

    def __init__(self, fd: int, pid: int, close: Callable[[], None]) -> None:
        self.fd = fd
        self.pid = pid
        self._close = close

    def setwinsize(self, rows: int, cols: int) -> None:
        _set_winsize(self.fd, rows, cols)

    def close(self) -> None:
        self._close()


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _spawn(invocation: Invocation, env: dict[str, str], rows: int, cols: int) -> _Pty:
    """Start the agent as a session leader whose controlling terminal is a new pty.

    ``posix_spawn`` (vfork and exec, no Python code in the child) when the
    agent works in seqrun's own folder, which is the usual case; ptyprocess
    (fork, then Python code in the child) when it must change folder first.
    At seqrun's heap size the first costs under 1 ms, the second about 5.
    """
    prepared = prepare(invocation, env)
    if prepared.cwd is None or prepared.cwd == os.getcwd():
        return _posix_spawn(prepared, env, rows, cols)
    import ptyprocess

    proc = ptyprocess.PtyProcess.spawn(
        prepared.argv, env=env, preexec_fn=_child_setup(prepared), dimensions=(rows, cols)
    )

    def close() -> None:
        proc.fileobj.close()
        proc.closed = True  # ptyprocess must not signal the pid later

    return _Pty(proc.fd, proc.pid, close)


#: Signals the agent starts with at their default action: Python ignores
#: SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM,
                    signal.SIGHUP, signal.SIGQUIT)


def _posix_spawn(prepared: Prepared, env: dict[str, str], rows: int, cols: int) -> _Pty:
    master, slave = os.openpty()  # both close on exec
    try:
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        _set_winsize(slave, rows, cols)
        # Opened by name after setsid (glibc runs file actions after it):
        # the pty becomes the agent's controlling terminal, so Ctrl-C typed
        # into it signals the agent and closing it hangs the agent up.
        tty = os.ttyname(slave)
        actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, 1, tty, os.O_RDWR, 0),
                                          (os.POSIX_SPAWN_DUP2, 1, 2)]
        if prepared.stdin == "tty":
            actions.append((os.POSIX_SPAWN_DUP2, 1, 0))
        else:
            source = os.devnull if prepared.stdin == "null" else prepared.stdin
            actions.append((os.POSIX_SPAWN_OPEN, 0, source, os.O_RDONLY, 0))
        pid = os.posix_spawn(prepared.argv[0], prepared.argv, env, file_actions=actions,
                             setsid=True, setsigmask=(), setsigdef=_DEFAULT_SIGNALS)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return _Pty(master, pid, lambda: os.close(master))


def _child_setup(prepared: Prepared) -> Callable[[], None]:
    """What the forked child does before exec: raw output, cwd, stdin.

    Runs after ptyprocess made the pty our controlling terminal, so fd 1 is
    the pty slave whichever stdin we install.  The directory change happens
    here rather than through ptyprocess's ``cwd``: failures in this function
    are reported to the parent as exceptions, a failing ``chdir`` there is not.
    """
    stdin = prepared.stdin
    stdin_path = None if stdin == "tty" else os.devnull if stdin == "null" else stdin
    cwd = prepared.cwd

    def setup() -> None:
        attrs = termios.tcgetattr(1)
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(1, termios.TCSANOW, attrs)
        if cwd is not None:
            os.chdir(cwd)
        if stdin_path is not None:
            fd = os.open(stdin_path, os.O_RDONLY)
            os.dup2(fd, 0)
            os.close(fd)

    return setup


class _Clock:
    """The run's deadlines: overall timeout, idle timeout, cancellation."""

    def __init__(
        self, timeout: float | None, idle_timeout: float | None, cancel: threading.Event | None
    ) -> None:
        self.start = time.monotonic()
        self.last_output = self.start
        self._timeout = timeout
        self._idle = idle_timeout
        self._cancel = cancel

    def expired(self) -> str | None:
        """Which limit ended the run: "cancel", "timeout", "idle", or None."""
        if self._cancel is not None and self._cancel.is_set():
            return "cancel"
        now = time.monotonic()
        if self._timeout is not None and now - self.start >= self._timeout:
            return "timeout"
        if self._idle is not None and now - self.last_output >= self._idle:
            return "idle"
        return None

    def wait_budget(self) -> float:
        """How long the next select may block."""
        budget = _POLL
        now = time.monotonic()
        if self._timeout is not None:
            budget = min(budget, self.start + self._timeout - now)
        if self._idle is not None:
            budget = min(budget, self.last_output + self._idle - now)
        return max(0.0, budget)


class _PtyRun:
    """The state of one run: pty, process tree, output sink and clock."""

    def __init__(
        self,
        proc: _Pty,
        tree: ProcessTree,
        sink: OutputSink,
        clock: _Clock,
        input_fd: int | None,
        token: str,
        on_processes: Callable[[TreeRecord], None] | None,
    ) -> None:
        self.proc = proc
        self.tree = tree
        self.token = token
        self.on_processes = on_processes
        self._recorded: TreeRecord | None = None
        self._children_seen: set[int] = set()
        self._adoption_check_at = time.monotonic()
        self.sink = sink
        self.clock = clock
        self.fd: int | None = proc.fd
        self.eof = False
        """Every slave fd is closed.  The master stays open until the end:
        closing it would hang up (SIGHUP) an agent that merely closed stdout."""
        self.input_fd = input_fd
        self.pidfd = _pidfd_open(proc.pid)
        self.status: int | None = None
        self.ended_at: float | None = None
        # The first snapshot after _SNAPSHOT_EVERY, not at once: a quick agent
        # is covered by the subreaper check in ProcessTree.leftovers().
        self._snapshot_at = time.monotonic()

    # -- reading -------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for output, input or exit, and handle it."""
        fds = [fd for fd in (self._output_fd, self.input_fd, self.pidfd) if fd is not None]
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            ready = []
        if self._output_fd is not None and self._output_fd in ready:
            self._read_output()
        if self.input_fd is not None and self.input_fd in ready:
            self._forward_input()
        if not ready:
            self.sink.flush()
        if self.pidfd is None or self.pidfd in ready:  # no syscall per chunk otherwise
            self._poll_exit()
        now = time.monotonic()
        adopted = False
        if self.on_processes is not None and now - self._adoption_check_at >= _ADOPTION_CHECK_EVERY:
            self._adoption_check_at = now
            adopted = self.tree.new_children(self._children_seen)
        if adopted or now - self._snapshot_at >= _SNAPSHOT_EVERY:
            self._snapshot_at = now
            self.tree.snapshot()
            self.tree.reap()
            self.report_processes()

    def report_processes(self) -> None:
        """Tell ``on_processes`` when the tree's record changed (rarely: only
        the agent, and processes that left its session, are in it)."""
        if self.on_processes is None:
            return
        record = self.tree.record(self.token)
        if record != self._recorded:
            self._recorded = record
            self.on_processes(record)

    @property
    def _output_fd(self) -> int | None:
        return None if self.eof else self.fd

    def _read_output(self) -> None:
        assert self.fd is not None
        try:
            data = os.read(self.fd, _READ_SIZE)
        except OSError as exc:  # EIO: every slave fd is closed
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self.eof = True
            return
        self.clock.last_output = time.monotonic()
        self.sink.write(data)

    def _forward_input(self) -> None:
        """Pass keystrokes from a watching terminal to the agent's pty.

        Input is dropped rather than blocking when the agent does not read it.
        """
        assert self.input_fd is not None
        try:
            data = os.read(self.input_fd, 4096)
        except OSError:
            data = b""
        if not data:
            self.input_fd = None
            return
        if self.fd is None:
            return
        _, writable, _ = select.select([], [self.fd], [], 0)
        if writable:
            with contextlib.suppress(OSError):
                os.write(self.fd, data)

    def drain(self, seconds: float) -> None:
        """Read whatever output arrives during ``seconds`` (used while killing)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if self._output_fd is None or left <= 0:
                time.sleep(max(0.0, left))
                return
            ready, _, _ = select.select([self._output_fd], [], [], left)
            if not ready:
                return
            self._read_output()

    def _close_pty(self) -> None:
        if self.fd is not None:
            self.proc.close()
            self.fd = None

    # -- exit ----------------------------------------------------------------

    def _poll_exit(self) -> None:
        if self.status is None:
            self.status = self.tree.wait_root()
            if self.status is not None:
                self.ended_at = time.monotonic()
                if self.pidfd is not None:
                    os.close(self.pidfd)
                    self.pidfd = None

    def close(self) -> None:
        self._close_pty()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _pidfd_open(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+)."""
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None


def _supervise(run: _PtyRun, grace: float) -> str | None:
    """Read until the agent exits or a limit is hit; return the limit hit."""
    while run.status is None:
        reason = run.clock.expired()
        if reason is not None:
            run.tree.kill(grace, wait=run.drain)
            run._poll_exit()
            return reason
        run.pump(run.clock.wait_budget())
    # The agent exited: take the rest of its output, but do not wait for a
    # background child that keeps the pty open.
    deadline = time.monotonic() + _DRAIN_AFTER_EXIT
    while not run.eof and time.monotonic() < deadline:
        run.pump(min(_POLL, deadline - time.monotonic()))
    return None


def run_in_pty(
    invocation: Invocation,
    *,
    log_path: Path | None,
    on_line: Callable[[str], None],
    echo: BinaryIO | None = None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    cancel: threading.Event | None = None,
    grace: float = 5.0,
    cols: int = 200,
    rows: int = 50,
    input_fd: int | None = None,
    on_start: Callable[[Started], None] | None = None,
    token: str | None = None,
    on_processes: Callable[[TreeRecord], None] | None = None,
) -> ProcessResult:
    """Run ``invocation`` in a pty until it exits or a limit is hit.

    Output is appended to ``log_path`` (None: no log), copied to ``echo`` and
    passed to ``on_line`` line by line.  ``timeout`` bounds the whole run,
    ``idle_timeout`` the time without output, ``cancel`` stops it on request;
    each ends the agent's process tree (SIGTERM, ``grace`` seconds, SIGKILL).
    Processes the agent leaves behind after a normal exit are ended too.
    ``input_fd`` is read and forwarded to the agent's terminal (a watching
    person's keystrokes).  ``token`` is the ``SEQRUN_TREE_TOKEN`` the agent's
    processes inherit (a new one if None).  ``on_processes`` gets the tree's
    :class:`~seqrun.terminal.proctree.TreeRecord` once the agent runs and
    again whenever it changes, for whoever must end the tree if seqrun dies.
    Raises FileNotFoundError if the command or the stdin file does not exist.
    """
    token = token or uuid.uuid4().hex
    env = agent_env(invocation)
    env[TOKEN_VAR] = token
    with OutputSink(log_path, on_line, echo) as sink, child_subreaper():
        clock = _Clock(timeout, idle_timeout, cancel)
        proc = _spawn(invocation, env, rows, cols)
        run = _PtyRun(proc, ProcessTree(proc.pid, token=token, orphans=True), sink, clock, input_fd,
                      token, on_processes)
        reason: str | None = None
        try:
            run.report_processes()
            if on_start is not None:
                on_start(Started(proc.pid, token, lambda r, c: _resize(run, r, c)))
            reason = _supervise(run, grace)
            leftovers = run.tree.leftovers()
            leftover_killed = run.tree.kill(grace, wait=run.drain) if leftovers else 0
        except BaseException as exc:
            # seqrun itself failed, or a second Ctrl-C asked to stop now: the
            # agent must not outlive us either way, and an impatient user
            # gets SIGKILL at once instead of the grace period.
            _kill_on_error(run, 0.0 if isinstance(exc, KeyboardInterrupt) else grace)
            raise
        finally:
            run.close()
    ended = run.ended_at or time.monotonic()
    return ProcessResult(
        exit_status=run.status if run.status is not None else UNKNOWN_STATUS,
        pid=proc.pid,
        duration=ended - clock.start,
        bytes_out=sink.bytes_out,
        timed_out=reason == "timeout",
        idle_timed_out=reason == "idle",
        interrupted=reason == "cancel",
        leftover_killed=leftover_killed,
        error=None if run.status is not None else "the agent's exit status could not be collected",
    )


def _resize(run: _PtyRun, rows: int, cols: int) -> None:
    if run.fd is not None:
        with contextlib.suppress(OSError):
            run.proc.setwinsize(rows, cols)


def _kill_on_error(run: _PtyRun, grace: float) -> None:
    """Never leave the agent running because seqrun itself failed."""
    try:
        run.tree.kill(grace)
    except BaseException:  # a second Ctrl-C: no more patience
        run.tree.kill(0)
        raise

