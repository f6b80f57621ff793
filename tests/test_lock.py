"""One run per spec: a second seqrun on a held spec is refused; a dead run's lock is taken over."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import json

import pytest

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
        assert time.monotonic() - start < 20  # refused at once: not after the first agent's 30 s
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
    detach = project / ".kiro" / "specs" / ".seqrun" / "detach"
    assert f"output: {detach / 'feature.log'}; pid file: {detach / 'feature.pid'}" in result.stdout
    assert "2 passed" in (detach / "feature.log").read_text()
    assert not (detach / "feature.pid").exists()  # removed when the run ended


# -- --detach checks everything before it leaves the terminal -----------------------------------


def _background_pids(project) -> list[int]:
    """seqrun processes started in ``project`` (a detached run would be one)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if cwd == str(project) and b"seqrun" in cmdline:
            found.append(int(entry))
    return found


def test_detach_without_the_agent_cli_fails_on_the_terminal(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. One\n")
    result = run_seqrun("--detach", "--backend", "codex", "--no-tmux",
                        env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 4, result.stdout + result.stderr
    assert "background" not in result.stdout
    assert result.stderr.startswith("ERROR: codex not found on PATH") and len(result.stderr.splitlines()) == 1
    assert _background_pids(project) == []
    assert not (project / ".kiro" / "specs" / ".seqrun" / "detach" / "feature.pid").exists()


def _git(project, *args):
    return subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, text=True).stdout


def _committed_repo(project) -> dict[str, str]:
    """Make ``project`` a git repository with everything committed; return
    the environment that lets seqrun commit in it."""
    _git(project, "init", "-q", "-b", "main")
    _git(project, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    _git(project, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "initial")
    return {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "SEQRUN_DEMO_DELAY": "0"}


def _wait_gone(pid: int, timeout: float = 60) -> None:
    from conftest import gone, wait_for

    assert wait_for(lambda: gone(pid), timeout), f"background seqrun {pid} still running"


def test_detach_with_git_commit_commits_each_task_and_leaves_the_tree_clean(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. One\n- [ ] 2. Two\n")
    env = _committed_repo(project)
    result = run_seqrun("--detach", "--git-commit", "--backend", "demo", "--no-tmux", "--delay", "0", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    pid = int(result.stdout.split("pid ")[1].split(";")[0])
    _wait_gone(pid)
    log = (project / ".kiro" / "specs" / ".seqrun" / "detach" / "feature.log").read_text()
    assert "2 passed" in log, log
    assert _git(project, "log", "--format=%s").splitlines() == [
        "seqrun: feature 2 Two", "seqrun: feature 1 One", "initial"]
    # Only seqrun's run files, never committed by design; no log of the detached run.
    assert _git(project, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        "?? .kiro/specs/SEQUENTIAL_PROGRESS.md", "?? .kiro/specs/SEQUENTIAL_STATE.json"]
    # A dirty tree is refused on the terminal, before anything is detached.
    (project / "stray.txt").write_text("uncommitted")
    (project / ".kiro" / "specs" / "feature" / "tasks.md").write_text("- [ ] 3. Three\n")
    _git(project, "add", "-A")
    result = run_seqrun("--detach", "--git-commit", "--backend", "demo", "--no-tmux", env=env)
    assert result.returncode == 4 and "background" not in result.stdout, result.stdout + result.stderr
    assert "--git-commit: the work tree has uncommitted changes outside the specs (stray.txt)" in result.stderr
    assert _background_pids(project) == []


def test_detach_log_path_is_kept_and_out_of_the_commits(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. One\n")
    env = _committed_repo(project)
    result = run_seqrun("--detach", "--detach-log", "night.log", "--git-commit", "--backend", "demo",
                        "--no-tmux", "--delay", "0", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    _wait_gone(int(result.stdout.split("pid ")[1].split(";")[0]))
    assert "1 passed" in (project / "night.log").read_text(), (project / "night.log").read_text()
    assert f"output: {project / 'night.log'};" in result.stdout
    assert "night.log" not in _git(project, "show", "--name-only", "--format=", "HEAD")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_detach_in_tmux_names_the_session_to_attach_to(make_spec, run_seqrun, project, tmp_path):
    make_spec("- [ ] 1. One\n")
    sock = tmp_path / "tmux"
    sock.mkdir()
    env = {"TMUX_TMPDIR": str(sock), "SEQRUN_DEMO_DELAY": "0"}
    try:
        result = run_seqrun("--detach", "--backend", "demo", "--delay", "0", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.rstrip().endswith("; attach: tmux attach -t sequential-feature"), result.stdout
        _wait_gone(int(result.stdout.split("pid ")[1].split(";")[0]))
        assert "1 passed" in (project / ".kiro" / "specs" / ".seqrun" / "detach" / "feature.log").read_text()
    finally:
        subprocess.run(["tmux", "kill-server"], env=seqrun_env(env), capture_output=True)


# -- the lock survives the work tree being cleaned ----------------------------------------------

CLEANING_AGENT = """\
import pathlib, shutil, sys, time
here = pathlib.Path(__file__).resolve().parent
if (here / "cleaned").exists():  # a second agent on the same task: the lock let it in
    (here / "ran-twice").write_text("")
    sys.exit(1)
shutil.rmtree(here / ".kiro" / "specs" / ".seqrun")  # what `git clean -fdx` does
(here / "cleaned").write_text("")
deadline = time.monotonic() + 60
while not (here / "go-on").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("<promise>TASK_DONE</promise>")
"""


@pytest.mark.parametrize("first_has_xdg", [False, True], ids=["tmp", "xdg-runtime-dir"])
def test_lock_survives_the_agent_deleting_the_seqrun_folder(make_spec, run_seqrun, project, tmp_path,
                                                            first_has_xdg):
    from conftest import use_command_agent, wait_for

    folder = make_spec("- [ ] 1. Clean the tree\n")
    use_command_agent(project, CLEANING_AGENT, toml_top='backend = "command"\nno_tmux = true\ndelay = 0.0')
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    # The first run is started from a login shell (XDG_RUNTIME_DIR set) or not;
    # the later ones never have it, as from cron.
    first = subprocess.Popen([sys.executable, "-m", "seqrun"], cwd=project,
                             env=seqrun_env({"XDG_RUNTIME_DIR": str(xdg)} if first_has_xdg else None),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    no_xdg = {"XDG_RUNTIME_DIR": ""}
    try:
        assert wait_for(lambda: (project / "cleaned").exists(), 30), "the agent never cleaned the tree"
        assert not (project / ".kiro" / "specs" / ".seqrun").exists()
        second = run_seqrun(env=no_xdg)
        assert second.returncode == 4, second.stdout + second.stderr
        assert f"being run by another seqrun (pid {first.pid})" in second.stderr
        # Through another path to the same spec, too.
        (project / "alias").symlink_to(folder, target_is_directory=True)
        third = run_seqrun("alias", env=no_xdg)
        assert third.returncode == 4 and f"(pid {first.pid})" in third.stderr, third.stdout + third.stderr
        assert not (project / "ran-twice").exists()
        if first_has_xdg:
            (held,) = (xdg / "seqrun" / "locks").iterdir()
            assert held.read_text().splitlines() == [str(first.pid), str((folder / "tasks.md").resolve())]
        (project / "go-on").write_text("")
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGTERM)
            first.communicate(timeout=30)
    assert (folder / "tasks.md").read_text() == "- [x] 1. Clean the tree\n"
    if first_has_xdg:
        assert list((xdg / "seqrun" / "locks").iterdir()) == []  # removed when the run ended
