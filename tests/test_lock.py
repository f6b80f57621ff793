"""One run per spec: a second seqrun on a held spec is refused; a dead run's lock is taken over."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import json

from conftest import seqrun_env


def _slow_agent(project):
    script = project / "agent.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        open(sys.argv[1] + ".started", "w").close()
        time.sleep(float(sys.argv[2]))
        print("<promise>TASK_DONE</promise>")
    """))
    (project / "seqrun.toml").write_text(
        f'backend = "command"\nno_tmux = true\ndelay = 0.0\n[backends.command]\n'
        f'argv = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, "{{prompt_file}}", "30"]\n')


def _start(project):
    return subprocess.Popen([sys.executable, "-m", "seqrun"], cwd=project, env=seqrun_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_started(project):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if list(project.rglob("*.started")):
            return
        time.sleep(0.1)
    raise AssertionError("agent never started")


def test_second_run_on_a_held_spec_is_refused(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Slow\n")
    _slow_agent(project)
    first = _start(project)
    try:
        _wait_started(project)
        start = time.monotonic()
        second = run_seqrun()
        assert time.monotonic() - start < 5
        assert second.returncode == 4
        assert f"pid {first.pid}" in second.stderr
        assert "being run by another seqrun" in second.stderr
        # Collecting is read-only and never blocked.
        assert run_seqrun("--co").returncode == 0
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.communicate(timeout=30)


def test_lock_of_a_killed_run_is_taken_over(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Slow\n")
    _slow_agent(project)
    first = _start(project)
    _wait_started(project)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=30)
    toml = (project / "seqrun.toml").read_text().replace('"30"]', '"0"]')
    (project / "seqrun.toml").write_text(toml)
    second = run_seqrun()
    assert second.returncode == 0, second.stdout + second.stderr
    assert (folder / "tasks.md").read_text() == "- [x] 1. Slow\n"


def test_two_specs_run_at_once(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Slow\n", name="one")
    make_spec("- [ ] 1. Quick\n", name="two")
    _slow_agent(project)
    first = subprocess.Popen([sys.executable, "-m", "seqrun", ".kiro/specs/one"], cwd=project,
                             env=seqrun_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        _wait_started(project)
        (project / "seqrun.toml").write_text((project / "seqrun.toml").read_text().replace('"30"]', '"0"]'))
        other = run_seqrun(".kiro/specs/two")
        assert other.returncode == 0, other.stderr
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.communicate(timeout=30)


def test_detached_run_survives_without_a_terminal(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. One\n- [ ] 2. Two\n")
    result = run_seqrun("--detach", "--backend", "claude", "--no-tmux", "--delay", "0.5", fakes=True)
    assert result.returncode == 0
    pid = int(result.stdout.split("pid ")[1].split(";")[0])
    # The background run has no controlling terminal: its session is its own.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (folder / "tasks.md").read_text().count("[x]") < 2:
        time.sleep(0.2)
    assert (folder / "tasks.md").read_text() == "- [x] 1. One\n- [x] 2. Two\n"
    try:
        os.kill(pid, 0)
        still = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        still = False
    deadline = time.monotonic() + 10
    while still and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            still = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] != "Z"
        except OSError:
            still = False
    assert not still
    # Read once it has ended: the summary comes after the last tick.
    assert "2 passed" in (project / "seqrun.out").read_text()
