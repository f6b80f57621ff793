"""Where an agent's output goes: the log file, an echo stream, the line callback.

Both execution modes (a bare pty, a tmux window) feed the same
:class:`OutputSink`, so the log file and the lines a backend parser sees are
identical whichever mode ran the agent.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = ["LineSplitter", "OutputSink", "MAX_LINE"]

#: Longest line handed to a parser, in bytes; the rest of the line is dropped.
#: Agents can print megabytes without a newline (a minified bundle, a base64
#: image); parsers only need the start, and memory must stay bounded.
MAX_LINE = 4 * 1024 * 1024


def _cut_at_char_boundary(data: bytearray, dropped_first: int | None) -> None:
    """Drop a UTF-8 character the truncation point would split in two.

    ``dropped_first`` is the first byte cut off; if it continues a multibyte
    character, that character's leading bytes at the end of ``data`` go too.
    """
    if dropped_first is None or dropped_first & 0xC0 != 0x80:
        return
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the lead byte (or ASCII) of that character
            if byte >= 0xC0:
                del data[-back:]
            return


class LineSplitter:
    """Split a byte stream into text lines for a callback, in bounded memory.

    Lines end at ``\\n``; one trailing ``\\r`` is removed (pty output ends lines
    with ``\\r\\n``).  Splitting happens on bytes, before decoding: ``\\n``
    never occurs inside a UTF-8 multibyte sequence, so a character split across
    two reads is reassembled before its line is decoded.  Invalid UTF-8 becomes
    U+FFFD.
    """

    def __init__(self, on_line: Callable[[str], None], *, limit: int = MAX_LINE) -> None:
        self._on_line = on_line
        self._limit = limit
        self._pending = bytearray()
        self._dropping = False

    def feed(self, data: bytes) -> None:
        last = data.rfind(b"\n")
        if last < 0:
            self._append(data)
            return
        start = 0
        if self._pending or self._dropping:  # complete the line begun earlier
            start = data.find(b"\n") + 1
            self._append(data[: start - 1])
            self._emit(self._take())
        if start <= last:
            self._emit_block(data[start:last])
        self._append(data[last + 1 :])

    def _emit_block(self, block: bytes) -> None:
        """Emit the complete lines in ``block`` (newline-separated, no final one).

        Hot path: one decode and one split per read rather than per line.
        Equivalent to decoding line by line, since an invalid sequence never
        swallows a ``\\n`` (not a continuation byte).
        """
        if len(block) > self._limit:
            for line in block.split(b"\n"):
                self._emit(line)
            return
        on_line = self._on_line
        for line in block.decode("utf-8", "replace").split("\n"):
            on_line(line[:-1] if line.endswith("\r") else line)

    def close(self) -> None:
        """Pass on the final line if the stream did not end with a newline."""
        if self._pending or self._dropping:
            self._emit(self._take())

    def _append(self, piece: bytes) -> None:
        if self._dropping or not piece:
            return
        room = self._limit - len(self._pending)
        if len(piece) <= room:
            self._pending += piece
            return
        self._pending += piece[:room]
        _cut_at_char_boundary(self._pending, piece[room])
        self._dropping = True

    def _take(self) -> bytes:
        line = bytes(self._pending)
        self._pending.clear()
        self._dropping = False
        return line

    def _emit(self, line: bytes) -> None:
        if len(line) > self._limit:  # a single huge chunk fed at once
            head = bytearray(line[: self._limit])
            _cut_at_char_boundary(head, line[self._limit])
            line = bytes(head)
        if line.endswith(b"\r"):
            line = line[:-1]
        self._on_line(line.decode("utf-8", "replace"))


class OutputSink:
    """Appends raw output to a log, echoes it, and splits it into lines.

    The log is opened once in append mode and flushed at least every
    ``flush_interval`` seconds (and by :meth:`flush` whenever the source goes
    quiet), so ``tail -f`` shows progress without a syscall per read.
    A failing echo stream (a closed terminal) is dropped, never fatal.
    """

    def __init__(
        self,
        log_path: Path | None,
        on_line: Callable[[str], None],
        echo: BinaryIO | None = None,
        *,
        flush_interval: float = 1.0,
    ) -> None:
        self.bytes_out = 0
        self._splitter = LineSplitter(on_line)
        self._echo = echo
        self._log: BinaryIO | None = None
        self._log_path = log_path
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "ab", buffering=1 << 18)  # noqa: SIM115
        self._flush_interval = flush_interval
        self._flushed_at = time.monotonic()

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_out += len(data)
        if self._log is not None:
            with self._naming_the_log():
                self._log.write(data)
        if self._echo is not None:
            try:
                self._echo.write(data)
                self._echo.flush()
            except (OSError, ValueError):
                self._echo = None
        self._splitter.feed(data)
        if time.monotonic() - self._flushed_at >= self._flush_interval:
            self.flush()

    def flush(self) -> None:
        self._flushed_at = time.monotonic()
        if self._log is not None:
            with self._naming_the_log():
                self._log.flush()

    def close(self) -> None:
        """Flush the final partial line and close the log (idempotent)."""
        try:
            self._splitter.close()
        finally:
            self._splitter = LineSplitter(lambda _line: None)
            if self._log is not None:
                log, self._log = self._log, None
                with self._naming_the_log():
                    log.close()

    @contextlib.contextmanager
    def _naming_the_log(self) -> Iterator[None]:
        # A buffered write's error names no file: say which one (a full disk).
        try:
            yield
        except OSError as exc:
            if exc.filename is None and exc.errno:
                raise type(exc)(exc.errno, exc.strerror, os.fspath(self._log_path)) from None
            raise

    def __enter__(self) -> OutputSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
