"""run_in_pty against real child processes in a real pty."""
from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path


import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import gone, wait_for

from seqrun.backends.base import Invocation
from seqrun.terminal import MAX_LINE, LineSplitter, ProcessResult, kill_tree, run_in_pty
from seqrun.terminal.proctree import TOKEN_VAR

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pty and /proc")


# -- helpers ------------------------------------------------------------------


def write_script(tmp_path: Path, body: str, name: str = "agent.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def py(script: Path, *args: str, **kw: object) -> Invocation:
    return Invocation([sys.executable, str(script), *args], **kw)  # type: ignore[arg-type]


class Run:
    """Runs an invocation and keeps the lines and the log."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "logs" / "agent.log"
        self.lines: list[str] = []

    def __call__(self, invocation: Invocation, **kw: object) -> ProcessResult:
        return run_in_pty(invocation, log_path=self.log, on_line=self.lines.append, **kw)  # type: ignore[arg-type]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def read_pids(path: Path, count: int) -> list[int]:
    assert wait_for(lambda: path.exists() and len(path.read_text().split()) >= count)
    return [int(x) for x in path.read_text().split()]


# A tree that resists: a child ignoring SIGTERM, and a grandchild that
# daemonized (setsid, parent exited, fds closed). Pids go to argv[1].
RESISTANT_TREE = """
    import os, signal, sys, time
    out = sys.argv[1]
    def note(pid):
        with open(out, "a") as f:
            f.write(f"{pid}\\n")
    note(os.getpid())
    if os.fork() == 0:                      # stubborn child
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note(os.getpid())
        time.sleep(60)
        os._exit(0)
    if os.fork() == 0:                      # daemon: setsid, double fork
        os.setsid()
        if os.fork() == 0:
            for fd in (0, 1, 2):
                os.close(fd)
            note(os.getpid())
            time.sleep(60)
        os._exit(0)
    print("tree up", flush=True)
    time.sleep(60)
"""


# -- output -------------------------------------------------------------------


def test_output_reaches_log_and_lines(tmp_path: Path, run: Run) -> None:
    script = write_script(
        tmp_path,
        """
        import sys, time
        out = sys.stdout.buffer
        e = "é".encode()
        out.write(b"first\\n" + e[:1]); out.flush(); time.sleep(0.2)
        out.write(e[1:] + b"t\\xc3\\xa9\\r\\n"); out.flush(); time.sleep(0.1)
        out.write(b"bad \\xff byte\\n\\nlast without newline")
        """,
    )
    result = run(py(script))
    assert result.exit_status == 0
    expected = b"first\n\xc3\xa9t\xc3\xa9\r\nbad \xff byte\n\nlast without newline"
    assert run.log.read_bytes() == expected
    assert result.bytes_out == len(expected)
    assert run.lines == ["first", "été", "bad \ufffd byte", "", "last without newline"]


def test_log_is_appended_and_echoed(tmp_path: Path, run: Run) -> None:
    run.log.parent.mkdir(parents=True)
    run.log.write_bytes(b"before\n")
    echo_path = tmp_path / "echo"
    with open(echo_path, "wb") as echo:
        run(Invocation(["printf", "one\\ntwo\\n"]), echo=echo)
    assert run.log.read_bytes() == b"before\none\ntwo\n"
    assert echo_path.read_bytes() == b"one\ntwo\n"
    assert run.lines == ["one", "two"]


def test_env_and_cwd(tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQRUN_TEST_INHERITED", "kept")
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = write_script(
        tmp_path,
        """
        import os
        print(os.getcwd())
        print(os.environ["SEQRUN_TEST_INHERITED"], os.environ["SEQRUN_TEST_ADDED"])
        """,
    )
    run(py(script, env={"SEQRUN_TEST_ADDED": "added"}, cwd=workdir))
    assert run.lines == [str(workdir), "kept added"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("raise SystemExit(0)", 0),
        ("raise SystemExit(3)", 3),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 143),
    ],
)
def test_exit_status(run: Run, code: str, expected: int) -> None:
    result = run(Invocation([sys.executable, "-c", code]))
    assert result.exit_status == expected
    assert not result.killed


def test_missing_command_raises(run: Run) -> None:
    with pytest.raises(FileNotFoundError):
        run(Invocation(["seqrun-no-such-command-xyz"]))


# -- stdin --------------------------------------------------------------------

STDIN_PROBE = "import os, sys; print(os.isatty(0), repr(sys.stdin.read() if not os.isatty(0) else ''))"


def test_stdin_tty(run: Run) -> None:
    run(Invocation([sys.executable, "-c", STDIN_PROBE], stdin="tty"))
    assert run.lines == ["True ''"]


def test_stdin_null(run: Run) -> None:
    run(Invocation([sys.executable, "-c", STDIN_PROBE], stdin="null"))
    assert run.lines == ["False ''"]


def test_stdin_file(tmp_path: Path, run: Run) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("do the task\nplease", encoding="utf-8")
    run(Invocation([sys.executable, "-c", STDIN_PROBE], stdin=prompt))
    assert run.lines == ["False 'do the task\\nplease'"]


# -- limits and process hygiene -----------------------------------------------


def test_timeout_kills_whole_tree(tmp_path: Path, run: Run) -> None:
    pids_file = tmp_path / "pids"
    script = write_script(tmp_path, RESISTANT_TREE)
    started = time.monotonic()
    result = run(py(script, str(pids_file)), timeout=1.5, grace=0.5)
    elapsed = time.monotonic() - started
    pids = read_pids(pids_file, 3)
    assert result.timed_out and not result.idle_timed_out and not result.interrupted
    assert result.exit_status == 143  # the agent itself honoured SIGTERM
    assert result.pid == pids[0]
    assert 1.5 <= elapsed < 30  # the upper bound only catches a hang
    assert "tree up" in run.lines
    for pid in pids:
        assert wait_for(lambda: gone(pid), 2), f"process {pid} survived"


def test_idle_timeout(tmp_path: Path, run: Run) -> None:
    script = write_script(
        tmp_path,
        """
        import time
        for i in range(3):
            print(i, flush=True)
            time.sleep(0.2)
        time.sleep(30)
        """,
    )
    started = time.monotonic()
    result = run(py(script), idle_timeout=0.7, timeout=20)
    assert result.idle_timed_out and not result.timed_out
    assert run.lines == ["0", "1", "2"]
    assert 1.1 <= time.monotonic() - started < 30
    assert gone(result.pid)


def test_cancel_event(tmp_path: Path, run: Run) -> None:
    script = write_script(
        tmp_path,
        """
        import signal, sys, time
        def bye(*_):
            print("got SIGTERM", flush=True)
            sys.exit(9)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        time.sleep(30)
        """,
    )
    cancel = threading.Event()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":  # its SIGTERM handler is installed
            cancel.set()

    result = run_in_pty(py(script), log_path=tmp_path / "cancel.log", on_line=on_line, cancel=cancel,
                        timeout=60)
    assert result.interrupted and not result.timed_out
    assert result.exit_status == 9
    assert lines == ["ready", "got SIGTERM"]  # output during the grace period is kept


def test_leftover_child_is_killed_after_normal_exit(tmp_path: Path, run: Run) -> None:
    """A child that keeps the pty open must not make us wait for it."""
    pids_file = tmp_path / "pids"
    script = write_script(
        tmp_path,
        """
        import os, signal, sys, time
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # survives the session leader
            time.sleep(60)
            os._exit(0)
        open(sys.argv[1], "w").write(str(pid))
        print("parent done", flush=True)
        """,
    )
    started = time.monotonic()
    result = run(py(script, str(pids_file)), grace=1)
    (child,) = read_pids(pids_file, 1)
    assert result.exit_status == 0 and not result.killed
    assert result.leftover_killed == 1
    assert time.monotonic() - started < 30  # not the child's 60 s
    assert run.lines == ["parent done"]
    assert wait_for(lambda: gone(child), 2)


def test_leftover_daemon_is_killed_after_normal_exit(tmp_path: Path, run: Run) -> None:
    pids_file = tmp_path / "pids"
    script = write_script(
        tmp_path,
        """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for fd in (0, 1, 2):
                    os.close(fd)
                open(sys.argv[1], "w").write(str(os.getpid()))
                time.sleep(60)
            os._exit(0)
        time.sleep(0.5)
        """,
    )
    result = run(py(script, str(pids_file)), grace=1)
    (daemon,) = read_pids(pids_file, 1)
    assert result.exit_status == 0
    assert result.leftover_killed == 1
    assert wait_for(lambda: gone(daemon), 2)


def test_agent_closing_its_output_is_still_waited_for(tmp_path: Path, run: Run) -> None:
    script = write_script(
        tmp_path,
        """
        import os, time
        print("closing", flush=True)
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(2)
        os._exit(5)
        """,
    )
    result = run(py(script))
    assert result.exit_status == 5
    assert result.duration >= 2
    assert run.lines == ["closing"]


def test_closed_output_still_obeys_timeout(tmp_path: Path, run: Run) -> None:
    script = write_script(
        tmp_path,
        """
        import os, time
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(30)
        """,
    )
    started = time.monotonic()
    result = run(py(script), timeout=1, grace=0.5)
    assert result.timed_out and result.exit_status == 143
    assert time.monotonic() - started < 30


def test_huge_line_is_truncated_in_bounded_memory(tmp_path: Path, run: Run) -> None:
    size = 50 * 1024 * 1024
    script = write_script(
        tmp_path,
        f"""
        import sys
        out = sys.stdout.buffer
        block = "é".encode() * (1 << 15)
        for _ in range({size} // len(block)):
            out.write(block)
        out.write(b"\\nshort\\n")
        """,
    )
    lengths: list[int] = []
    tails: list[str] = []

    def on_line(line: str) -> None:
        lengths.append(len(line))
        tails.append(line[-3:])

    tracemalloc.start()
    try:
        result = run_in_pty(py(script), log_path=run.log, on_line=on_line)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_status == 0
    assert run.log.stat().st_size == size + len(b"\nshort\n") == result.bytes_out
    assert lengths == [MAX_LINE // 2, 5]  # 4 MiB of two-byte characters, none split
    assert tails[0] == "ééé"
    assert peak < 32 * 1024 * 1024, f"peak Python allocations {peak / 2**20:.1f} MiB"


def test_kill_tree_public(tmp_path: Path) -> None:
    """Without a subreaper, the token finds the daemon that init adopted."""
    import subprocess

    pids_file = tmp_path / "pids"
    script = write_script(tmp_path, RESISTANT_TREE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pids_file)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, TOKEN_VAR: "t0ken"},
    )
    pids = read_pids(pids_file, 3)
    killed = kill_tree(proc.pid, grace=0.3, token="t0ken")
    assert proc.wait(5) == -15  # the status was left for Popen
    assert killed >= 2
    for pid in pids[1:]:
        assert wait_for(lambda: gone(pid), 2), f"process {pid} survived"


# -- line splitting -----------------------------------------------------------


def split(chunks: list[bytes], limit: int = MAX_LINE) -> list[str]:
    lines: list[str] = []
    splitter = LineSplitter(lines.append, limit=limit)
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.close()
    return lines


def test_splitter_bytewise_chunks_and_crlf() -> None:
    data = "a\r\nb€c\n\rd\r\r\nend".encode()
    assert split([data[i : i + 1] for i in range(len(data))]) == ["a", "b€c", "\rd\r", "end"]


def test_splitter_truncates_on_character_boundary() -> None:
    # limit 5 falls inside the second '€' (3 bytes): it must be dropped whole.
    assert split(["ab€€\nok\n".encode()], limit=5) == ["ab€", "ok"]
    assert split([b"ab", "€€€".encode(), b"xyz\nok"], limit=6) == ["ab€", "ok"]
    assert split([b"0123456789", b"abc"], limit=4) == ["0123"]


def test_missing_cwd_or_stdin_file_raises(tmp_path: Path, run: Run) -> None:
    with pytest.raises(FileNotFoundError):
        run(Invocation(["true"], cwd=tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        run(Invocation(["true"], stdin=tmp_path / "no-prompt.txt"))


def reference_lines(data: bytes, limit: int) -> list[str]:
    """The splitter's contract, written the obvious way."""

    def truncate(line: bytes) -> bytes:
        if len(line) <= limit:
            return line
        head = line[:limit]
        if line[limit] & 0xC0 == 0x80:  # the cut splits a character: drop it whole
            for back in range(1, min(4, len(head)) + 1):
                if head[-back] & 0xC0 != 0x80:
                    return head[:-back] if head[-back] >= 0xC0 else head
        return head

    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    return [truncate(p).removesuffix(b"\r").decode("utf-8", "replace") for p in pieces]


@given(
    data=st.lists(
        st.sampled_from([b"\n", b"\r\n", b"\r", b"a", b"xyz", "é".encode(), "€".encode(), "😀".encode(), b"\xff", b"\xe2\x82", b"\x80"]),
        max_size=80,
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    limit=st.integers(min_value=1, max_value=12) | st.just(1000),
)
def test_splitter_matches_reference(data: bytes, cuts: list[int], limit: int) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    assert split(chunks, limit=limit) == reference_lines(data, limit)
