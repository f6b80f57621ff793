"""What a task's tmux window shows, read back from a real tmux server
(isolated with ``TMUX_TMPDIR``) after seqrun ran the fake agent CLIs: a
header, the CLI's stream rendered (text and tool calls, never JSON),
and seqrun's verdict at the end, decided after verification."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import seqrun_env, wait_for

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

STRUCTURED = ("claude", "codex", "gemini", "opencode")
NO_MARKER = "FAILED: no TASK_DONE marker in the final message"


@pytest.fixture
def tmux_env(tmp_path: Path):
    sock = tmp_path / "tmux"
    sock.mkdir()
    env = {"TMUX_TMPDIR": str(sock)}
    yield env
    subprocess.run(["tmux", "kill-server"], env=seqrun_env(env), capture_output=True)


def tmux(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["tmux", *args], env=seqrun_env(env), capture_output=True, text=True).stdout


def windows(env: dict[str, str], session: str) -> dict[str, str]:
    """Window name → window id."""
    out = tmux(env, "list-windows", "-t", f"={session}", "-F", "#{window_name}\t#{window_id}")
    return dict(line.split("\t") for line in out.splitlines())


def finished_pane(env: dict[str, str], window_id: str, last: str) -> list[str]:
    """The whole pane (history too, wrapped lines joined) once its viewer showed ``last``."""
    def screen() -> list[str]:
        return tmux(env, "capture-pane", "-p", "-J", "-S", "-", "-t", window_id).splitlines()

    assert wait_for(lambda: any(line.startswith(last) for line in screen()), 15), screen()
    return screen()


def log_of(project: Path, spec: str, task: str) -> str:
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    return str(project / state["specs"][spec]["tasks"][task]["log"])


def run(run_seqrun, env, *args: str, scenario: str, extra: dict[str, str] | None = None):
    return run_seqrun("--delay", "0", "--reruns", "0", "--tmux-session", "view", *args,
                      env={**env, "SEQRUN_FAKE_SCENARIO": scenario, **(extra or {})}, fakes=True)


@pytest.mark.parametrize("backend", STRUCTURED)
def test_window_of_a_task_without_marker_is_rendered_with_header_and_verdict(
        backend, make_spec, run_seqrun, project, tmux_env):
    make_spec("- [ ] 1. Add a greeting\n")
    result = run(run_seqrun, tmux_env, "--backend", backend, scenario="echo_not_done")
    assert result.returncode == 1, result.stdout + result.stderr
    pane = finished_pane(tmux_env, windows(tmux_env, "view")["task-1"], "FAILED")

    assert "seqrun · task 1: Add a greeting" in pane
    assert "  spec     feature" in pane
    assert "  attempt  1" in pane
    assert f"  backend  {backend} · model default" in pane
    assert f"  log      {log_of(project, 'feature', '1')}" in pane
    # The agent ran `cat TASK.md` (each CLI names its shell tool its own way).
    tool_calls = [line for line in pane if line.startswith("▶ ") and line.endswith("  cat TASK.md")]
    assert len(tool_calls) == 1, pane
    assert ("I read TASK.md and looked at README.md; the greeting is not added yet because the README "
            "is generated from docs/. I will continue in the next iteration.") in pane
    assert not [line for line in pane if line.startswith('{"type"') or line.startswith("{")], pane
    shown = [line for line in pane if line.strip() and not line.startswith("Pane is dead")]
    assert shown[-1] == NO_MARKER, pane
    # The exit status is there, but it is not the last word.
    assert pane.index(NO_MARKER) > max(i for i, line in enumerate(pane) if line.startswith("[seqrun] exit 0"))


def test_window_of_a_passing_task_says_passed(make_spec, run_seqrun, tmux_env):
    make_spec("- [ ] 1. Add a greeting\n")
    result = run(run_seqrun, tmux_env, "--backend", "claude", scenario="done")
    assert result.returncode == 0, result.stdout + result.stderr
    pane = finished_pane(tmux_env, windows(tmux_env, "view")["task-1"], "PASSED")
    assert "PASSED" in pane
    assert any(line.startswith("▶ Bash  printf") for line in pane), pane
    assert not [line for line in pane if line.startswith("FAILED")]


def test_window_verdict_comes_after_verification(make_spec, run_seqrun, tmux_env):
    """The agent said done; the check disagreed: the window says FAILED, not exit 0."""
    make_spec("- [ ] 1. Add a greeting\n")
    check = f"{sys.executable} -c 'raise SystemExit(3)'"
    result = run(run_seqrun, tmux_env, "--backend", "codex", "--verify", check, scenario="done")
    assert result.returncode == 1, result.stdout + result.stderr
    pane = finished_pane(tmux_env, windows(tmux_env, "view")["task-1"], "FAILED")
    verdict = [line for line in pane if line.startswith("FAILED")]
    assert len(verdict) == 1 and verdict[0].startswith("FAILED: verification failed:"), pane
    assert verdict[0].endswith(" exited 3"), verdict


def test_raw_window_output_shows_the_cli_stream(make_spec, run_seqrun, project, tmux_env):
    make_spec("- [ ] 1. Add a greeting\n")
    (project / "seqrun.toml").write_text('window_output = "raw"\n')
    result = run(run_seqrun, tmux_env, "--backend", "claude", scenario="echo_not_done")
    assert result.returncode == 1, result.stdout + result.stderr
    pane = finished_pane(tmux_env, windows(tmux_env, "view")["task-1"], "FAILED")
    assert any(line.startswith('{"type":"assistant"') for line in pane), pane
    assert not [line for line in pane if line.startswith("▶ ")]
    assert "seqrun · task 1: Add a greeting" in pane and NO_MARKER in pane


def test_plain_text_backend_is_shown_as_it_is(make_spec, run_seqrun, project, tmux_env):
    make_spec("- [ ] 1. Say it\n")
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, "-c", '
        '"print(\'{\\"type\\": \\"mine\\"}\'); print(\'plain words\')"]\n')
    result = run(run_seqrun, tmux_env, "--backend", "command", scenario="done")
    assert result.returncode == 1, result.stdout + result.stderr
    pane = finished_pane(tmux_env, windows(tmux_env, "view")["task-1"], "FAILED")
    assert '{"type": "mine"}' in pane and "plain words" in pane


def test_window_names_tell_attempts_apart(make_spec, run_seqrun, tmux_env):
    make_spec("- [ ] 1.2 Add a greeting\n")
    result = run_seqrun("--delay", "0", "--reruns", "1", "--tmux-session", "view", "--backend", "gemini",
                        env={**tmux_env, "SEQRUN_FAKE_SCENARIO": "echo_not_done"}, fakes=True)
    assert result.returncode == 1, result.stdout + result.stderr
    again = run_seqrun("--delay", "0", "--reruns", "0", "--tmux-session", "view", "--backend", "gemini",
                       env={**tmux_env, "SEQRUN_FAKE_SCENARIO": "echo_not_done"}, fakes=True)
    assert again.returncode == 1, again.stdout + again.stderr
    names = windows(tmux_env, "view")
    assert list(names) == ["task-1.2", "task-1.2#2", "task-1.2#3"]
    pane = finished_pane(tmux_env, names["task-1.2#3"], "FAILED")
    assert "  attempt  3" in pane


def test_window_of_a_killed_seqrun_says_so(make_spec, project, tmux_env):
    """seqrun killed while it verifies: the window, still waiting for the
    verdict, says seqrun is gone rather than showing a result."""
    make_spec("- [ ] 1. Add a greeting\n")
    started = project / "verifying"
    check = (f"{sys.executable} -c 'import os, pathlib, time; "
             f"pathlib.Path(\"{started}\").write_text(str(os.getpid())); time.sleep(60)'")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrun", "--delay", "0", "--backend", "claude", "--tmux-session", "view",
         "--verify", check],
        cwd=project, env=seqrun_env({**tmux_env, "SEQRUN_FAKE_SCENARIO": "done"}, fakes=True),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        assert wait_for(started.exists, 30)
        window = windows(tmux_env, "view")["task-1"]
        time.sleep(0.3)  # the pane has had time to show anything already sent
        assert not [line for line in tmux(tmux_env, "capture-pane", "-p", "-J", "-t", window).splitlines()
                    if line.startswith(("PASSED", "FAILED"))]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pane = finished_pane(tmux_env, window, "[seqrun] lost the connection")
        assert any(line.startswith("[seqrun] exit 0") for line in pane)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if started.exists() and started.read_text():
            try:
                os.kill(int(started.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
