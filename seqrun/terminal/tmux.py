"""Run agents so a person can watch them in tmux windows, attach and type.

One tmux session (created detached on first use, on the environment's default
server, so ``tmux attach -t NAME`` finds it) gets one window per run (named
by the caller: seqrun's runner uses ``task-<id>``, ``task-<id>#<attempt>``
from the second attempt on).  The agent runs exactly as in pty mode, in
seqrun's own pty (:func:`~seqrun.terminal.ptyexec.run_in_pty`): the same
process handling, log bytes, lines and exit status, so verdicts cannot depend
on the mode.  The window runs a small viewer (:mod:`seqrun.terminal.window`)
that shows what seqrun sends it (the raw output, or a header and the rendered
output: :mod:`seqrun.terminal.view`), sends the pane's keystrokes and size to
the agent's terminal, and shows seqrun's last line at the end: the exit status
(:meth:`TmuxSession.run`), or the verdict, sent by
:meth:`TaskWindow.close` once it is decided, after verification.  Until
then the viewer waits; if seqrun dies first it says so.  The agent gets the
pane's ``TERM``, ``TMUX`` and ``TMUX_PANE``, since that is where its output is
drawn.

The agent starts at once; the viewer connects while it runs (output before
that is kept and replayed).  Nothing waits for the viewer: the last line is
handed over and delivered as soon as the viewer is there, while seqrun goes
on to the next task; :meth:`TmuxSession.close` (the end of the run) waits
until every window's viewer has its last line.  Closing the window, or
killing the viewer, ends the agent's process tree, and the result says so.
A window costs one tmux call: marking the previous window finished and
pruning (``keep_windows``) ride along in the call that creates the next one.

The user's tmux configuration is honoured (their key bindings work when they
attach) but never relied upon: windows are addressed by ``#{window_id}``,
never by index (``base-index``); the command is passed as separate argv words
so tmux execs it without a shell (``default-shell``, ``default-command``);
``remain-on-exit``, ``automatic-rename``, ``allow-rename`` and seqrun's
``@seqrun`` mark are set on each window in the very tmux call that creates it
(no window of seqrun's ever exists unmarked, so a later run can prune what a
killed one left); names are sanitised; no task data is ever on a command line.
"""
from __future__ import annotations

import dataclasses
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from seqrun.backends.base import Invocation
from seqrun.terminal import _channel as ch
from seqrun.terminal.proctree import TreeRecord
from seqrun.terminal.ptyexec import ProcessResult, Started, agent_env, prepare, run_in_pty

__all__ = ["TaskWindow", "TmuxError", "TmuxSession", "sanitize_name", "tmux_available", "watch_command"]

_CONNECT_TIMEOUT = 30.0
"""How long the viewer may take to start (a cold Python on a loaded machine)."""
_EARLY_OUTPUT = 4 << 20
"""Output kept for a viewer that has not connected yet (its tail, in bytes)."""
_POLL = 0.05
"""How often the link checks the caller's cancel event while the agent runs."""

#: The program each window runs (as a file: it must not import seqrun).
VIEWER = str(Path(__file__).with_name("window.py"))

WINDOW_CLOSED = "the tmux window was closed while the agent ran"


class TmuxError(RuntimeError):
    """A tmux command failed, or the window's viewer never connected."""


def sanitize_name(text: str, *, limit: int = 64, window: bool = False) -> str:
    """A session or window name tmux accepts and no shell could misread.

    tmux reserves ``:`` and ``.`` in targets; everything but letters, digits,
    ``_`` and ``-`` becomes ``_`` (runs collapsed). Windows are targeted by
    their id, never by name, so a window name keeps its dots (``task-1.2``)
    and a ``#`` before digits (``task-1.2#2``, attempt 2): tmux expands
    formats in ``new-window -n``, and ``#`` followed by a digit is no format
    (``#(``, ``#{``, ``##`` and ``#W`` are; they become ``_``).
    """
    allowed = r"[^A-Za-z0-9_.#-]+|#(?!\d)" if window else r"[^A-Za-z0-9_-]+"
    name = re.sub(allowed, "_", text)
    name = re.sub(r"__+", "_", name).lstrip("_-.#").rstrip("_")[:limit]
    return name or "seqrun"


def watch_command(session: str) -> str:
    """The command that shows ``session``: ``attach`` from a plain terminal,
    ``switch-client`` from inside tmux (where ``attach`` refuses to nest)."""
    verb = "switch-client" if os.environ.get("TMUX") else "attach"
    return f"tmux {verb} -t {session}"


def tmux_available(tmux: str = "tmux") -> bool:
    """True if a tmux of version 3.0 or newer (argv commands without a shell) runs."""
    path = shutil.which(tmux)
    if path is None:
        return False
    try:
        out = subprocess.run(
            [path, "-V"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    match = re.search(r"(\d+)\.(\d+)", out)
    return match is None or (int(match[1]), int(match[2])) >= (3, 0)


@dataclass(frozen=True)
class Pane:
    """The window tmux created, as its ``new-window -P`` output describes it."""

    window_id: str
    rows: int
    cols: int
    env: dict[str, str]
    """``TERM``, ``TMUX`` and ``TMUX_PANE`` as a program in the pane sees them."""

    #: What ``new-window -P -F`` prints; parsed by :meth:`parse`.
    FORMAT = "\t".join([
        "#{window_id}", "#{pane_id}", "#{pane_height}", "#{pane_width}", "#{default-terminal}",
        "#{socket_path},#{pid},#{session_id}",
    ])

    @classmethod
    def parse(cls, line: str) -> Pane:
        window_id, pane_id, rows, cols, term, tmux = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
        env = {"TMUX_PANE": pane_id, "TMUX": tmux.replace(",$", ",")}
        if term:
            env["TERM"] = term
        return cls(window_id, int(rows or 50), int(cols or 200), env)


class _Link:
    """seqrun's end of a window: the agent's output out, keystrokes and size in.

    A thread accepts the viewer's connection and reads from it; output written
    before the viewer connects is kept (its last ``_EARLY_OUTPUT`` bytes) and
    replayed.  ``cancel`` is set when the caller cancels (``caller_cancel``)
    or the window goes away; keystrokes reach the agent through a pipe read by
    :func:`run_in_pty` as its ``input_fd``.

    Nothing waits for the viewer: :meth:`finish` hands over the last line and
    returns, and the thread delivers it once the viewer is there (the next
    task may run meanwhile), then ends the connection and removes the socket.
    :meth:`wait` waits for that (seqrun's exit); :meth:`abandon` gives up on
    a window seqrun closed itself.
    """

    def __init__(self, listening: _Listener, window_alive: Callable[[], bool]) -> None:
        self._listening = listening
        self._window_alive = window_alive
        self.caller_cancel: threading.Event | None = None
        """The caller's cancel event while the agent runs."""
        self.cancel = threading.Event()
        self.closed: str | None = None
        """Why the window stopped showing the run (set once), or None."""
        self.never_connected = False
        """The viewer did not start: a broken setup rather than a closed window."""
        self.input_fd, self._input_w = os.pipe()
        self._lock = threading.Lock()
        """Held while sending, so frames from both threads never interleave."""
        self._size_lock = threading.Lock()
        self._input_lock = threading.Lock()
        """Held while typing, so the pipe is never written once closed (its number reused)."""
        self._conn: socket.socket | None = None
        self._early = bytearray()
        self._early_dropped = False
        self._resize: Callable[[int, int], None] | None = None
        self._size: tuple[int, int] | None = None
        self._finished = False
        """The run is over: no more output; the viewer is owed ``_result``, if any."""
        self._result: bytes | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._serve, name="seqrun-window", daemon=True)
        self._thread.start()

    # -- called from run_in_pty's loop ----------------------------------------

    def write(self, data: bytes) -> int:
        """Show ``data`` in the window (kept until the viewer connects)."""
        with self._lock:
            if self._conn is None:
                if self.closed is None and not self._finished:
                    self._keep_early(data)
            else:
                self._send(ch.OUTPUT, data)
        return len(data)

    def flush(self) -> None:
        pass

    def started(self, info: Started) -> None:
        with self._size_lock:
            self._resize = info.resize
            size = self._size
        if size is not None:
            info.resize(*size)

    # -- the end ---------------------------------------------------------------

    def finish(self, line: str | None) -> None:
        """The run is over: the window gets the rest of the output and then
        ``line`` (None: no line, the viewer says seqrun stopped), now if the
        viewer is connected, else as soon as it connects. Does not wait."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._result = None if line is None else line.encode("utf-8", "replace")
            if self._conn is not None:
                self._conclude()
        with self._size_lock:  # the agent's pty is closed
            self._resize = None
        with self._input_lock:  # the agent is gone: nobody reads its keystrokes
            for fd in (self.input_fd, self._input_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.input_fd = self._input_w = -1

    def abandon(self) -> None:
        """seqrun closed the window: stop waiting for its viewer."""
        self._abandoned = True

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the viewer has the last line (or is gone)."""
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    # -- internals -------------------------------------------------------------

    def _keep_early(self, data: bytes) -> None:
        self._early += data
        if len(self._early) > _EARLY_OUTPUT:
            del self._early[: len(self._early) - _EARLY_OUTPUT]
            self._early_dropped = True

    def _send(self, kind: bytes, payload: bytes) -> None:
        """Send under the lock; a vanished viewer means the window was closed."""
        assert self._conn is not None
        try:
            ch.send(self._conn, kind, payload)
        except OSError:
            self._lost(WINDOW_CLOSED)

    def _conclude(self) -> None:
        """Under the lock, once finished and connected: the last line, then hang up
        (the viewer reads what was sent before it sees the end)."""
        assert self._conn is not None
        if self._result is not None:
            self._send(ch.RESULT, self._result)
        try:
            self._conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _lost(self, why: str, *, never_connected: bool = False) -> None:
        if self.closed is None and not self._finished:
            self.closed = why
            self.never_connected = never_connected
            self.cancel.set()

    def _serve(self) -> None:
        conn = None
        try:
            conn = self._accept()
            self._listening.close()  # one viewer per window: no one else may connect
            if conn is not None:
                self._read(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conn = None
            if conn is not None:
                conn.close()
            self._listening.close()

    def _give_up(self) -> bool:
        """Nothing is owed to a viewer that has not connected yet."""
        return self._abandoned or (self._finished and self._result is None)

    def _accept(self) -> socket.socket | None:
        listener = self._listening.sock
        deadline = time.monotonic() + _CONNECT_TIMEOUT
        next_check = time.monotonic() + 0.2
        while not self._give_up():
            self._follow_caller()
            ready, _, _ = select.select([listener], [], [], _POLL)
            if ready:
                conn, _ = listener.accept()
                return conn
            now = time.monotonic()
            if now > deadline:
                self._lost(f"seqrun's window viewer did not connect within {_CONNECT_TIMEOUT:.0f}s",
                           never_connected=True)
                return None
            if now >= next_check:
                next_check = now + 0.2
                if not self._window_alive():
                    self._lost("the tmux window ended before seqrun's viewer connected", never_connected=True)
                    return None
        return None

    def _read(self, conn: socket.socket) -> None:
        reader = ch.FrameReader(conn)
        greeted = False
        while not reader.eof:
            self._follow_caller()
            ready, _, _ = select.select([conn], [], [], _POLL)
            if not ready:
                continue
            for kind, payload in reader.read():
                if kind == ch.HELLO and not greeted:
                    greeted = True
                    self._greet(conn, ch.parse_size(payload))
                elif kind == ch.RESIZE:
                    self._apply_size(ch.parse_size(payload))
                elif kind == ch.INPUT:
                    self._type(payload)
        with self._lock:
            self._conn = None
        self._lost(WINDOW_CLOSED)

    def _greet(self, conn: socket.socket, size: tuple[int, int] | None) -> None:
        with self._lock:
            self._conn = conn
            if self._early_dropped:
                self._send(ch.OUTPUT, b"[seqrun] earlier output is in the log only\r\n")
            if self._early:
                self._send(ch.OUTPUT, bytes(self._early))
            self._early = bytearray()
            if self._finished:
                self._conclude()
        self._apply_size(size)

    def _apply_size(self, size: tuple[int, int] | None) -> None:
        if size is None:
            return
        with self._size_lock:
            self._size = size
            resize = self._resize
        if resize is not None:
            resize(*size)

    def _type(self, keys: bytes) -> None:
        with self._input_lock:
            if self._input_w < 0:
                return
            # Dropped rather than blocking when the agent does not read its input.
            _, writable, _ = select.select([], [self._input_w], [], 0)
            if writable:
                try:
                    os.write(self._input_w, keys)
                except OSError:
                    pass

    def _follow_caller(self) -> None:
        caller = self.caller_cancel
        if caller is not None and caller.is_set():
            self.cancel.set()


def _result_line(result: ProcessResult, stopped: str | None) -> str:
    """The window's last line: what happened, for the person who looks later.
    ``stopped`` says why seqrun ended the agent, if it did."""
    if stopped is not None:
        return f"[seqrun] {stopped} (exit {result.exit_status})"
    line = f"[seqrun] exit {result.exit_status} after {result.duration:.1f}s"
    if result.leftover_killed:
        line += f"; ended {result.leftover_killed} leftover process(es)"
    return line


def _limit_message(result: ProcessResult, timeout: float | None, idle_timeout: float | None) -> str | None:
    if result.timed_out:
        return f"killed: timeout after {timeout or 0:.0f}s"
    if result.idle_timed_out:
        return f"killed: no output for {idle_timeout or 0:.0f}s"
    if result.interrupted:
        return "killed: run cancelled"
    return None


def _owner_alive(pid: str) -> bool:
    """Whether the seqrun that marked a window ``running <pid>`` still runs
    (a mark without a pid, from an older seqrun: assume it does)."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class TmuxSession:
    """A tmux session whose windows show agent runs.

    ``keep_windows`` finished windows stay open for inspection (newest first);
    older ones are closed.  Windows still running are never closed.

    Each window costs one tmux call: marking the previous window finished and
    closing the ones beyond ``keep_windows`` ride along in the call that
    creates the next window (:meth:`close`, or :meth:`flush`, sends them when
    no window follows).  Until then a finished window still reads
    ``@seqrun running <pid of seqrun>``; its pane is dead once its viewer
    showed the last line. A later run takes a ``running`` window for a killed
    run's when its pane is dead or its seqrun is gone.
    """

    #: Per-window settings that must not depend on the user's configuration,
    #: and the mark by which finished windows are found and pruned.
    WINDOW_OPTIONS = (
        ("remain-on-exit", "on"),
        ("automatic-rename", "off"),
        ("allow-rename", "off"),
    )

    @property
    def _window_options(self) -> tuple[tuple[str, str], ...]:
        # The owner's pid in the mark: a later run prunes the window of a
        # seqrun that died even while that window's viewer is still starting
        # (its pane not dead yet).
        return (*self.WINDOW_OPTIONS, ("@seqrun", f"running {os.getpid()}"))

    def __init__(self, name: str, *, tmux: str = "tmux", keep_windows: int = 20) -> None:
        self.name = sanitize_name(name)
        self.tmux = tmux
        self.keep_windows = keep_windows
        self._finished: deque[str] = deque()
        """Windows this object finished, oldest first (pruned without asking tmux)."""
        self._swept = False
        self._pending: list[list[str]] = []
        """tmux commands owed (finished marks, windows to close): sent with the next call."""
        self._links: dict[str, _Link] = {}
        """Windows whose viewer may still be owed output or its last line."""

    # -- tmux plumbing -------------------------------------------------------

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.tmux, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        if check and proc.returncode != 0:
            raise TmuxError(f"tmux {args[0]} failed: {proc.stderr.strip() or proc.returncode}")
        return proc

    @property
    def _target(self) -> str:
        return f"={self.name}"  # '=': exact match, no prefix or pattern matching

    def exists(self) -> bool:
        return self._tmux("has-session", "-t", self._target, check=False).returncode == 0

    def _take_pending(self) -> list[list[str]]:
        pending, self._pending = self._pending, []
        for command in pending:
            if command[0] == "kill-window":
                link = self._links.pop(command[-1], None)
                if link is not None:
                    link.abandon()
        return pending

    def _redo(self, commands: list[list[str]]) -> None:
        """One at a time: in a command list, a window someone closed already
        (a failing command) stops the commands after it."""
        for command in commands:
            self._tmux(*command, check=False)

    def flush(self) -> None:
        """Send the owed finished marks and window closings now."""
        pending = self._take_pending()
        if not pending:
            return
        args = [word for command in pending for word in [";", *command]][1:]
        if self._tmux(*args, check=False).returncode != 0:
            self._redo(pending)

    def close(self) -> None:
        """The run is over: send what is owed to tmux, and wait until every
        window's viewer has its last line (or is gone).  Idempotent."""
        self.flush()
        links, self._links = list(self._links.values()), {}
        for link in links:
            link.wait(_CONNECT_TIMEOUT + 5)

    def _open_window(self, window: str, command: list[str], cwd: str) -> Pane:
        """Create the window (and the session if needed)."""
        # tmux expands formats in -c, and '#(...)' would run a shell: escape.
        start_dir = cwd.replace("#", "##")
        tail = ["-n", window, "-c", start_dir, "-P", "-F", Pane.FORMAT, "--", *command]
        # The window's settings go in the same call that creates it, so no
        # window of ours ever exists without them: a viewer that dies at once
        # leaves its pane (and the server, if it was the only one) for the
        # error message, and a seqrun killed right after this call leaves a
        # window marked `@seqrun running` that the next run prunes. The new
        # window is its session's current one, which `=name:` targets.
        keep: list[str] = []
        for option, value in self._window_options:
            keep += [";", "set-option", "-w", "-t", f"{self._target}:", option, value]
        # What is owed for earlier windows comes last: a failure there (a
        # window the user closed) cannot keep the new window from its settings.
        pending = self._take_pending()
        owed = [word for command in pending for word in [";", *command]]
        try:
            proc = self._create(tail, keep, owed)
        except BaseException:
            self._pending[:0] = pending  # still owed
            raise
        pane = Pane.parse(proc.stdout)
        if proc.returncode != 0:  # the window exists (its -P line came): something after it failed
            self._redo([["set-option", "-w", "-t", pane.window_id, option, value]
                        for option, value in self._window_options] + pending)
        return pane

    def _create(self, tail: list[str], keep: list[str], owed: list[str]) -> subprocess.CompletedProcess[str]:
        """The tmux call that made the window; its ``-P`` line is on stdout."""
        # The session usually exists (every task after the first): try the
        # window first, one tmux call. The trailing ':' asks for the next free
        # index, whatever base-index is.
        proc = self._tmux("new-window", "-t", f"{self._target}:", *tail, *keep, *owed, check=False)
        if proc.returncode != 0 and not proc.stdout:
            # In the same command list: with a user's `destroy-unattached on`
            # a detached session would be gone before a second tmux call.
            proc = self._tmux(
                "new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", *tail,
                ";", "set-option", "-t", f"{self._target}:", "destroy-unattached", "off", *keep, *owed,
                check=False,
            )
            if proc.returncode != 0 and not proc.stdout:
                if "duplicate session" not in proc.stderr:
                    raise TmuxError(f"tmux new-session failed: {proc.stderr.strip()}")
                proc = self._tmux("new-window", "-t", f"{self._target}:", *tail, *keep, *owed, check=False)
                if proc.returncode != 0 and not proc.stdout:
                    raise TmuxError(f"tmux new-window failed: {proc.stderr.strip() or proc.returncode}")
        return proc

    def _window_alive(self, window_id: str) -> bool:
        proc = self._tmux("display-message", "-p", "-t", window_id, "#{pane_dead}", check=False)
        return proc.returncode == 0 and proc.stdout.strip() == "0"

    def _pane_tail(self, window_id: str, lines: int = 5) -> str:
        """The last lines the window shows: what went wrong, for an error message."""
        proc = self._tmux("capture-pane", "-p", "-t", window_id, check=False)
        text = [line for line in proc.stdout.splitlines() if line.strip()]
        return " | ".join(text[-lines:])

    def _finish_window(self, window_id: str) -> None:
        """Mark the window finished and close the oldest beyond ``keep_windows``:
        owed, sent with the next tmux call. The windows to close are the ones
        this session object finished, plus (looked up once) those left by an
        earlier seqrun."""
        self._finished.append(window_id)
        if not self._swept:
            self._swept = True
            self._adopt_leftovers(window_id)
        self._pending.append(["set-option", "-w", "-t", window_id, "@seqrun", f"done {time.time_ns()}"])
        while len(self._finished) > max(0, self.keep_windows):
            self._pending.append(["kill-window", "-t", self._finished.popleft()])

    def _adopt_leftovers(self, current: str) -> None:
        """Finished windows of earlier runs join the queue, oldest first."""
        proc = self._tmux(
            "list-windows", "-t", self._target, "-F", "#{window_id}\t#{pane_dead}\t#{@seqrun}",
            check=False,
        )
        earlier = []
        for line in proc.stdout.splitlines():
            window_id, dead, mark = (line.split("\t") + ["", ""])[:3]
            kind, _, stamp = mark.partition(" ")
            if window_id == current:
                continue
            if kind == "done" and stamp.isdigit():
                earlier.append((int(stamp), window_id))
            elif kind == "running" and (dead == "1" or not _owner_alive(stamp)):  # left by a seqrun that died
                earlier.append((0, window_id))
        self._finished.extendleft(window_id for _, window_id in sorted(earlier, reverse=True))

    # -- running -------------------------------------------------------------

    def open(self, window: str, invocation: Invocation) -> TaskWindow:
        """A new window named ``window`` (sanitised) to run ``invocation`` in.

        Its viewer starts at once; what :meth:`TaskWindow.show` writes before
        it connects is kept.  Raises what :func:`~seqrun.terminal.ptyexec.prepare`
        raises (a missing CLI, folder or stdin file) before any window exists.
        """
        prepared = prepare(invocation, agent_env(invocation))
        listening = _Listener()
        _, socket_path = listening.__enter__()
        try:
            command = [sys.executable, "-S", VIEWER, socket_path]
            pane = self._open_window(sanitize_name(window, window=True), command, prepared.cwd or os.getcwd())
        except BaseException:
            listening.close()
            raise
        for window_id in [w for w, link in self._links.items() if link.done]:
            del self._links[window_id]
        link = self._links[pane.window_id] = _Link(listening, lambda: self._window_alive(pane.window_id))
        return TaskWindow(self, invocation, pane, link)

    def run(
        self,
        window: str,
        invocation: Invocation,
        *,
        log_path: Path | None,
        on_line: Callable[[str], None],
        echo: BinaryIO | None = None,
        **kwargs: Any,
    ) -> ProcessResult:
        """Run ``invocation`` in a new window named ``window`` (sanitised),
        showing its output as it is, and its exit status at the end.

        Same contract as :func:`~seqrun.terminal.ptyexec.run_in_pty`, whose
        keyword arguments it takes.  If the window is closed mid-run the
        agent's tree is ended and the result carries ``error``.  Raises
        :class:`TmuxError` if the window's viewer never connected (the agent
        is ended first).  Pruning is done when this returns (:meth:`flush`);
        the window's viewer may still be catching up.
        """
        shown = self.open(window, invocation)
        ended = None
        try:
            result = shown.run(log_path=log_path, on_line=on_line,
                               echo=shown if echo is None else _Tee(shown, echo), **kwargs)
            ended = shown.ended
        finally:
            shown.close(ended)
            self.flush()
        return result

    def _account(
        self, result: ProcessResult, link: _Link, cancel: threading.Event | None, window_id: str
    ) -> ProcessResult:
        """Whose stop was it: the caller's cancel, or the window going away."""
        if link.closed is None or (cancel is not None and cancel.is_set()):
            return result
        if link.never_connected:
            raise TmuxError(
                f"{link.closed} (the window runs {sys.executable} -S {VIEWER}); "
                f"the window shows: {self._pane_tail(window_id)}"
            )
        return dataclasses.replace(result, interrupted=False, error=result.error or link.closed)


class TaskWindow:
    """One agent run's window, from its creation to its last line.

    :meth:`run` runs the agent (once); :meth:`show` writes to the window
    (a header, rendered output); :meth:`close` ends it with a last line (the
    verdict), which the viewer shows until the window is closed. A window
    closed without a line says that seqrun stopped (the viewer's ``GONE``),
    as does one whose seqrun is killed before it is closed.
    """

    def __init__(self, session: TmuxSession, invocation: Invocation, pane: Pane, link: _Link) -> None:
        self._session = session
        self._invocation = invocation
        self.pane = pane
        self._link = link
        self.ended: str | None = None
        """How the agent ended (``[seqrun] exit 0 after 4.0s``), once it has."""
        self._closed = False

    @property
    def window_id(self) -> str:
        return self.pane.window_id

    def write(self, data: bytes) -> int:
        """Show ``data`` (bytes for a terminal: lines end in ``\\n`` or ``\\r\\n``)."""
        return self._link.write(data)

    show = write

    def flush(self) -> None:
        pass

    def run(
        self,
        *,
        log_path: Path | None,
        on_line: Callable[[str], None],
        echo: BinaryIO | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        cancel: threading.Event | None = None,
        grace: float = 5.0,
        token: str | None = None,
        on_processes: Callable[[TreeRecord], None] | None = None,
    ) -> ProcessResult:
        """Run the agent in seqrun's pty, the pane's size and keystrokes
        passed on; ``echo`` gets its output to show (this window itself when
        None).  Same contract as :func:`~seqrun.terminal.ptyexec.run_in_pty`."""
        link = self._link
        link.caller_cancel = cancel
        shown = dataclasses.replace(self._invocation, env={**self.pane.env, **self._invocation.env})
        result = run_in_pty(
            shown, log_path=log_path, on_line=on_line, echo=self if echo is None else echo,  # type: ignore[arg-type]
            timeout=timeout, idle_timeout=idle_timeout, cancel=link.cancel, grace=grace,
            rows=self.pane.rows, cols=self.pane.cols, input_fd=link.input_fd, on_start=link.started,
            token=token, on_processes=on_processes,
        )
        link.caller_cancel = None
        result = self._session._account(result, link, cancel, self.window_id)
        self.ended = _result_line(result, link.closed or _limit_message(result, timeout, idle_timeout))
        return result

    def close(self, line: str | None) -> None:
        """Show ``line`` last (None: the viewer says seqrun stopped), and let
        ``--keep-windows`` prune older windows. Idempotent; does not wait for
        the viewer (:meth:`TmuxSession.close` does)."""
        if self._closed:
            return
        self._closed = True
        self._link.finish(line)
        self._session._finish_window(self.window_id)


class _Tee:
    """Output shown in two places (a window and the console's ``-s`` echo)."""

    def __init__(self, first: BinaryIO | TaskWindow, second: BinaryIO) -> None:
        self._first: Any = first
        self._second: BinaryIO | None = second

    def write(self, data: bytes) -> int:
        self._first.write(data)
        if self._second is not None:
            try:
                self._second.write(data)
                self._second.flush()
            except (OSError, ValueError):  # a closed terminal: as OutputSink does
                self._second = None
        return len(data)

    def flush(self) -> None:
        pass


class _Listener:
    """A listening Unix socket in a private (0700) directory, removed after use
    (:meth:`close`, idempotent)."""

    def __enter__(self) -> tuple[socket.socket, str]:
        # Unix socket paths are limited to ~107 bytes: avoid a deep $TMPDIR.
        base = None if len(tempfile.gettempdir()) < 64 else "/tmp"
        self.dir = tempfile.mkdtemp(prefix="seqrun-", dir=base)
        path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        return self.sock, path

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""
