"""TmuxSession against a real tmux server on an isolated socket."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import gone, wait_for

from seqrun.backends.base import Invocation
from seqrun.terminal import ProcessResult, TmuxSession, run_in_pty, sanitize_name, tmux_available

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(not tmux_available(), reason="tmux >= 3.0 not installed"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pty and /proc"),
]


# -- helpers ------------------------------------------------------------------


@pytest.fixture
def tmux_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private tmux socket directory (short: socket paths max ~100 bytes)."""
    socket_dir = Path(tempfile.mkdtemp(prefix="sqt-"))
    monkeypatch.setenv("TMUX_TMPDIR", str(socket_dir))
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("TMUX_PANE", raising=False)
    yield socket_dir
    subprocess.run(["tmux", "kill-server"], capture_output=True)
    shutil.rmtree(socket_dir, ignore_errors=True)


def tmux(*args: str) -> str:
    proc = subprocess.run(["tmux", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def windows(session: str) -> dict[str, str]:
    """Window name → window id."""
    out = tmux("list-windows", "-t", f"={session}", "-F", "#{window_name} #{window_id}")
    return dict(line.split(" ", 1) for line in out.splitlines())


def write_script(tmp_path: Path, body: str, name: str = "agent.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def format_jobs_done(sentinel: Path, timeout: float = 20) -> None:
    """Wait until no job the tmux server started so far ('#(...)' in a
    format, run-shell) can still do anything.

    tmux forks a format's job while it handles the command, and handles
    commands one at a time: a job an earlier command started was forked
    before the sentinel's. Once the sentinel ran and the server has no live
    child but its panes' programs, every earlier job has ended too.
    """
    tmux("run-shell", f"touch '{sentinel}'")  # waits for the job: tmp paths have no quote
    assert sentinel.exists(), "tmux ran no job"
    server = int(tmux("display-message", "-p", "#{pid}"))
    panes = {int(pid) for pid in tmux("list-panes", "-a", "-F", "#{pane_pid}").split()}

    def jobs() -> list[int]:
        from seqrun.terminal.proctree import scan_proc

        return [p.pid for p in scan_proc().values()
                if p.ppid == server and p.pid not in panes and not p.zombie]

    assert wait_for(lambda: not jobs(), timeout), f"tmux jobs still running: {jobs()}"


class Runs:
    """Runs one invocation in tmux and in a bare pty, keeping lines and logs."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.lines: dict[str, list[str]] = {}

    def log(self, key: str) -> Path:
        return self.tmp_path / "logs" / f"{key}.log"

    def tmux(self, session: TmuxSession, window: str, inv: Invocation, **kw: object) -> ProcessResult:
        lines = self.lines.setdefault(window, [])
        return session.run(window, inv, log_path=self.log(window), on_line=lines.append, **kw)  # type: ignore[arg-type]

    def pty(self, inv: Invocation, **kw: object) -> ProcessResult:
        lines = self.lines.setdefault("pty", [])
        return run_in_pty(inv, log_path=self.log("pty"), on_line=lines.append, **kw)  # type: ignore[arg-type]


@pytest.fixture
def runs(tmp_path: Path, tmux_server: Path) -> Runs:
    return Runs(tmp_path)


# Prints mixed output, reports where it ran (to a file: stdout must be the
# same in both modes) and exits with argv[2].
PROBE = """
    import os, sys, time
    with open(sys.argv[1], "w") as f:
        f.write(os.environ.get("TMUX_PANE", "-") + " " + str(os.isatty(0)))
    out = sys.stdout.buffer
    out.write("héllo wörld\\n".encode()); out.flush(); time.sleep(0.05)
    out.write(b"crlf\\r\\n\\xff\\n"); out.flush()
    out.write(b"x" * 100000 + b"\\nno newline at end")
    out.flush()
    code = sys.argv[2]
    if code == "kill":
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(int(code))
"""


# -- tests --------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), [("3", 3), ("kill", 137)])
def test_same_output_and_status_as_pty(tmp_path: Path, runs: Runs, code: str, status: int) -> None:
    script = write_script(tmp_path, PROBE)
    where = tmp_path / "where"
    session = TmuxSession("seqrun-test")
    in_tmux = runs.tmux(session, "task-1.2", Invocation([sys.executable, str(script), str(where), code]))
    pane, isatty = where.read_text().split()
    in_pty = runs.pty(Invocation([sys.executable, str(script), str(tmp_path / "unused"), code]))

    assert in_tmux.exit_status == in_pty.exit_status == status
    assert runs.log("task-1.2").read_bytes() == runs.log("pty").read_bytes()
    assert runs.lines["task-1.2"] == runs.lines["pty"]
    assert runs.lines["pty"][0] == "héllo wörld" and runs.lines["pty"][-1] == "no newline at end"
    assert in_tmux.bytes_out == in_pty.bytes_out
    # The agent ran in the pane of window task-1.2, in a terminal.
    assert tmux("display-message", "-p", "-t", pane, "#{window_name}").strip() == "task-1.2"
    assert isatty == "True"
    window_id = windows("seqrun-test")["task-1.2"]
    assert wait_for(lambda: "[seqrun] exit" in tmux("capture-pane", "-p", "-t", window_id))


def test_stdin_modes(tmp_path: Path, runs: Runs) -> None:
    probe = "import os, sys; print(os.isatty(0), repr('' if os.isatty(0) else sys.stdin.read()))"
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("the prompt", encoding="utf-8")
    session = TmuxSession("stdin")
    for window, stdin in (("tty", "tty"), ("null", "null"), ("file", prompt)):
        runs.tmux(session, window, Invocation([sys.executable, "-c", probe], stdin=stdin))
    assert runs.lines == {"tty": ["True ''"], "null": ["False ''"], "file": ["False 'the prompt'"]}


def test_keystrokes_reach_the_agent(tmp_path: Path, runs: Runs) -> None:
    """A person attached to the window can answer the agent."""
    script = write_script(tmp_path, "print('question?', flush=True)\nprint('answer:', input())\n")

    def type_answer() -> None:
        def asked() -> bool:
            proc = subprocess.run(["tmux", "capture-pane", "-p", "-t", "=keys:task-k"],
                                  capture_output=True, text=True)
            return "question?" in proc.stdout
        wait_for(asked, 10)
        tmux("send-keys", "-t", "=keys:task-k", "-l", "forty-two")
        tmux("send-keys", "-t", "=keys:task-k", "Enter")

    typist = threading.Thread(target=type_answer)
    typist.start()
    result = runs.tmux(TmuxSession("keys"), "task-k", Invocation([sys.executable, str(script)]), timeout=20)
    typist.join()
    assert result.exit_status == 0
    assert runs.lines["task-k"][0] == "question?"
    assert runs.lines["task-k"][-1] == "answer: forty-two"


@pytest.mark.parametrize("remain", ["on", "off"])
def test_hostile_user_settings_on_running_server(tmp_path: Path, runs: Runs, remain: str) -> None:
    conf = tmp_path / "hostile.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            set -g base-index 1
            set -g pane-base-index 1
            set -g remain-on-exit {remain}
            set -g default-shell /bin/false
            set -g default-command "exit 1"
            set -g automatic-rename on
            set -g allow-rename on
            set -g renumber-windows on
            set -g destroy-unattached on
            set -s exit-empty off
            """
        )
    )
    tmux("-f", str(conf), "start-server", ";", "new-session", "-d", "-s", "user", "--",
         sys.executable, "-c", "import time; time.sleep(60)")
    script = write_script(
        tmp_path,
        """
        import os, sys
        sys.stdout.write("\\x1bkrenamed-by-agent\\x1b\\\\\\n")  # tries to rename the window
        print(os.environ.get("TMUX_PANE"))
        sys.exit(7)
        """,
    )
    session = TmuxSession("hostile")
    first = runs.tmux(session, "task-1", Invocation([sys.executable, str(script)]))
    second = runs.tmux(session, "task-2", Invocation([sys.executable, str(script)]))
    assert first.exit_status == second.exit_status == 7
    pane = runs.lines["task-2"][-1]
    assert tmux("display-message", "-p", "-t", pane, "#{window_name}").strip() == "task-2"
    # Both finished windows are kept (remain-on-exit per window), names intact.
    assert set(windows("hostile")) == {"task-1", "task-2"}
    assert tmux("show-options", "-gv", "base-index").strip() == "1"  # the user's settings stay


def test_title_with_shell_syntax_is_inert(tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither a shell nor tmux's #(...) format ever sees task text or paths."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    workdir = tmp_path / "work #(touch PWNED5) $(touch PWNED6)"
    workdir.mkdir()
    title = "task-9 $(touch PWNED) `touch PWNED2`; touch PWNED3 #(touch PWNED7) 'q\" \n$HOME"
    session = TmuxSession("inject $(touch PWNED4)")
    result = runs.tmux(
        session,
        title,
        Invocation([sys.executable, "-c", "import os, sys; print(sys.argv[1]); print(os.getcwd())", title],
                   cwd=workdir),
    )
    assert result.exit_status == 0
    assert runs.lines[title] == [*title.split("\n"), str(workdir)]  # verbatim
    assert sanitize_name(title) in windows(session.name)
    assert session.name == "inject_touch_PWNED4"
    # '#(...)' jobs run asynchronously: wait until every job tmux started has ended.
    format_jobs_done(tmp_path / "sentinel")
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.home().glob("PWNED*"))


def test_timeout_kills_agent_tree(tmp_path: Path, runs: Runs) -> None:
    pids_file = tmp_path / "pids"
    script = write_script(
        tmp_path,
        """
        import os, signal, sys, time
        def note(pid):
            with open(sys.argv[1], "a") as f:
                f.write(f"{pid}\\n")
        note(os.getpid())
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            note(os.getpid())
            time.sleep(60)
            os._exit(0)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                note(os.getpid())
                time.sleep(60)
            os._exit(0)
        print("tree up", flush=True)
        time.sleep(60)
        """,
    )
    session = TmuxSession("timeout")
    started = time.monotonic()
    result = runs.tmux(session, "task-t", Invocation([sys.executable, str(script), str(pids_file)]),
                       timeout=1.5, grace=0.5)
    assert result.timed_out and result.exit_status == 143
    assert time.monotonic() - started < 30  # the limit is 1.5 s + 0.5 s grace; this only catches a hang
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 3 and result.pid == pids[0]
    for pid in pids:
        assert wait_for(lambda: gone(pid), 3), f"process {pid} survived"
    window_id = windows("timeout")["task-t"]
    assert wait_for(lambda: "[seqrun] killed: timeout" in tmux("capture-pane", "-p", "-t", window_id))


def test_idle_timeout_and_cancel(tmp_path: Path, runs: Runs) -> None:
    script = write_script(tmp_path, "import time\nprint('start', flush=True)\ntime.sleep(30)\n")
    session = TmuxSession("limits")
    idle = runs.tmux(session, "idle", Invocation([sys.executable, str(script)]), idle_timeout=0.7, grace=0.5)
    assert idle.idle_timed_out and not idle.timed_out and gone(idle.pid)
    cancel = threading.Event()
    threading.Timer(0.7, cancel.set).start()
    cancelled = runs.tmux(session, "cancel", Invocation([sys.executable, str(script)]), cancel=cancel, grace=0.5)
    assert cancelled.interrupted and cancelled.exit_status == 143 and gone(cancelled.pid)
    assert runs.lines["idle"] == runs.lines["cancel"] == ["start"]


def test_window_closed_mid_run(tmp_path: Path, runs: Runs) -> None:
    script = write_script(
        tmp_path,
        "import signal, time\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(30)\n",
    )
    session = TmuxSession("closed")

    def pane_text() -> str:
        proc = subprocess.run(["tmux", "capture-pane", "-p", "-t", "=closed:task-c"],
                              capture_output=True, text=True)
        return proc.stdout

    def close_window_when_ready() -> None:
        wait_for(lambda: "ready" in pane_text(), 10)
        tmux("kill-window", "-t", windows("closed")["task-c"])

    closer = threading.Thread(target=close_window_when_ready)
    closer.start()
    result = runs.tmux(session, "task-c", Invocation([sys.executable, str(script)]), grace=0.5, timeout=20)
    closer.join()
    assert result.error == "the tmux window was closed while the agent ran"
    assert result.exit_status == 143 and not result.timed_out  # SIGTERM from the shim
    assert wait_for(lambda: gone(result.pid), 3)


def test_viewer_killed_mid_run(tmp_path: Path, runs: Runs) -> None:
    """The window's program dies: nobody can see the agent any more, so it is ended."""
    script = write_script(
        tmp_path,
        "import os, signal, time\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "child = os.fork()\nif child == 0:\n    os.setsid()\n    time.sleep(60)\n"
        "print('ready', child, flush=True)\ntime.sleep(60)\n",
    )
    session = TmuxSession("shim")

    def kill_viewer_when_ready() -> None:
        def ready() -> bool:
            proc = subprocess.run(["tmux", "capture-pane", "-p", "-t", "=shim:task-s"],
                                  capture_output=True, text=True)
            return "ready" in proc.stdout
        wait_for(ready, 10)
        viewer = int(tmux("display-message", "-p", "-t", "=shim:task-s", "#{pane_pid}"))
        os.kill(viewer, signal.SIGKILL)

    killer = threading.Thread(target=kill_viewer_when_ready)
    killer.start()
    started = time.monotonic()
    result = runs.tmux(session, "task-s", Invocation([sys.executable, str(script)]), grace=0.5, timeout=20)
    killer.join()
    assert time.monotonic() - started < 10
    assert result.error == "the tmux window was closed while the agent ran"
    assert result.exit_status == 143 and not result.interrupted and not result.timed_out
    child = int(runs.lines["task-s"][0].split()[1])
    assert wait_for(lambda: gone(result.pid) and gone(child), 3)


def test_keep_windows_bound(tmp_path: Path, runs: Runs) -> None:
    session = TmuxSession("keep", keep_windows=2)
    for n in range(4):
        assert runs.tmux(session, f"task-{n}", Invocation(["true"])).exit_status == 0
    assert set(windows("keep")) == {"task-2", "task-3"}
    # A later run (a new session object) counts the windows the earlier one left,
    # and a window the user closed meanwhile does not stop the pruning.
    later = TmuxSession("keep", keep_windows=2)
    assert runs.tmux(later, "task-4", Invocation(["true"])).exit_status == 0
    assert set(windows("keep")) == {"task-3", "task-4"}
    tmux("kill-window", "-t", windows("keep")["task-3"])
    for n in (5, 6):
        assert runs.tmux(later, f"task-{n}", Invocation(["true"])).exit_status == 0
    assert set(windows("keep")) == {"task-5", "task-6"}


def test_sanitize_name() -> None:
    assert sanitize_name("task-1.2") == "task-1_2"  # a session name: '.' is a target separator
    assert sanitize_name("task-1.2", window=True) == "task-1.2"  # windows are targeted by id
    assert sanitize_name("task-$(touch x);`y`", window=True) == "task-_touch_x_y"
    assert sanitize_name("a:b.c d") == "a_b_c_d"
    assert sanitize_name("--$(x)") == "x"
    assert sanitize_name("") == "seqrun"
    assert len(sanitize_name("x" * 200)) == 64


def test_missing_command_or_cwd_raises_before_any_window(tmp_path: Path, runs: Runs) -> None:
    session = TmuxSession("missing")
    with pytest.raises(FileNotFoundError):
        runs.tmux(session, "task-m", Invocation(["seqrun-no-such-command-xyz"]))
    with pytest.raises(FileNotFoundError):
        runs.tmux(session, "task-m", Invocation(["true"], cwd=tmp_path / "nope"))
    assert not session.exists()


def test_broken_viewer_is_reported(tmp_path: Path, runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window's program cannot start: a clear error, and the agent does not run on."""
    import seqrun.terminal.tmux as tmux_module

    monkeypatch.setattr(tmux_module, "VIEWER", str(tmp_path / "no_such_viewer.py"))
    pid_file = tmp_path / "pid"
    script = write_script(tmp_path, "import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\n"
                                    "time.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(tmux_module.TmuxError, match="viewer connected.*no_such_viewer.py"):
        runs.tmux(TmuxSession("broken"), "task-x", Invocation([sys.executable, str(script), str(pid_file)]),
                  grace=0.5)
    assert time.monotonic() - started < 10
    assert wait_for(lambda: gone(int(pid_file.read_text())), 3)


def test_seqrun_moves_on_while_a_viewer_is_still_starting(tmp_path: Path, runs: Runs,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing waits for a window's viewer: the next window opens and its agent
    runs while the first viewer has not even started; once the viewers are
    there, each window shows its whole output and its last line."""
    import seqrun.terminal.tmux as tmux_module

    gate = tmp_path / "gate"
    slow = write_script(tmp_path, f"""
        import os, sys, time
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
        os.execv(sys.executable, [sys.executable, "-S", {tmux_module.VIEWER!r}, *sys.argv[1:]])
        """, name="slow_viewer.py")
    monkeypatch.setattr(tmux_module, "VIEWER", str(slow))
    session = TmuxSession("async", keep_windows=5)
    ran = threading.Event()

    def two_tasks() -> None:
        for n in (1, 2):
            window = session.open(f"task-{n}", Invocation([sys.executable, "-c", f"print('output of {n}')"]))
            window.write(f"header of {n}\n".encode())
            window.run(log_path=runs.log(f"task-{n}"), on_line=lambda line: None)
            window.close(f"verdict of {n}")
        ran.set()

    worker = threading.Thread(target=two_tasks, daemon=True)
    worker.start()
    try:
        assert wait_for(ran.is_set, 20), "seqrun waited for a viewer that had not started"
    finally:
        gate.touch()
    worker.join(20)
    session.close()
    for n in (1, 2):
        shown = [line for line in tmux("capture-pane", "-p", "-t", windows("async")[f"task-{n}"]).splitlines()
                 if line.strip()]
        assert shown == [f"header of {n}", f"output of {n}", f"verdict of {n}"], shown


def test_a_viewer_that_finds_seqrun_gone_says_so(tmp_path: Path) -> None:
    """seqrun was killed before the window's program started: the window says
    so (not a traceback), and the socket seqrun left is removed."""
    import socket

    from seqrun.terminal.tmux import VIEWER
    from seqrun.terminal.window import GONE

    folder = Path(tempfile.mkdtemp(prefix="sqv-"))
    path = folder / "s"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))
    left.close()  # bound, never listening: as a killed seqrun leaves it
    proc = subprocess.run([sys.executable, "-S", VIEWER, str(path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == GONE and not proc.stderr
    assert not folder.exists()
