"""What a seqrun killed at the wrong moment leaves behind, and how the next
run of the spec puts it right: a progress entry it never wrote, a ``[-]``
mark it could not take back."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from conftest import read_state_file, seqrun_env, use_command_agent, wait_for

SPECS = Path(".kiro") / "specs"
PROGRESS = SPECS / "SEQUENTIAL_PROGRESS.md"
STATE = SPECS / "SEQUENTIAL_STATE.json"

#: ``.kiro/specs/conftest.py``: when DIE_AT_PROGRESS is set, the process dies
#: (as ``kill -9`` would: no cleanup) the moment it opens the progress file to
#: append an entry — after the attempt's record was saved in the state file.
DIE_AT_PROGRESS = r'''
import os

_open = os.open


def _open_or_die(path, flags, *args, **kwargs):
    if (os.environ.get("DIE_AT_PROGRESS") and os.path.basename(os.fspath(path)) == "SEQUENTIAL_PROGRESS.md"
            and flags & os.O_APPEND):
        os._exit(137)
    return _open(path, flags, *args, **kwargs)


os.open = _open_or_die
'''


def _seqrun(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # "--delay=0": the early parse that finds conftest.py takes a separate value for a path.
    return subprocess.run([sys.executable, "-m", "seqrun", "--no-tmux", "--delay=0", "--backend=command", *args],
                          cwd=project, env=seqrun_env(env), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def _entries(project: Path) -> list[str]:
    return re.split(r"^## Iteration \d+\n", (project / PROGRESS).read_text("utf-8"), flags=re.M)[1:]


def _history(project: Path, task: str) -> list[dict]:
    return read_state_file(project / STATE)["specs"]["feature"]["tasks"][task]["history"]


def test_a_progress_entry_lost_by_a_kill_is_written_by_the_next_run(make_spec, project):
    make_spec("- [ ] 1. First task\n- [ ] 2. Second task\n")
    (project / SPECS / "conftest.py").write_text(DIE_AT_PROGRESS)
    use_command_agent(project, "print('not done yet')\n")  # no marker: a failed attempt
    killed = _seqrun(project, "--reruns=0", DIE_AT_PROGRESS="1")
    assert killed.returncode == 137, killed.stdout + killed.stderr
    # The state file has the attempt; the progress file does not.
    assert [(h["attempt"], h["outcome"]) for h in _history(project, "1")] == [(1, "failed")]
    assert not (project / PROGRESS).exists() or _entries(project) == []

    use_command_agent(project, "print('<promise>TASK_DONE</promise>')\n")
    result = _seqrun(project)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = _entries(project)
    first_log = ".kiro/specs/.seqrun/logs/feature/1/1.log"
    lost = [e for e in entries if f"- **Log**: {first_log}\n" in e]
    assert len(lost) == 1, entries  # written once, and only once
    assert lost[0].startswith("\n- **Task**: feature::1 First task\n- **Status**: failed (no-marker)\n")
    assert "- **Recovered**: " in lost[0]
    assert entries[0] == lost[0]  # at the start of the run, before its own entries
    assert [e.split("- **Log**: ")[1].split("\n")[0] for e in entries[1:]] == [
        ".kiro/specs/.seqrun/logs/feature/1/2.log", ".kiro/specs/.seqrun/logs/feature/2/1.log"]
    assert not any("Recovered" in e for e in entries[1:])

    # A third run has nothing to recover: the file is left as it was.
    before = (project / PROGRESS).read_bytes()
    assert _seqrun(project).returncode == 0
    assert (project / PROGRESS).read_bytes() == before


# -- the [-] mark -------------------------------------------------------------------------------------------

TASKS = SPECS / "feature" / "tasks.md"
THREE = "- [ ] 1. First task\n- [ ] 2. Second task\n- [ ] 3. Third task\n"

#: Task 2's agent adds two tasks above its own line (as an agent that finds
#: missing prerequisites does), says it is ready, and works on until killed.
#: Every other task passes.
INSERTS_ABOVE_THEN_WORKS = r'''
import os, sys, time
task = sys.argv[-1]
tasks_md = os.path.join(".kiro", "specs", "feature", "tasks.md")
if task == "2":
    text = open(tasks_md).read()
    text = text.replace("- [-] 2. Second", "- [ ] 1.5 Prerequisite A\n- [ ] 1.6 Prerequisite B\n- [-] 2. Second")
    open(tasks_md, "w").write(text)
    open("agent.pid", "w").write(str(os.getpid()))
    open("ready", "w").close()
    time.sleep(60)
print("<promise>TASK_DONE</promise>")
'''


def test_a_killed_runs_mark_is_taken_back_by_the_next_run_after_the_line_moved(make_spec, project):
    make_spec(THREE)
    use_command_agent(project, INSERTS_ABOVE_THEN_WORKS, "{prompt_file}", "{task_id}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrun", "--no-tmux", "--delay=0", "--backend=command"],
        cwd=project, env=seqrun_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def running_2() -> bool:
            try:
                state = json.loads((project / STATE).read_text("utf-8"))
            except (OSError, ValueError):
                return False
            return state["specs"]["feature"]["tasks"].get("2", {}).get("status") == "running"

        assert wait_for(lambda: (project / "ready").exists() and running_2(), timeout=30)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pid = int((project / "agent.pid").read_text()) if (project / "agent.pid").exists() else None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert (project / TASKS).read_text() == (
        "- [x] 1. First task\n- [ ] 1.5 Prerequisite A\n- [ ] 1.6 Prerequisite B\n- [-] 2. Second task\n"
        "- [ ] 3. Third task\n")

    # The next run of the spec (here of task 3 only) takes seqrun's [-] back.
    result = _seqrun(project, ".kiro/specs/feature::3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_text() == (
        "- [x] 1. First task\n- [ ] 1.5 Prerequisite A\n- [ ] 1.6 Prerequisite B\n- [ ] 2. Second task\n"
        "- [x] 3. Third task\n")


def test_a_mark_the_agent_reindented_is_resolved_where_the_line_is(make_spec, project):
    # The agent of 1.1 re-indents the file's sub-tasks from two spaces to four:
    # its own line changes, only in its indentation.
    make_spec("- [ ] 1. Parent\n  - [ ] 1.1 Reindenting child\n  - [ ] 1.2 Failing child\n")
    use_command_agent(project, r'''
import os, sys
task = sys.argv[-1]
tasks_md = os.path.join(".kiro", "specs", "feature", "tasks.md")
if task == "1.1":
    text = open(tasks_md).read()
    open(tasks_md, "w").write(text.replace("\n  - ", "\n    - "))
    print("<promise>TASK_DONE</promise>")
else:
    print("not done")
''', "{prompt_file}", "{task_id}")
    result = _seqrun(project, "--reruns=0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (project / TASKS).read_text() == (
        "- [ ] 1. Parent\n    - [x] 1.1 Reindenting child\n    - [ ] 1.2 Failing child\n")
    assert "task 1.1 not found" not in result.stderr
