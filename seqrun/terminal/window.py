"""The viewer a tmux window runs: ``python -S .../seqrun/terminal/window.py SOCKET``.

The agent itself runs in seqrun's own pty, exactly as in pty mode (same
process, same log, same verdict); the window only shows it.  This program
connects to seqrun's socket, writes what seqrun sends to the pane (a header
and the agent's rendered output, or its raw bytes: seqrun decides, see
:mod:`seqrun.terminal.view`), passes the pane's keystrokes (Ctrl-C included)
and size back to the agent's terminal, and shows seqrun's last line at the
end: the attempt's verdict, which can come long after the agent exited
(verification runs first). Until it comes the viewer waits; if the
connection ends without it, it shows :data:`GONE`.

It is started as a plain file, without ``site`` and without importing the
seqrun package: only the standard library and :mod:`_channel` (found next to
this file, which Python puts first on ``sys.path``).  Every task opens a
window, so what this imports is paid at every task: the C modules only
(``_socket`` and ``_signal`` rather than ``socket`` and ``signal``, which
import ``enum``, ``selectors`` and ``functools``, three times the start-up of
the interpreter itself).  No task data is on its command line: its one
argument is the socket's path in a private directory.

seqrun does not wait for this program: the agent starts at once, output
sent before the viewer connects is kept and replayed, and the last line is
delivered whenever the viewer is ready, even after seqrun moved on to the
next task.  If seqrun is gone before the viewer could connect (killed, or it
closed the window's run without a last line), the viewer says so
(:data:`GONE`) and removes the socket seqrun left.

Closing the window (SIGHUP) ends this program; seqrun sees the socket close
and ends the agent: an agent nobody watches over must not keep working.
"""
from __future__ import annotations

import _signal
import _socket
import os
import select
import sys
import termios

if __package__:
    from . import _channel as ch
else:  # run as a file: this folder is sys.path[0]
    import _channel as ch  # type: ignore[no-redef]

#: Shown when the connection ends without a result: seqrun died or was killed.
GONE = "[seqrun] lost the connection to seqrun (it was stopped or killed)"


def _raw_keyboard(fd: int) -> list | None:  # type: ignore[type-arg]
    """Pass keystrokes (Ctrl-C too) through to the agent; return the old mode.

    Only input processing changes: output processing stays on, so the pane
    still turns ``\\n`` into a new line (the agent's own pty does not).
    """
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        return None
    raw = termios.tcgetattr(fd)
    raw[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP | termios.IXON)
    raw[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
    raw[6][termios.VMIN] = 1
    raw[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, raw)
    return saved


def _pane_size() -> bytes:
    try:
        size = os.get_terminal_size(1)
    except OSError:
        return ch.size_payload(50, 200)
    return ch.size_payload(size.lines, size.columns)


def _show(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _relay(sock: _socket.socket, keyboard: int | None, resized: int) -> str:
    """Show output and pass keys until seqrun sends the result; return its line."""
    reader = ch.FrameReader(sock)
    while True:
        watched = [sock, resized] if keyboard is None else [sock, keyboard, resized]
        ready, _, _ = select.select(watched, [], [])
        if resized in ready:
            os.read(resized, 512)
            ch.send(sock, ch.RESIZE, _pane_size())
        if keyboard is not None and keyboard in ready:
            try:
                keys = os.read(keyboard, 4096)
            except OSError:
                keys = b""
            if keys:
                ch.send(sock, ch.INPUT, keys)
            else:
                keyboard = None
        if sock in ready:
            for kind, payload in reader.read():
                if kind == ch.OUTPUT:
                    _show(payload)
                elif kind == ch.RESULT:
                    return payload.decode("utf-8", "replace")
            if reader.eof:
                return GONE


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -S window.py SOCKET", file=sys.stderr)
        return 2
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(argv[0])
    except OSError:  # seqrun is gone (or gave up on this window) before the viewer started
        _forget(argv[0])
        _show(("\r\n" + GONE + "\r\n").encode())
        _linger()
        return 0
    # SIGWINCH wakes the select through a pipe; its handler itself does nothing.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGWINCH, lambda *_: None)
    ch.send(sock, ch.HELLO, _pane_size())
    saved = _raw_keyboard(0)
    try:
        line = _relay(sock, 0 if saved is not None else None, wake_r)
    except OSError:  # the pane or the socket went away mid-write
        line = GONE
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, saved)
    sock.close()
    try:
        _show(("\r\n" + line + "\r\n").encode("utf-8", "replace"))
    except OSError:
        return 0
    _linger()
    return 0


def _linger() -> None:
    """tmux drops output that arrives just before a pane's process exits."""
    select.select([], [], [], 0.2)


def _forget(path: str) -> None:
    """Remove the socket (and its private folder) a killed seqrun left."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
