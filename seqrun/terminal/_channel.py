"""The wire between seqrun and the viewer running inside a tmux window.

A Unix stream socket in a private (0700) directory carries frames: one kind
byte, a 4-byte big-endian length, the payload.

seqrun → window: ``O`` output bytes to show, ``R`` the last line (UTF-8:
the verdict, or the exit status), after which seqrun closes the connection.
window → seqrun: ``H`` hello and ``W`` window resized, both ``"ROWS COLS"``;
``I`` keystrokes for the agent.

Imports nothing: the window's viewer imports this module as a plain file
(see :mod:`seqrun.terminal.window`), and every module it imports is paid for
at the start of every task (``socket`` and ``struct`` would bring ``enum``,
``selectors`` and more). The sockets it is given only need ``recv`` and
``sendall``: a ``socket.socket`` or the viewer's bare ``_socket.socket``.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

OUTPUT = b"O"
RESULT = b"R"
HELLO = b"H"
RESIZE = b"W"
INPUT = b"I"

_HEADER = 5
"""The kind byte and the payload's length (4 bytes, big-endian)."""


class FrameReader:
    """Reassembles frames from a socket read in arbitrary pieces."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self.eof = False

    def read(self, size: int = 1 << 20) -> list[tuple[bytes, bytes]]:
        """Read what is available (the socket is readable) and return frames."""
        try:
            data = self.sock.recv(size)
        except OSError:  # reset, or closed under us: the other side is gone
            data = b""
        if not data:
            self.eof = True
            return []
        self._buf += data
        return self._frames()

    def _frames(self) -> list[tuple[bytes, bytes]]:
        frames = []
        offset = 0
        buf = self._buf
        while len(buf) - offset >= _HEADER:
            length = int.from_bytes(buf[offset + 1 : offset + _HEADER], "big")
            end = offset + _HEADER + length
            if len(buf) < end:
                break
            frames.append((bytes(buf[offset : offset + 1]), bytes(buf[offset + _HEADER : end])))
            offset = end
        del buf[:offset]
        return frames


def frame(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def send(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(frame(kind, payload))


def size_payload(rows: int, cols: int) -> bytes:
    return f"{rows} {cols}".encode()


def parse_size(payload: bytes) -> tuple[int, int] | None:
    """``(rows, cols)`` from a hello or resize frame; None if malformed."""
    try:
        rows, cols = (int(n) for n in payload.split())
    except ValueError:
        return None
    return (rows, cols) if 0 < rows < 10000 and 0 < cols < 10000 else None
