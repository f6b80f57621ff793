"""seqrun in tmux mode against a real tmux server on an isolated socket
(``TMUX_TMPDIR``): the agent runs in window ``task-<id>``, verdicts match pty mode."""
from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import seqrun_env, use_command_agent, wait_for

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]



def tmux(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["tmux", *args], env=seqrun_env(env), capture_output=True, text=True).stdout


def test_agent_runs_inside_window_task_id(make_spec, run_seqrun, project, tmux_env):
    make_spec("- [ ] 1. Parent\n  - [ ] 1.2 Print where I run\n")
    agent = project / "agent.py"
    agent.write_text(textwrap.dedent("""
        import os, sys
        with open(sys.argv[2], "a") as f:
            f.write(os.environ.get("TMUX_PANE", "") + " " + str(os.isatty(1)) + "\\n")
        print("<promise>TASK_DONE</promise>")
    """))
    panes = project / "panes.txt"
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(agent))}, '
        f'"{{prompt_file}}", {json.dumps(str(panes))}]\n')
    result = run_seqrun("--backend", "command", "--delay", "0", "--tmux-session", "watch me",
                        env=tmux_env)
    assert result.returncode == 0, result.stdout + result.stderr
    pane, isatty = panes.read_text().split()
    assert isatty == "True"
    assert tmux(tmux_env, "display-message", "-p", "-t", pane, "#{session_name} #{window_name}").split() == [
        "watch_me", "task-1.2"]


def test_seed_command_line_completes_three_tasks_in_tmux(make_spec, run_seqrun, project, tmux_env):
    folder = make_spec("- [ ] 1. Model\n- [ ] 2. API\n- [ ] 3. UI `$(touch PWNED)`; echo \"x\"\n",
                       name="my-feature")
    result = run_seqrun(
        "--spec", ".kiro/specs/my-feature", "--delay", "15", "--max-iterations", "50",
        "--backend", "opencode", "--assign-backend", "codex", "--tmux-session", "sequential-my-feature",
        env=tmux_env, fakes=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "tasks.md").read_text().count("- [x]") == 3
    windows = tmux(tmux_env, "list-windows", "-t", "sequential-my-feature", "-F", "#{window_name}").split()
    assert windows == ["task-1", "task-2", "task-3"]
    # The fake codex answers in prose, not JSON: the assignment falls back to --backend.
    assert "using --backend" in result.stderr
    assert not list(project.rglob("PWNED"))
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert state["completed"] == ["1", "2", "3"] and state["spec"] == "my-feature"


def test_tmux_and_pty_give_the_same_verdicts(make_spec, run_seqrun, project, tmux_env):
    text = "- [ ] 1. Done\n- [ ] 2. Echo trap\n- [ ] 3. Stop here\n"
    script = project / "script.json"
    script.write_text(json.dumps({"1": "done", "2": "echo_not_done", "3": "halt"}))
    outcomes = {}
    for mode in ("pty", "tmux"):
        make_spec(text, name=f"spec-{mode}")
        args = ["--backend", "gemini", "--delay", "0", "--reruns", "0", f".kiro/specs/spec-{mode}"]
        if mode == "pty":
            args.append("--no-tmux")
        result = run_seqrun(*args, env={**tmux_env, "SEQRUN_FAKE_SCRIPT": str(script)}, fakes=True)
        assert result.returncode == 2, result.stdout + result.stderr
        state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
        outcomes[mode] = {k: v["status"] for k, v in state["specs"][f"spec-{mode}"]["tasks"].items()}
    assert outcomes["pty"] == outcomes["tmux"] == {"1": "passed", "2": "failed", "3": "halted"}


def test_codeagent_no_tmux_disables_tmux(make_spec, run_seqrun, tmux_env):
    make_spec("- [ ] 1. Task\n")
    result = run_seqrun("--backend", "claude", "--delay", "0",
                        env={**tmux_env, "CODEAGENT_NO_TMUX": "1"}, fakes=True)
    assert result.returncode == 0
    assert tmux(tmux_env, "list-sessions") == ""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_in_tmux_mode_ends_agent_and_window_says_so(sig, make_spec, project, tmux_env):
    import signal
    import time

    from test_run import SPAWNER, _command_config, _pid_alive, _read_pids, _seqrun_process, _wait_until_running

    make_spec("- [ ] 1. Long\n- [ ] 2. Never reached\n")
    _command_config(project, SPAWNER)
    with _seqrun_process(project, "--delay", "0", "--backend", "command", "--kill-grace", "1",
                         "--tmux-session", "sig", env=tmux_env) as proc:
        _wait_until_running(project, proc)
        sent = time.monotonic()
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    assert time.monotonic() - sent < 10
    assert not [p for p in _read_pids(project) if _pid_alive(p)]
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    task = state["specs"]["feature"]["tasks"]["1"]
    assert task["status"] == "interrupted" and "interrupted" in task["last_error"]
    screen = tmux(tmux_env, "capture-pane", "-p", "-t", "sig:task-1")
    assert "[seqrun]" in screen and "cancel" in screen, screen



def test_tmux_mode_works_with_the_installed_package_alone(make_spec, project, tmux_env):
    """No PYTHONPATH pointing at the repository: the window's viewer runs without
    site and without importing seqrun, and the run still completes."""
    make_spec("- [ ] 1. One\n")
    env = seqrun_env({**tmux_env, "SEQRUN_DEMO_DELAY": "0"})
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "seqrun", "--backend", "demo", "--delay", "0"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=60)
    if "No module named seqrun" in result.stderr:
        pytest.skip("seqrun is not installed (only importable from the repository)")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_window_made_just_before_a_kill_is_marked_and_pruned(make_spec, run_seqrun, project, tmux_env):
    """seqrun killed right after tmux created a window: the window already
    carries seqrun's mark, so the next run prunes it (--keep-windows 0)."""
    make_spec("- [ ] 1. Task\n")
    use_command_agent(project, 'print("<promise>TASK_DONE</promise>")')
    # A tmux that kills its caller (seqrun) with -9 just after the first call
    # that creates a window returns: the moment between creating and marking.
    bin_dir = project / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "tmux"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        {shutil.which("tmux")} "$@"
        status=$?
        case "$status $* " in
          "0 new-window "*|"0 new-session "*)
            if [ ! -e "{project / 'killed'}" ]; then : > "{project / 'killed'}"; kill -9 $PPID; fi ;;
        esac
        exit $status
    """))
    wrapper.chmod(0o755)
    env = {**tmux_env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    first = run_seqrun("--backend", "command", "--delay", "0", "--tmux-session", "s", env=env)
    assert first.returncode == -9 and (project / "killed").exists(), first.stdout + first.stderr
    name, mark, owner = tmux(tmux_env, "list-windows", "-t", "=s", "-F", "#{window_name} #{@seqrun}").split()
    assert (name, mark) == ("task-1", "running") and owner.isdigit()
    second = run_seqrun("--backend", "command", "--delay", "0", "--tmux-session", "s",
                        "--keep-windows", "0", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert tmux(tmux_env, "list-windows", "-a", "-F", "#{window_id} #{window_name}") == ""


def test_a_killed_runs_window_is_pruned_while_its_viewer_still_runs(make_spec, run_seqrun, project, tmux_env):
    """A window marked running by a seqrun that is gone is a leftover even
    when its pane is still alive (its viewer had not yet noticed)."""
    make_spec("- [ ] 1. Task\n")
    use_command_agent(project, 'print("<promise>TASK_DONE</promise>")')
    gone = subprocess.Popen(["true"])
    gone.wait()
    tmux(tmux_env, "new-session", "-d", "-s", "s", "-n", "leftover", "sleep", "600", ";",
         "set-option", "-w", "-t", "=s:", "@seqrun", f"running {gone.pid}")
    result = run_seqrun("--backend", "command", "--delay", "0", "--tmux-session", "s", "--keep-windows", "0",
                        env=tmux_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leftover" not in tmux(tmux_env, "list-windows", "-a", "-F", "#{window_name}")


def test_inside_tmux_the_hint_is_switch_client(make_spec, run_seqrun, tmux_env):
    """``tmux attach`` refuses to nest: from inside tmux the way to watch is
    ``switch-client``. TMUX names the same (isolated) server seqrun uses."""
    make_spec("- [ ] 1. One\n- [ ] 2. Two\n")
    socket = Path(tmux_env["TMUX_TMPDIR"]) / f"tmux-{os.getuid()}" / "default"
    inside = {**tmux_env, "TMUX": f"{socket},1,0", "SEQRUN_DEMO_DELAY": "0"}
    result = run_seqrun(".kiro/specs/feature::1", "-v", "--backend", "demo", env=inside)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "        watch: tmux switch-client -t sequential-feature" in result.stdout.splitlines(), result.stdout
    outside = run_seqrun(".kiro/specs/feature::2", "-v", "--backend", "demo", env={**tmux_env, "SEQRUN_DEMO_DELAY": "0"})
    assert outside.returncode == 0, outside.stdout + outside.stderr
    assert "        watch: tmux attach -t sequential-feature" in outside.stdout.splitlines(), outside.stdout


def test_keep_windows_prunes_and_every_window_has_its_verdict_when_seqrun_exits(
        make_spec, run_seqrun, project, tmux_env):
    """Marks and pruning ride along with the next window's tmux call; the end
    of the run sends what is left, and seqrun exits only once the last
    window's viewer shows the verdict."""
    make_spec("".join(f"- [ ] {n}. Task {n}\n" for n in range(1, 5)))
    use_command_agent(project, 'print("<promise>TASK_DONE</promise>")')
    result = run_seqrun("--backend", "command", "--delay", "0", "--tmux-session", "keep",
                        "--keep-windows", "2", env=tmux_env)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = tmux(tmux_env, "list-windows", "-t", "=keep", "-F", "#{window_name}\t#{@seqrun}\t#{window_id}")
    rows = [line.split("\t") for line in listed.splitlines()]
    assert [name for name, _, _ in rows] == ["task-3", "task-4"], listed
    assert all(mark.startswith("done ") for _, mark, _ in rows), listed

    def last_line() -> str:
        shown = [line for line in tmux(tmux_env, "capture-pane", "-p", "-t", rows[-1][2]).splitlines()
                 if line.strip()]
        return shown[-1] if shown else ""

    # Either the verdict, or (had seqrun not waited for the viewer) that seqrun is gone.
    assert wait_for(lambda: last_line().startswith(("PASSED", "[seqrun] lost"))), last_line()
    assert last_line() == "PASSED"
