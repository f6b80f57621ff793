"""A spec is its path relative to the specs root, one-to-one everywhere.

Two task files with one file name (``backend/phase_1.md``,
``frontend/phase_1.md``), and two spec folders whose names sanitise to the
same string (``feat x``, ``feat_x``), are four specs: each has its own state
record, logs, lock, JUnit suite and tmux session. A record an earlier version
kept under the old name (``phase_1``) is adopted only when no other spec can
own it. A seed-written state file is adopted by exactly one spec, even when
two seqruns start at the same moment.

seqrun runs as a subprocess with the ``command`` backend; the agent writes
``<tasks file>:<task id>`` to ``calls.log`` (the tasks file as the prompt
names it), so the tests see which spec's task ran, whatever seqrun calls it.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import seqrun_env, use_command_agent, wait_for

SPECS = Path(".kiro") / "specs"
STATE = SPECS / "SEQUENTIAL_STATE.json"
TWO = "- [ ] 1. First\n- [ ] 2. Second\n"
THREE = "- [ ] 1. First\n- [ ] 2. Second\n- [ ] 3. Third\n"

AGENT = r'''
import os, re, sys
prompt = open(sys.argv[1], encoding="utf-8").read()
tasks_md = re.search(r"Do not mark tasks in (.*) yourself", prompt).group(1)
specs = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".kiro", "specs")
where = os.path.relpath(tasks_md, specs)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as f:
    f.write(f"{where}:{sys.argv[2]}\n")
print("agent of", where, "task", sys.argv[2])
print()
print("<promise>TASK_DONE</promise>")
'''


def configure(project: Path) -> None:
    use_command_agent(project, AGENT, "{prompt_file}", "{task_id}",
                      toml_top='backend = "command"\nno_tmux = true\ndelay = 0.0')


def write(project: Path, relative: str, text: str) -> Path:
    path = project / SPECS / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def load(project: Path) -> dict:
    return json.loads((project / STATE).read_text())


def log_of(project: Path, record: dict) -> str:
    return (project / record["log"]).read_text(errors="replace")


# -- 1. task files that share a file name -----------------------------------------------


def test_task_files_with_one_file_name_are_two_specs(run_seqrun, project):
    backend = write(project, "backend/phase_1.md", TWO)
    frontend = write(project, "frontend/phase_1.md", TWO)
    configure(project)
    first = run_seqrun(".kiro/specs/backend/phase_1.md")
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_seqrun(".kiro/specs/frontend/phase_1.md")
    # Before: the frontend's tasks were "done" (the backend's record), exit 0, no agent.
    assert second.returncode == 0, second.stdout + second.stderr
    assert calls(project) == ["backend/phase_1.md:1", "backend/phase_1.md:2",
                              "frontend/phase_1.md:1", "frontend/phase_1.md:2"]
    assert backend.read_text() == frontend.read_text() == "- [x] 1. First\n- [x] 2. Second\n"
    state = load(project)
    assert sorted(state["specs"]) == ["backend/phase_1.md", "frontend/phase_1.md"]
    assert state["spec"] == "frontend/phase_1.md"
    for name in state["specs"]:
        record = state["specs"][name]
        assert record["completed"] == ["1", "2"]
        # Each spec's log holds its own agent's output, in a folder of its own.
        assert f"agent of {name} task 1" in log_of(project, record["tasks"]["1"])
    logs = {load(project)["specs"][n]["tasks"]["1"]["log"] for n in state["specs"]}
    assert len(logs) == 2


def test_one_run_of_two_specs_with_one_file_name(run_seqrun, project):
    write(project, "backend/phase_1.md", TWO)
    write(project, "frontend/phase_1.md", TWO)
    configure(project)
    # Before: both took lock "phase_1" and the second was refused (exit 4).
    result = run_seqrun(".kiro/specs/backend/phase_1.md", ".kiro/specs/frontend/phase_1.md",
                        "--junitxml", "report.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(calls(project)) == ["backend/phase_1.md:1", "backend/phase_1.md:2",
                                      "frontend/phase_1.md:1", "frontend/phase_1.md:2"]
    suites = ET.parse(project / "report.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["backend/phase_1.md", "frontend/phase_1.md"]
    assert [{c.get("classname") for c in s.findall("testcase")} for s in suites] == [
        {"backend/phase_1.md"}, {"frontend/phase_1.md"}]
    assert sorted(load(project)["specs"]) == ["backend/phase_1.md", "frontend/phase_1.md"]
    progress = (project / SPECS / "SEQUENTIAL_PROGRESS.md").read_text()
    assert "- **Task**: backend/phase_1.md::1 First" in progress
    assert "- **Task**: frontend/phase_1.md::1 First" in progress


OLD_RECORD = {"completed": ["1"], "halted": False, "failed": [], "assignments": {},
              "tasks": {"1": {"status": "passed", "attempts": 1, "title": "First"}}}


def old_state(project: Path) -> None:
    """A file an earlier seqrun wrote for ``backend/phase_1.md``, then named ``phase_1``."""
    (project / STATE).write_text(json.dumps({"spec": "phase_1", "completed": ["1"], "version": 2,
                                             "specs": {"phase_1": OLD_RECORD}}))


def test_a_record_under_the_old_name_is_adopted_when_only_one_spec_can_own_it(run_seqrun, project):
    write(project, "backend/phase_1.md", TWO)
    old_state(project)
    configure(project)
    result = run_seqrun(".kiro/specs/backend/phase_1.md")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(project) == ["backend/phase_1.md:2"]  # 1 was done, says the old record
    specs = load(project)["specs"]
    assert list(specs) == ["backend/phase_1.md"]  # moved, not copied: adopted once
    assert specs["backend/phase_1.md"]["completed"] == ["1", "2"]
    assert specs["backend/phase_1.md"]["tasks"]["1"]["attempts"] == 1


def test_a_record_under_an_ambiguous_old_name_is_left_alone(run_seqrun, project):
    write(project, "backend/phase_1.md", TWO)
    write(project, "frontend/phase_1.md", TWO)  # "phase_1" may have been either
    old_state(project)
    configure(project)
    result = run_seqrun(".kiro/specs/backend/phase_1.md")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(project) == ["backend/phase_1.md:1", "backend/phase_1.md:2"]
    specs = load(project)["specs"]
    assert specs["phase_1"] == OLD_RECORD
    assert specs["backend/phase_1.md"]["completed"] == ["1", "2"]


def test_fresh_forgets_the_record_under_the_old_name_too(run_seqrun, project):
    write(project, "backend/phase_1.md", TWO)
    old_state(project)
    configure(project)
    result = run_seqrun(".kiro/specs/backend/phase_1.md", "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(project) == ["backend/phase_1.md:1", "backend/phase_1.md:2"]
    assert list(load(project)["specs"]) == ["backend/phase_1.md"]  # not adopted later either


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_task_files_with_one_file_name_get_two_tmux_sessions(run_seqrun, project, tmp_path):
    write(project, "backend/phase_1.md", "- [ ] 1. First\n")
    write(project, "frontend/phase_1.md", "- [ ] 1. First\n")
    configure(project)
    (project / "seqrun.toml").write_text((project / "seqrun.toml").read_text().replace("no_tmux = true\n", ""))
    sock = tmp_path / "tmux"
    sock.mkdir()
    env = {"TMUX_TMPDIR": str(sock)}
    try:
        for path in (".kiro/specs/backend/phase_1.md", ".kiro/specs/frontend/phase_1.md"):
            result = run_seqrun(path, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
        listed = subprocess.run(["tmux", "list-windows", "-a", "-F", "#{session_name} #{window_name}"],
                                env=seqrun_env(env), capture_output=True, text=True).stdout.splitlines()
    finally:
        subprocess.run(["tmux", "kill-server"], env=seqrun_env(env), capture_output=True)
    sessions = [line.split()[0] for line in listed]
    # Before: both ran in session "sequential-phase_1".
    assert len(listed) == 2 and len(set(sessions)) == 2, listed
    assert all(s.startswith("sequential-") and line.endswith(" task-1") for s, line in zip(sessions, listed))
    assert any("backend_phase_1" in s for s in sessions) and any("frontend_phase_1" in s for s in sessions)


# -- 2. names that sanitise to the same string ------------------------------------------------


def test_spec_names_that_sanitise_alike_keep_apart(run_seqrun, project):
    write(project, "feat x/tasks.md", TWO)
    write(project, "feat_x/tasks.md", TWO)
    configure(project)
    # Before: one lock for both (the second refused, exit 4), one log folder.
    result = run_seqrun(".kiro/specs/feat x", ".kiro/specs/feat_x")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(calls(project)) == ["feat x/tasks.md:1", "feat x/tasks.md:2",
                                      "feat_x/tasks.md:1", "feat_x/tasks.md:2"]
    specs = load(project)["specs"]
    assert sorted(specs) == ["feat x", "feat_x"]
    spaced, plain = specs["feat x"]["tasks"]["1"], specs["feat_x"]["tasks"]["1"]
    # Existing, already-safe names keep their folder; the other gets a hash.
    assert plain["log"] == ".kiro/specs/.seqrun/logs/feat_x/1/1.log"
    assert spaced["log"].startswith(".kiro/specs/.seqrun/logs/feat_x-") and spaced["log"].endswith("/1/1.log")
    assert "agent of feat x/tasks.md task 1" in log_of(project, spaced)
    assert "agent of feat_x/tasks.md task 1" in log_of(project, plain)
    locks = sorted(p.name for p in (project / SPECS / ".seqrun" / "locks").iterdir())
    assert len(locks) == 2 and "feat_x.lock" in locks


def test_a_spec_held_by_a_run_does_not_lock_its_look_alike(run_seqrun, project):
    write(project, "feat x/tasks.md", "- [ ] 1. First\n")
    write(project, "feat_x/tasks.md", "- [ ] 1. First\n")
    configure(project)
    # A run holds "feat x" (its lock taken by hand, as a live seqrun holds it)...
    first = run_seqrun(".kiro/specs/feat x")
    assert first.returncode == 0, first.stdout + first.stderr
    [lock] = [p for p in (project / SPECS / ".seqrun" / "locks").iterdir()]
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # ... "feat_x" still runs; "feat x" itself is refused.
        other = run_seqrun(".kiro/specs/feat_x")
        same = run_seqrun(".kiro/specs/feat x")
    finally:
        os.close(fd)
    assert other.returncode == 0, other.stdout + other.stderr
    assert same.returncode == 4 and "being run by another seqrun" in same.stderr
    assert calls(project) == ["feat x/tasks.md:1", "feat_x/tasks.md:1"]


# -- 6. a seed-format state file, two seqruns at once -----------------------------------------------

SEED = {"completed": ["1", "2"], "halted": False, "started_at": "2025-06-01T10:00:00",
        "assignments": {}, "halted_at": None, "halted_task": None, "completed_at": None}


def _holds_fd_to(pid: int, folder: Path) -> bool:
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return str(folder) in links


def test_a_seed_file_is_adopted_once_by_two_seqruns_started_together(project):
    write(project, "alpha/tasks.md", THREE)
    write(project, "beta/tasks.md", THREE)
    configure(project)
    (project / STATE).write_text(json.dumps(SEED))
    specs = project / SPECS
    # Hold the state file's lock (an flock of its folder) while both start, so
    # both read the seed's file before either can adopt it: the moment the race needs.
    fd = os.open(specs, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    runs = [subprocess.Popen([sys.executable, "-m", "seqrun", f".kiro/specs/{name}"], cwd=project,
                             env=seqrun_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("alpha", "beta")]
    try:
        # Both have read the file and wait for the lock, with the folder open.
        assert wait_for(lambda: all(_holds_fd_to(p.pid, specs.resolve()) for p in runs), timeout=60)
    finally:
        os.close(fd)
    outputs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    ran = calls(project)
    by_spec = {name: [c.split(":")[1] for c in ran if c.startswith(f"{name}/")] for name in ("alpha", "beta")}
    # Exactly one adopted the seed's record (its 1 and 2 were done); the other ran everything.
    assert sorted(by_spec.values()) == [["1", "2", "3"], ["3"]], ran
    state = load(project)
    adopter = state["adopted_seed_state"]
    assert by_spec[adopter] == ["3"]
    assert state["specs"]["alpha"]["completed"] == state["specs"]["beta"]["completed"] == ["1", "2", "3"]
    other = "beta" if adopter == "alpha" else "alpha"
    assert state["specs"][other]["tasks"]["1"]["attempts"] == 1
