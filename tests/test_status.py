"""``seqrun --status``: the morning view of the state file, and ``--co`` with
each task's last outcome. Read-only, and right while a run goes on."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO, gone, seqrun_env, use_command_agent, wait_for

SCHEMA = REPO / "seqrun" / "reports" / "status.schema.json"
SPECS = Path(".kiro") / "specs"
LOGS = ".kiro/specs/.seqrun/logs/feature"
TASKS = "- [ ] 1. First task\n- [ ] 2. Second task\n- [ ] 3. Third task\n"
#: The fake claude's recorded usage per call: 2,900 input and 54 output tokens, $0.01585.
ONE_CALL = (2954, 0.01585)


def finished_run(project: Path, make_spec, run_seqrun) -> None:
    """Task 1 passes; task 2 ends without a marker twice (one rerun); -x stops
    the run before task 3; task 4 is added to tasks.md afterwards."""
    folder = make_spec(TASKS)
    script = project / "fake-script.json"
    script.write_text(json.dumps({"1": "done", "2": "echo_not_done"}), encoding="utf-8")
    result = run_seqrun("--backend", "claude", "--no-tmux", "--delay", "0", "--reruns", "1", "-x",
                        env={"SEQRUN_FAKE_SCRIPT": str(script)}, fakes=True)
    assert result.returncode == 1, result.stdout + result.stderr
    with open(folder / "tasks.md", "a", encoding="utf-8") as f:
        f.write("- [ ] 4. Added after the run\n")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and mtime; folders by mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(folder))] = (path.read_bytes() if path.is_file() else b"", info.st_mtime_ns)
    return found


def runtime_locks(project: Path, runtime: Path) -> list[Path]:
    """Where a run of the spec keeps its runtime locks (see seqrun/lock.py)."""
    real = os.path.realpath(project / SPECS / "feature" / "tasks.md")
    name = f"spec-{hashlib.sha256(real.encode()).hexdigest()[:32]}.lock"
    return [runtime / "seqrun" / "locks" / name, Path(f"/tmp/seqrun-{os.getuid()}") / "locks" / name]


def validated(stdout: str) -> dict:
    document = json.loads(stdout)
    schema = json.loads(SCHEMA.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)
    return document


# -- after a run -----------------------------------------------------------------------------------


def test_status_lists_every_task_with_its_outcome_attempts_and_log(make_spec, project, run_seqrun, tmp_path):
    finished_run(project, make_spec, run_seqrun)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    before = snapshot(project)

    result = run_seqrun("--status", env={"XDG_RUNTIME_DIR": str(runtime)})

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "== .kiro/specs/feature (spec feature) =="
    assert lines[1] == "not running; state: .kiro/specs/SEQUENTIAL_STATE.json"
    assert re.fullmatch(r"last run: started \S+ \S+, ended \S+ \S+", lines[2])
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[3:]]
    assert rows == [
        ["ID", "OUTCOME", "ATTEMPTS", "DURATION", "TOKENS", "COST", "TITLE"],
        ["1", "passed", "1 attempt", rows[1][3], "2,954", "$0.02", "First task"],
        [f"log: {LOGS}/1/1.log"],
        ["2", "failed [no-marker]", "2 attempts", rows[3][3], "5,908", "$0.03", "Second task"],
        ["reason: no TASK_DONE marker in the final message"],
        [f"log: {LOGS}/2/2.log"],
        ["3", "skipped [not-reached]", "0 attempts", "-", "-", "-", "Third task"],
        ["reason: not reached: stopping after 1 failure(s)"],
        ["4", "not run", "-", "-", "-", "-", "Added after the run"],
        ["feature: 1 failed, 1 passed, 1 skipped, 1 not run; 8,862 tokens, $0.05"],
    ]
    assert re.fullmatch(r"\d+\.\ds", rows[1][3]) and re.fullmatch(r"\d+\.\ds", rows[3][3])
    # The logs it names are the attempts' logs.
    assert b"TASK_DONE</promise>" in (project / LOGS / "1" / "1.log").read_bytes()
    assert (project / LOGS / "2" / "2.log").is_file()
    # Nothing written, no lock file created.
    assert snapshot(project) == before
    assert not any(path.exists() for path in runtime_locks(project, runtime))


def test_status_json_matches_its_schema_and_the_state(make_spec, project, run_seqrun):
    finished_run(project, make_spec, run_seqrun)

    result = run_seqrun("--status", "--json")

    assert result.returncode == 0, result.stderr
    document = validated(result.stdout)
    assert document["schema"] == "seqrun-status/1"
    (spec,) = document["specs"]
    assert (spec["name"], spec["nodeid"], spec["tasks_file"], spec["state_file"], spec["recorded"]) == (
        "feature", ".kiro/specs/feature", ".kiro/specs/feature/tasks.md", ".kiro/specs/SEQUENTIAL_STATE.json",
        True)
    assert spec["run"] == {"running": False, "pid": None, "detached": False, "pid_file": None,
                           "task": None, "attempt": None, "since": None}
    assert spec["counts"] == {"failed": 1, "passed": 1, "skipped": 1, "not_run": 1}
    assert spec["tokens"] == 3 * ONE_CALL[0] and spec["cost_usd"] == pytest.approx(3 * ONE_CALL[1])
    assert spec["started_at"] <= spec["ended_at"]
    assert spec["completed_at"] is None and spec["halted_at"] is None
    tasks = {task["id"]: task for task in spec["tasks"]}
    assert [task["id"] for task in spec["tasks"]] == ["1", "2", "3", "4"]
    picked = ("outcome", "kind", "attempts", "reason", "tokens", "log", "checkbox")
    assert {k: tasks["1"][k] for k in picked} == {
        "outcome": "passed", "kind": "passed", "attempts": 1, "reason": None, "tokens": ONE_CALL[0],
        "log": f"{LOGS}/1/1.log", "checkbox": "done"}
    assert {k: tasks["2"][k] for k in picked} == {
        "outcome": "failed", "kind": "no-marker", "attempts": 2,
        "reason": "no TASK_DONE marker in the final message", "tokens": 2 * ONE_CALL[0],
        "log": f"{LOGS}/2/2.log", "checkbox": "pending"}
    assert tasks["2"]["cost_usd"] == pytest.approx(2 * ONE_CALL[1])
    assert {k: tasks["3"][k] for k in picked} == {
        "outcome": "skipped", "kind": "not-reached", "attempts": 0,
        "reason": "not reached: stopping after 1 failure(s)", "tokens": None, "log": None, "checkbox": "pending"}
    assert tasks["4"] == {"id": "4", "nodeid": ".kiro/specs/feature::4", "title": "Added after the run",
                          "checkbox": "pending", "optional": False, "outcome": "not_run", "kind": None,
                          "attempts": 0, "reason": None, "duration": None, "tokens": None, "cost_usd": None,
                          "log": None, "updated_at": None}


def test_collect_only_shows_the_last_outcomes_and_quiet_stays_node_ids(make_spec, project, run_seqrun):
    finished_run(project, make_spec, run_seqrun)

    tree = run_seqrun("--co")
    quiet = run_seqrun("--co", "-q")

    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines()[:5] == [
        "<Spec feature (.kiro/specs/feature)>",
        "  <Task 1 [done] First task> [passed, 1 attempt]",
        "  <Task 2 [pending] Second task> [failed: no-marker, 2 attempts]",
        "  <Task 3 [pending] Third task> [skipped: not-reached]",
        "  <Task 4 [pending] Added after the run> [not run]",
    ]
    assert quiet.returncode == 0
    assert quiet.stdout.splitlines()[:5] == [f".kiro/specs/feature::{n}" for n in "1234"] + [""]


# -- during a run ------------------------------------------------------------------------------------

WAITING_AGENT = """\
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
(here / "agent-started").write_text(str(os.getpid()))
while not (here / "release").exists():
    time.sleep(0.05)
print("done\\n\\n<promise>TASK_DONE</promise>")
"""


def test_status_during_a_run_names_its_pid_and_task_and_changes_nothing(make_spec, project, tmp_path):
    make_spec("- [ ] 1. Wait for the release\n- [ ] 2. Then this\n")
    use_command_agent(project, WAITING_AGENT, str(tmp_path))
    state_file = project / SPECS / "SEQUENTIAL_STATE.json"

    def agent_recorded() -> bool:
        # The run records the agent's pid once it started: the last write until it ends.
        try:
            record = json.loads(state_file.read_text("utf-8"))["specs"]["feature"]["tasks"]["1"]
        except (OSError, ValueError, KeyError):
            return False
        return (record.get("processes") or {}).get("pid", 0) > 0

    run = subprocess.Popen([sys.executable, "-m", "seqrun", "--backend", "command", "--no-tmux", "--delay", "0"],
                           cwd=project, env=seqrun_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert wait_for(lambda: (tmp_path / "agent-started").exists() and agent_recorded(), timeout=60)
        before = snapshot(project)
        status = subprocess.run([sys.executable, "-m", "seqrun", "--status"], cwd=project, env=seqrun_env(),
                                capture_output=True, text=True, timeout=60)
        as_json = subprocess.run([sys.executable, "-m", "seqrun", "--status", "--json"], cwd=project,
                                 env=seqrun_env(), capture_output=True, text=True, timeout=60)
        after = snapshot(project)
        (tmp_path / "release").write_text("")
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()

    assert status.returncode == 0, status.stderr
    assert re.search(rf"^running now \(pid {run.pid}, task 1 attempt 1 since \d\d:\d\d\); ", status.stdout, re.M)
    assert re.search(r"^  1 +running +1 attempt .* Wait for the release$", status.stdout, re.M)
    assert re.search(r"^  2 +not run .* Then this$", status.stdout, re.M)
    assert "last run: started " in status.stdout and ", still running" in status.stdout
    spec = validated(as_json.stdout)["specs"][0]
    assert spec["run"]["running"] is True and spec["run"]["pid"] == run.pid
    assert (spec["run"]["task"], spec["run"]["attempt"], spec["run"]["detached"]) == ("1", 1, False)
    assert spec["ended_at"] is None
    assert [t["outcome"] for t in spec["tasks"]] == ["running", "not_run"]
    assert after == before  # not a byte, not an mtime
    assert run.returncode == 0, output  # the run was not disturbed
    assert "2 passed" in output


@pytest.mark.parametrize("who", ["dead", "not-seqrun"])
def test_a_pid_file_without_a_live_seqrun_is_not_running(make_spec, project, run_seqrun, who):
    make_spec(TASKS)
    other = subprocess.Popen(["sleep", "60"] if who == "not-seqrun" else ["true"])
    if who == "dead":
        other.wait()
        assert wait_for(lambda: gone(other.pid))
    pid_file = project / SPECS / ".seqrun" / "detach" / "feature.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{other.pid}\n")
    before = snapshot(project)
    try:
        plain = run_seqrun("--status")
        as_json = run_seqrun("--status", "--json")
    finally:
        other.kill()
        other.wait()

    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[1] == (
        "not running (stale pid file .kiro/specs/.seqrun/detach/feature.pid); "
        "state: .kiro/specs/SEQUENTIAL_STATE.json (no record of this spec: never run)")
    assert "last run:" not in plain.stdout
    spec = validated(as_json.stdout)["specs"][0]
    assert spec["run"] == {"running": False, "pid": None, "detached": False,
                           "pid_file": ".kiro/specs/.seqrun/detach/feature.pid",
                           "task": None, "attempt": None, "since": None}
    assert spec["recorded"] is False and spec["counts"] == {"not_run": 3}
    assert snapshot(project) == before  # no state file, no lock folder, nothing


def test_a_running_record_left_by_a_killed_run_shows_as_interrupted(make_spec, project, run_seqrun):
    make_spec(TASKS)
    state = {"version": 2, "specs": {"feature": {
        "started_at": "2026-01-30T23:00:00Z", "completed": ["1"],
        "tasks": {
            "1": {"status": "passed", "kind": "passed", "attempts": 1, "updated_at": "2026-01-30T23:10:00Z"},
            "2": {"status": "running", "attempts": 3, "updated_at": "2026-01-31T01:12:00Z",
                  "log": f"{LOGS}/2/3.log", "processes": {"boot_id": "x", "token": "t", "pid": 99999999}},
        }}}}
    state_file = project / SPECS / "SEQUENTIAL_STATE.json"
    state_file.write_text(json.dumps(state), encoding="utf-8")
    before = state_file.read_bytes()

    plain = run_seqrun("--status")
    spec = validated(run_seqrun("--status", "--json").stdout)["specs"][0]

    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[1].startswith("not running; ")
    assert re.search(r"^  2 +interrupted +3 attempts .* Second task$", plain.stdout, re.M)
    assert "reason: interrupted: seqrun stopped while this task ran" in plain.stdout
    task = spec["tasks"][1]
    assert (task["outcome"], task["kind"], task["attempts"], task["log"]) == (
        "interrupted", "interrupted", 3, f"{LOGS}/2/3.log")
    assert spec["started_at"] == "2026-01-30T23:00:00Z" and spec["ended_at"] == "2026-01-31T01:12:00Z"
    assert spec["counts"] == {"interrupted": 1, "passed": 1, "not_run": 1}
    assert state_file.read_bytes() == before


# -- exit status -----------------------------------------------------------------------------------------


def test_status_exit_codes_follow_collect_only(make_spec, project, run_seqrun):
    # No tasks file: a usage error, as for a run.
    assert run_seqrun("--status", "nowhere").returncode == 4
    folder = make_spec(TASKS)
    # Nothing selected: 5, and the JSON is still printed.
    result = run_seqrun("--status", "--json", "-k", "nosuchword")
    assert result.returncode == 5
    assert validated(result.stdout)["specs"][0]["tasks"] == []
    assert run_seqrun("--status", "-k", "nosuchword").stdout == "no tasks collected\n"
    # PATH::ID narrows the view to that task.
    one = validated(run_seqrun("--status", "--json", f"{folder.relative_to(project)}::2").stdout)
    assert [t["id"] for t in one["specs"][0]["tasks"]] == ["2"]
    # A corrupt state file: exit 4, one line naming it, and the file left as it is.
    state_file = project / SPECS / "SEQUENTIAL_STATE.json"
    state_file.write_bytes(b"{not json")
    result = run_seqrun("--status")
    assert result.returncode == 4
    assert result.stderr.startswith(f"ERROR: state file {state_file} is corrupt")
    assert state_file.read_bytes() == b"{not json"
    # --json alone is a mistake, not a run.
    assert run_seqrun("--json").returncode == 4


def test_status_of_a_detached_run_names_the_background_pid(make_spec, project, run_seqrun, tmp_path):
    make_spec("- [ ] 1. Wait for the release\n")
    use_command_agent(project, WAITING_AGENT, str(tmp_path))
    pid_file = project / SPECS / ".seqrun" / "detach" / "feature.pid"

    started = run_seqrun("--detach", "--backend", "command", "--no-tmux", "--delay", "0")
    assert started.returncode == 0, started.stderr
    background = int(started.stdout.split("background as pid ")[1].split(";")[0])
    try:
        assert wait_for(lambda: (tmp_path / "agent-started").exists(), timeout=60)
        plain = run_seqrun("--status")
        spec = validated(run_seqrun("--status", "--json").stdout)["specs"][0]
    finally:
        (tmp_path / "release").write_text("")
    assert wait_for(lambda: gone(background), timeout=60)
    assert not pid_file.exists()  # the run tidied up

    assert re.search(rf"^running now \(pid {background}, detached, task 1 attempt 1 since \d\d:\d\d\); ",
                     plain.stdout, re.M)
    assert spec["run"] == {"running": True, "pid": background, "detached": True,
                           "pid_file": ".kiro/specs/.seqrun/detach/feature.pid", "task": "1", "attempt": 1,
                           "since": spec["run"]["since"]}
    after = run_seqrun("--status")
    assert after.stdout.splitlines()[1].startswith("not running; ")
    assert re.search(r"^  1 +passed +1 attempt ", after.stdout, re.M)
