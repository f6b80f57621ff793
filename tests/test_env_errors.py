"""Configuration and environment errors: one line naming the cause and the fix,
the right exit code, no half-written file, no agent left running."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs: a real 'No space left on device' (skipped where mount is not allowed)."""
    point = tmp_path / "disk"
    point.mkdir()
    if not _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)]):
        pytest.skip("cannot mount a tmpfs here")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _small_disk_spec(small_disk: Path, tasks: str, agent_source: str) -> Path:
    """A spec ``feature`` on the small disk, run by the command agent
    ``agent_source`` (kept off the small disk); returns the specs folder."""
    specs = small_disk / ".kiro" / "specs" / "feature"
    specs.mkdir(parents=True)
    (specs / "tasks.md").write_text(tasks)
    agent = small_disk.parent / "agent.py"
    agent.write_text(agent_source)
    (small_disk / "seqrun.toml").write_text(
        'backend = "command"\nno_tmux = true\ndelay = 0.0\n[backends.command]\n'
        f'argv = [{json.dumps(sys.executable)}, {json.dumps(str(agent))}]\n')
    return specs


def test_disk_full_while_the_agent_writes_its_log(small_disk, run_seqrun):
    specs = _small_disk_spec(small_disk, "- [ ] 1. Chatty\n",
                             "import sys\nfor _ in range(64):\n    sys.stdout.write('z' * 65535 + '\\n')\n"
                             "print('<promise>TASK_DONE</promise>')\n")
    result = run_seqrun(cwd=small_disk)
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_line(result.stderr)
    assert "No space left on device" in line and "free some disk space" in line
    # The task was started and never finished: marked in progress, never ticked.
    assert (specs / "tasks.md").read_text() == "- [-] 1. Chatty\n"
    state = json.loads((small_disk / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert state["specs"]["feature"]["completed"] == []
    # Left as seqrun last wrote it before the disk filled: the next run finds the
    # running record, counts the attempt as interrupted and runs the task again.
    assert state["specs"]["feature"]["tasks"]["1"]["status"] == "running"
    assert not list(small_disk.rglob("*.tmp")), "a temporary file was left behind"


def test_read_only_specs_folder(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Task\n")
    specs = project / ".kiro" / "specs"
    if not _mount(["--bind", str(specs), str(specs)]):
        pytest.skip("cannot bind-mount here")
    try:
        if not _mount(["-o", "remount,ro,bind", str(specs)]):
            pytest.skip("cannot remount read-only here")
        before = (folder / "tasks.md").read_bytes()
        result = run_seqrun("--backend", "claude", "--no-tmux", fakes=True)
        assert result.returncode == 4, result.stdout + result.stderr
        line = _one_line(result.stderr)
        assert "Read-only file system" in line and "read-only" in line.split("(")[-1]
        assert (folder / "tasks.md").read_bytes() == before
    finally:
        subprocess.run(["umount", "-l", str(specs)], capture_output=True)


def test_dangling_tasks_file(project, run_seqrun):
    folder = project / ".kiro" / "specs" / "feature"
    folder.mkdir()
    (folder / "tasks.md").symlink_to(project / "nowhere.md")
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert _one_line(result.stderr) == f"ERROR: no tasks.md in {project / '.kiro' / 'specs'} or in its sub-folders"


def test_config_file_errors_are_one_line(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Task\n")
    (project / "seqrun.toml").write_text("delay = [oops\n")
    result = run_seqrun("--co")
    assert result.returncode == 4 and "seqrun.toml is not valid TOML" in _one_line(result.stderr)
    (project / "seqrun.toml").write_text('backend = "command"\n')
    result = run_seqrun("--co")
    assert result.returncode == 4 and "[backends.command] argv" in _one_line(result.stderr)
    (project / "seqrun.toml").write_text('delay = "soon"\n')
    result = run_seqrun("--co")
    assert result.returncode == 4 and "seqrun.toml: delay must be a number of seconds from 0 to 31622400 (a year), got 'soon'" in _one_line(result.stderr)


# -- input checked before any agent starts --------------------------------------------------------

MARKER_AGENT = "import pathlib, sys\npathlib.Path(sys.argv[1]).touch()\nprint('<promise>TASK_DONE</promise>')\n"


def _marker_project(project: Path, toml_top: str = "") -> Path:
    """A two-task spec whose agent leaves ``agent-ran`` behind; returns the marker's path."""
    from conftest import use_command_agent

    marker = project / "agent-ran"
    use_command_agent(project, MARKER_AGENT, str(marker),
                      toml_top=f'backend = "command"\nno_tmux = true\n{toml_top}')
    return marker


def _refused_before_any_agent(result, project: Path, marker: Path, tasks: bytes) -> str:
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_line(result.stderr)
    assert not marker.exists(), "an agent ran before the input was checked"
    assert (project / ".kiro" / "specs" / "feature" / "tasks.md").read_bytes() == tasks
    assert not list(project.rglob("*.tmp"))
    return line


SECONDS_OPTIONS = ["--delay", "--timeout", "--idle-timeout", "--kill-grace", "--rate-limit-margin",
                   "--rate-limit-backoff", "--max-rate-limit-wait", "--verify-timeout", "--assign-timeout",
                   "--notify-timeout"]


def test_seconds_that_no_clock_can_hold_are_refused_before_any_agent(make_spec, run_seqrun, project):
    tasks = b"- [ ] 1. One\n- [ ] 2. Two\n"
    make_spec(tasks)
    marker = _marker_project(project, "delay = 0.0")
    for option in SECONDS_OPTIONS:
        for value in ("inf", "1e308", "nan", "-1"):
            result = run_seqrun(option, value)
            line = _refused_before_any_agent(result, project, marker, tasks)
            assert line == (f"ERROR: argument {option}: must be a number of seconds from 0 to 31622400 "
                            f"(a year), got '{value}'"), line
    for value in ("inf", "1e308", "99999999h"):
        result = run_seqrun("--max-runtime", value)
        line = _refused_before_any_agent(result, project, marker, tasks)
        assert line.startswith("ERROR: --max-runtime: not a duration"), line
    result = run_seqrun(env={"CODEX_TIMEOUT": "9" * 20})
    assert "CODEX_TIMEOUT must be milliseconds" in _refused_before_any_agent(result, project, marker, tasks)
    # The same values from the config file.
    for key, value in (("delay", "inf"), ("timeout", "nan"), ("kill_grace", "-inf"), ("idle_timeout", "1e308"),
                       ("max_runtime", "inf"), ("max_rate_limit_wait", "1e12")):
        _marker_project(project, f"delay = 0.0\n{key} = {value}" if key != "delay" else f"delay = {value}")
        result = run_seqrun()
        line = _refused_before_any_agent(result, project, marker, tasks)
        assert "seqrun.toml" in line or "--max-runtime" in line, line
    # The largest accepted value still runs.
    _marker_project(project, "delay = 31622400\nmax_runtime = 31622400")
    result = run_seqrun(".kiro/specs/feature::1")
    assert result.returncode == 0 and marker.exists(), result.stdout + result.stderr


def test_a_failed_state_save_names_the_state_file_not_its_temporary_file(make_spec, run_seqrun, project):
    specs = project / ".kiro" / "specs"
    make_spec("- [ ] 1. One\n- [ ] 2. Two\n")
    if subprocess.run(["chattr", "+i", str(specs)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    subprocess.run(["chattr", "-i", str(specs)], check=True)
    # The agent makes the specs folder immutable: the state file's next save fails (EPERM).
    agent = ("import subprocess, sys\nsubprocess.run(['chattr', '+i', sys.argv[1]], check=True)\n"
             "print('<promise>TASK_DONE</promise>')\n")
    from conftest import use_command_agent

    use_command_agent(project, agent, str(specs), toml_top='backend = "command"\nno_tmux = true\ndelay = 0.0')
    (specs / "SEQUENTIAL_PROGRESS.md").write_text("")  # appended to in place: still writable
    try:
        result = run_seqrun()
    finally:
        subprocess.run(["chattr", "-i", str(specs)], check=True)
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_line(result.stderr)
    assert line == (f"ERROR: {specs / 'SEQUENTIAL_STATE.json'}: Operation not permitted "
                    "(check the folder's permissions)"), line
    assert not list(specs.glob("*.tmp"))


def test_a_full_disk_names_the_agent_log_it_could_not_write(small_disk, run_seqrun):
    # Says it is done, then fills the disk: the log's last buffered write fails when it is closed.
    _small_disk_spec(small_disk, "- [ ] 1. Fill the disk\n",
                     "print('<promise>TASK_DONE</promise>', flush=True)\n"
                     f"f = open({str(small_disk / 'fill')!r}, 'wb', buffering=0)\n"
                     "for size in (65536, 1024, 1):\n    try:\n        while True:\n"
                     "            f.write(b'x' * size)\n    except OSError:\n        pass\n")
    result = run_seqrun(cwd=small_disk)
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_line(result.stderr)
    assert line.startswith(f"ERROR: {small_disk / '.kiro' / 'specs' / '.seqrun' / 'logs'}/"), line
    assert line.endswith(".log: No space left on device (free some disk space, then run the same command "
                         "again to resume)"), line


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_a_workdir_that_is_not_a_folder_is_refused_before_any_agent(kind, make_spec, run_seqrun, project):
    tasks = b"- [ ] 1. One\n"
    make_spec(tasks)
    marker = _marker_project(project, "delay = 0.0")
    workdir = project / "elsewhere"
    if kind == "a file":
        workdir.write_text("not a folder")
    result = run_seqrun("--workdir", str(workdir))
    line = _refused_before_any_agent(result, project, marker, tasks)
    what = "does not exist" if kind == "missing" else "is not a directory"
    assert line == f"ERROR: --workdir {workdir}: {what}", line
    state = project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json"
    assert json.loads(state.read_text())["specs"]["feature"]["tasks"] == {}  # no task left "running"


def test_a_progress_file_that_cannot_be_appended_to_is_refused_before_any_agent(make_spec, run_seqrun, project):
    tasks = b"- [ ] 1. One\n"
    make_spec(tasks)
    marker = _marker_project(project, "delay = 0.0")
    progress = project / ".kiro" / "specs" / "SEQUENTIAL_PROGRESS.md"
    progress.write_text("# Progress\n")
    if not _mount(["--bind", str(progress), str(progress)]):
        pytest.skip("cannot bind-mount here")
    try:
        if not _mount(["-o", "remount,ro,bind", str(progress)]):
            pytest.skip("cannot remount read-only here")
        result = run_seqrun()
    finally:
        subprocess.run(["umount", "-l", str(progress)], capture_output=True)
    line = _refused_before_any_agent(result, project, marker, tasks)
    assert line == f"ERROR: cannot write progress file {progress}: Read-only file system", line
    assert progress.read_text() == "# Progress\n"


@pytest.mark.skipif(os.getuid() != 0, reason="claude refuses only root")
def test_claude_as_root_is_refused_before_any_agent_unless_the_machine_is_a_sandbox(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. One\n")
    not_a_sandbox = {"IS_SANDBOX": ""}
    result = run_seqrun("--backend", "claude", "--no-tmux", "--delay", "0", fakes=True, env=not_a_sandbox)
    assert result.returncode == 4, result.stdout + result.stderr
    assert _one_line(result.stderr) == (
        "ERROR: claude refuses --dangerously-skip-permissions when run as root: run seqrun as another user, "
        "or, on a throwaway container or VM, pass --is-sandbox (sets IS_SANDBOX=1 for claude)")
    assert (folder / "tasks.md").read_text() == "- [ ] 1. One\n"
    assert not (project / ".kiro" / "specs" / ".seqrun" / "logs").exists()  # no agent was started
    # Opting in, on the command line or in seqrun.toml, or with claude's own variable.
    for args, env, toml in ((["--is-sandbox"], not_a_sandbox, ""), ([], not_a_sandbox, "is_sandbox = true\n"),
                            ([], {"IS_SANDBOX": "1"}, "")):
        (project / "seqrun.toml").write_text(toml)
        result = run_seqrun("--backend", "claude", "--no-tmux", "--delay", "0", "--fresh", "--no-mark",
                            *args, fakes=True, env=env)
        assert result.returncode == 0, (args, toml, result.stdout + result.stderr)
