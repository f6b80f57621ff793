"""The attempt history's journal (``.seqrun/history/<spec>.jsonl``) and the
state file together: the file holds each task's summary and no history; a
kill at any write of an attempt leaves a pair the next run reads without
losing or counting twice an attempt; a state file of the previous format
(history inside it) is moved to the journal; two specs run at once keep
their own histories; ``--fresh`` moves the history aside.

seqrun runs as a subprocess with the ``command`` backend and a scripted
agent whose answer per task comes from ``plan.json``: ``done``, ``fail``, or
``fail-once`` (fails its first attempt, passes the next).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import read_state_file, seqrun_env, write_points

SPECS = Path(".kiro") / "specs"
STATE = SPECS / "SEQUENTIAL_STATE.json"
PROGRESS = SPECS / "SEQUENTIAL_PROGRESS.md"
HISTORY = SPECS / ".seqrun" / "history"

AGENT = r'''
import json, os, sys
prompt_file, task = sys.argv[1], sys.argv[2]
spec = os.path.basename(os.path.dirname(os.path.dirname(prompt_file)))
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.log"), "a") as f:
    f.write(f"{spec}:{task}\n")
plan = json.load(open(os.path.join(here, "plan.json")))
what = plan.get(f"{spec}:{task}", plan.get(task, "done"))
if what == "fail-once":
    mark = os.path.join(here, f"failed-{spec}-{task}")
    what = "done" if os.path.exists(mark) else "fail"
    open(mark, "a").close()
print("working on", task)
print()
print("<promise>TASK_DONE</promise>" if what == "done" else "I could not finish.")
'''

#: A plugin (``.kiro/specs/conftest.py``) that ends seqrun the way ``kill -9``
#: would, just before or just after its N-th write of the history journal,
#: the progress file (one ``os.write`` each) or the state file (a rename).
KILL_AT_WRITE = r'''
import os
''' + write_points("KILL") + r'''
_write, _replace = os.write, os.replace


def _name(fd):
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return ""


def write(fd, data):
    name = _name(fd)
    if not (name.endswith(".jsonl") or name == "SEQUENTIAL_PROGRESS.md"):
        return _write(fd, data)
    _point(name)
    written = _write(fd, data)
    _after()
    return written


def replace(src, dst, *args, **kwargs):
    name = os.path.basename(dst)
    if name != "SEQUENTIAL_STATE.json":
        return _replace(src, dst, *args, **kwargs)
    _point(name)
    _replace(src, dst, *args, **kwargs)
    _after()


os.write = write
os.replace = replace
'''


def configure(project: Path, plan: dict[str, str] | None = None, *, kill_plugin: bool = False) -> None:
    (project / "agent.py").write_text(textwrap.dedent(AGENT))
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, '
        f'{json.dumps(str(project / "agent.py"))}, "{{prompt_file}}", "{{task_id}}"]\n')
    (project / "plan.json").write_text(json.dumps(plan or {}))
    if kill_plugin:
        (project / SPECS / "conftest.py").write_text(KILL_AT_WRITE)


def argv(*args: str) -> list[str]:
    # "--delay=0": the early parse that finds conftest.py files takes a
    # separate option value for a spec path.
    return [sys.executable, "-m", "seqrun", "--no-tmux", "--delay=0", "--backend=command", "-q", *args]


def seqrun(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(*args), cwd=project, env=seqrun_env(env), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def raw(project: Path) -> dict[str, Any]:
    return json.loads((project / STATE).read_text(encoding="utf-8"))


def history(project: Path, task: str, spec: str = "feature") -> list[dict[str, Any]]:
    """A task's history as every reader gets it."""
    return read_state_file(project / STATE)["specs"][spec]["tasks"][task].get("history", [])


def journal_lines(project: Path, spec: str = "feature") -> list[dict[str, Any]]:
    path = project / HISTORY / f"{spec}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def progress_logs(project: Path) -> list[str]:
    """The log each progress entry names, in order."""
    text = (project / PROGRESS).read_text(encoding="utf-8") if (project / PROGRESS).exists() else ""
    return re.findall(r"^- \*\*Log\*\*: (.*)$", text, re.M)


def agent_calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().split() if log.exists() else []


# -- the pair on disk ----------------------------------------------------------------------------------


def test_the_state_file_keeps_summaries_and_the_journal_one_line_per_attempt(make_spec, project):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project, {"1": "fail-once"})
    result = seqrun(project)
    assert result.returncode == 0, result.stdout + result.stderr
    record = raw(project)["specs"]["feature"]
    journal = project / HISTORY / "feature.jsonl"
    assert record["journal"] == {"file": ".seqrun/history/feature.jsonl", "size": journal.stat().st_size}
    for task_id, entry in record["tasks"].items():
        # A summary: the same keys whatever the number of attempts, no history.
        assert set(entry) == {"status", "kind", "title", "attempts", "duration", "last_error", "backend", "log",
                              "rate_limit_waits", "updated_at", "history_at"}, task_id
        offset, length = entry["history_at"]
        newest = json.loads(journal.read_bytes()[offset:offset + length])
        assert newest["tasks"] == [task_id] and newest["attempt"] == entry["attempts"]
    lines = journal_lines(project)
    assert [(line["tasks"], line["attempt"], line["outcome"]) for line in lines] == [
        (["1"], 1, "failed"), (["1"], 2, "passed"), (["2"], 1, "passed")]
    # The failed attempt's line keeps what the next attempt was told; readers
    # see it on the newest record only.
    assert lines[0]["final_message"] == "I could not finish."
    assert [("final_message" in h) for h in history(project, "1")] == [False, False]
    assert progress_logs(project) == [line["log"] for line in lines]


# -- kill -9 at each write of an attempt ------------------------------------------------------------------


def _write_points(root: Path) -> list[str]:
    """The journal, progress and state writes of one undisturbed run, in order."""
    (root / SPECS / "feature").mkdir(parents=True)
    (root / SPECS / "feature" / "tasks.md").write_text("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(root, {"1": "fail-once"}, kill_plugin=True)
    result = seqrun(root, env={"KILL_WRITES": str(root / "writes.log")})
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split()[1] for line in (root / "writes.log").read_text().splitlines()]


def _kill_then_resume(root: Path, mode: str, at: int) -> dict[str, Any]:
    (root / SPECS / "feature").mkdir(parents=True)
    (root / SPECS / "feature" / "tasks.md").write_text("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(root, {"1": "fail-once"}, kill_plugin=True)
    first = seqrun(root, env={"KILL_AT": str(at), "KILL_MODE": mode})
    # What the killed run left must read as a valid pair.
    after_kill = read_state_file(root / STATE) if (root / STATE).exists() else None
    second = seqrun(root)
    return {"project": root, "first": first, "second": second, "after_kill": after_kill}


@pytest.mark.parametrize("mode", ["before", "after"])
def test_a_kill_at_any_write_of_an_attempt_neither_loses_nor_doubles_it(mode, tmp_path):
    points = _write_points(tmp_path / "count")
    # Per attempt: its journal line, then its progress entry, then the state.
    assert [p for p in points if p != "SEQUENTIAL_STATE.json"] == ["feature.jsonl", "SEQUENTIAL_PROGRESS.md"] * 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(lambda at: _kill_then_resume(tmp_path / f"{mode}-{at}", mode, at),
                                 range(1, len(points) + 1)))
    for at, outcome in enumerate(outcomes, start=1):
        where = f"kill {mode} write {at} ({points[at - 1]})"
        project, first, second = outcome["project"], outcome["first"], outcome["second"]
        assert first.returncode == 137, (where, first.stdout + first.stderr)
        assert second.returncode == 0, (where, second.stdout + second.stderr)
        state = read_state_file(project / STATE)["specs"]["feature"]
        assert state["completed"] == ["1", "2"], where
        calls = agent_calls(project)
        for task_id in ("1", "2"):
            entry = state["tasks"][task_id]
            numbers = [h["attempt"] for h in entry["history"]]
            # Each attempt once, in order, and counted. (A number may be
            # skipped: an attempt killed before its record left its prompt
            # file, and a log or prompt is never written twice.)
            assert numbers == sorted(set(numbers)), (where, task_id, entry["history"])
            assert entry["attempts"] == numbers[-1], (where, task_id)
            started = calls.count(f"feature:{task_id}")
            # Every agent start is an attempt; one more only when the kill came
            # between the running record and the agent's start.
            assert started <= len(numbers) <= started + 1, (where, task_id, started, numbers)
            assert entry["history"][-1]["outcome"] == "passed", where
        # Every attempt with a log has exactly one progress entry.
        logs = [h["log"] for t in ("1", "2") for h in state["tasks"][t]["history"] if h.get("log")]
        assert sorted(progress_logs(project)) == sorted(logs), where
        assert len(journal_lines(project)) == sum(len(state["tasks"][t]["history"]) for t in ("1", "2")), where


def test_an_attempt_the_state_lost_to_a_power_cut_is_taken_from_the_journal(make_spec, project, tmp_path):
    at = _write_points(tmp_path / "count").index("feature.jsonl") + 1  # attempt 1's line
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project, {"1": "fail-once"}, kill_plugin=True)
    # Killed just after attempt 1's line (fsync'd); then, as a power cut does
    # to a write that was not fsync'd, the state forgets the task was running.
    first = seqrun(project, env={"KILL_AT": str(at), "KILL_MODE": "after"})
    assert first.returncode == 137, first.stdout + first.stderr
    data = raw(project)
    assert data["specs"]["feature"]["tasks"]["1"]["status"] == "running"
    del data["specs"]["feature"]["tasks"]["1"]
    (project / STATE).write_text(json.dumps(data))
    result = seqrun(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(h["attempt"], h["outcome"]) for h in history(project, "1")] == [(1, "failed"), (2, "passed")]
    # The second attempt was told how the first one ended, and the first has its progress entry.
    prompt = (project / SPECS / ".seqrun" / "logs" / "feature" / "1" / "2.prompt.md").read_text()
    assert "Attempt 1 of this task did not pass" in prompt and "I could not finish." in prompt
    assert progress_logs(project) == [h["log"] for t in ("1", "2") for h in history(project, t)]


def test_a_task_left_running_and_not_run_again_is_saved_as_interrupted(make_spec, project, tmp_path):
    at = _write_points(tmp_path / "count").index("feature.jsonl") + 1  # attempt 1's line
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project, {"1": "fail-once"}, kill_plugin=True)
    assert seqrun(project, env={"KILL_AT": str(at), "KILL_MODE": "before"}).returncode == 137
    assert raw(project)["specs"]["feature"]["tasks"]["1"]["status"] == "running"
    result = seqrun(project, "-k", "2")  # task 1 is not selected: only the start of the run records it
    assert result.returncode == 0, result.stdout + result.stderr
    entry = raw(project)["specs"]["feature"]["tasks"]["1"]
    assert entry["status"] == "interrupted" and "processes" not in entry, entry
    assert [(h["attempt"], h["outcome"]) for h in history(project, "1")] == [(1, "interrupted")]


# -- the previous format --------------------------------------------------------------------------------


def _old_record(n: int, outcome: str, kind: str, log: str, **extra: Any) -> dict[str, Any]:
    return {"attempt": n, "run_id": "20260101T000000Z-abcdef", "started_at": f"2026-01-01T00:0{n}:00Z",
            "duration": 1.5, "outcome": outcome, "kind": kind, "reason": "no TASK_DONE marker in the final message"
            if outcome == "failed" else None, "backend": "command", "log": log, "prompt": None,
            "session_id": None, "usage": {"input_tokens": 100 * n, "output_tokens": 10}, **extra}


def _write_old_format(project: Path) -> None:
    """A state file as the previous seqrun wrote it: task 1 failed three
    times (its newest record keeps its feedback), 2 passed in a unit with 3."""
    logs = ".kiro/specs/.seqrun/logs/feature"
    task1 = [_old_record(n, "failed", "no-marker", f"{logs}/1/{n}.log") for n in (1, 2, 3)]
    task1[-1]["final_message"] = "third failure words"
    shared = _old_record(1, "passed", "passed", f"{logs}/2/1.log")
    tasks = {
        "1": {"status": "failed", "kind": "no-marker", "title": "First", "attempts": 3, "history": task1,
              "history_dropped": 2, "last_error": "no TASK_DONE marker in the final message"},
        "2": {"status": "passed", "kind": "passed", "title": "Second", "attempts": 1, "history": [shared]},
        "3": {"status": "passed", "kind": "passed", "title": "Third", "attempts": 1, "history": [dict(shared)]},
    }
    record = {"completed": ["2", "3"], "halted": False, "started_at": "2026-01-01T00:00:00Z", "assignments": {},
              "halted_at": None, "halted_task": None, "completed_at": None, "failed": ["1"], "tasks": tasks}
    seed = {k: record[k] for k in ("completed", "halted", "started_at", "assignments", "halted_at", "halted_task",
                                   "completed_at")}
    (project / STATE).write_text(json.dumps({"spec": "feature", **seed, "version": 2, "specs": {"feature": record}},
                                            indent=2))
    # The progress file names every attempt but task 1's third (seqrun was
    # stopped before writing it): the next run writes it.
    (project / PROGRESS).write_text("# Sequential progress\n\n" + "".join(
        f"## Iteration {i}\n\n- **Task**: feature::x\n- **Status**: ?\n- **Time**: ?\n- **Message**: ?\n"
        f"- **Log**: {log}\n\n" for i, log in enumerate([f"{logs}/1/1.log", f"{logs}/1/2.log", f"{logs}/2/1.log"], 1)))


def test_a_state_file_of_the_previous_format_is_read_then_moved_to_the_journal(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First\n- [x] 2. Second\n- [x] 3. Third\n")
    configure(project, {"1": "fail"})
    _write_old_format(project)
    # --status reads it as it is, writing nothing.
    status = run_seqrun("--status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    before = json.loads(status.stdout)["specs"][0]
    assert not (project / HISTORY).exists()
    assert before["tokens"] == (100 + 10) + (200 + 10) + (300 + 10) + (100 + 10)  # the unit's attempt once
    result = seqrun(project, "--reruns=0")
    assert result.returncode == 1, result.stdout + result.stderr
    data = raw(project)
    assert data["version"] == 3
    assert not any("history" in entry for entry in data["specs"]["feature"]["tasks"].values())
    # Readers get the same history as before, the new attempt after it: the
    # count goes on, the dropped ones stay counted, feedback on the newest only.
    task1 = read_state_file(project / STATE)["specs"]["feature"]["tasks"]["1"]
    assert [h["attempt"] for h in task1["history"]] == [1, 2, 3, 4]
    assert task1["history_dropped"] == 2
    assert ["final_message" in h for h in task1["history"]] == [False, False, False, True]
    assert [h["attempt"] for h in history(project, "2")] == [1]
    assert [h["attempt"] for h in history(project, "3")] == [1]
    # The lost entry was written once; the others were not written again.
    logs = progress_logs(project)
    assert sorted(logs) == sorted(set(logs)) and ".kiro/specs/.seqrun/logs/feature/1/3.log" in logs
    assert len(logs) == 5
    status = run_seqrun("--status", "--json")
    after = json.loads(status.stdout)["specs"][0]
    assert after["tokens"] == before["tokens"]  # the new attempt reported no usage
    # A second run moves nothing again.
    lines = journal_lines(project)
    assert seqrun(project, "--reruns=0").returncode == 1
    assert journal_lines(project)[:len(lines)] == lines and len(journal_lines(project)) == len(lines) + 1
    assert [h["attempt"] for h in history(project, "1")] == [1, 2, 3, 4, 5]


def test_a_move_to_the_journal_cut_short_is_done_once(make_spec, project):
    make_spec("- [ ] 1. First\n- [x] 2. Second\n- [x] 3. Third\n")
    configure(project, {"1": "fail"}, kill_plugin=True)
    _write_old_format(project)
    # Killed just after the history was written to the journal, before the
    # state file said so.
    first = seqrun(project, env={"KILL_AT": "1", "KILL_MODE": "after"})
    assert first.returncode == 137, first.stdout + first.stderr
    assert "history" in raw(project)["specs"]["feature"]["tasks"]["1"]
    assert len(journal_lines(project)) == 5
    result = seqrun(project, "--reruns=0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert [h["attempt"] for h in history(project, "1")] == [1, 2, 3, 4]
    assert len(journal_lines(project)) == 6
    assert not list((project / HISTORY).glob("*.bak")) and "kept as" not in result.stderr  # it was this record's


def test_history_an_older_seqrun_added_to_the_state_is_moved_once(make_spec, project):
    make_spec("- [ ] 1. First\n")
    configure(project, {"1": "fail"}, kill_plugin=True)
    assert seqrun(project, "--reruns=0").returncode == 1
    # The previous seqrun ran the spec once more: it keeps the journal's
    # record and adds its attempt to a history inside the state, as it used to.
    data = raw(project)
    entry = data["specs"]["feature"]["tasks"]["1"]
    entry["attempts"] = 2
    entry["history"] = [_old_record(2, "failed", "no-marker", ".kiro/specs/.seqrun/logs/feature/1/2.log")]
    (project / STATE).write_text(json.dumps(data))
    # Killed just after that record was added to the journal.
    first = seqrun(project, "--reruns=0", env={"KILL_AT": "1", "KILL_MODE": "after"})
    assert first.returncode == 137, first.stdout + first.stderr
    assert len(journal_lines(project)) == 2
    assert seqrun(project, "--reruns=0").returncode == 1
    assert [h["attempt"] for h in history(project, "1")] == [1, 2, 3]
    assert [line["attempt"] for line in journal_lines(project)] == [1, 2, 3]  # one line per attempt


# -- two runs, --fresh, a journal nobody owns --------------------------------------------------------------


def test_two_specs_run_at_the_same_time_keep_their_histories(make_spec, project):
    ids = [str(i) for i in range(1, 6)]
    for name in ("alpha", "beta"):
        make_spec("".join(f"- [ ] {i}. {name} task {i}\n" for i in ids), name=name)
    configure(project, {i: "fail-once" for i in ("2", "4")})
    procs = [subprocess.Popen(argv(f".kiro/specs/{name}"), cwd=project, env=seqrun_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("alpha", "beta")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
    data = read_state_file(project / STATE)
    for name in ("alpha", "beta"):
        tasks = data["specs"][name]["tasks"]
        assert [len(tasks[i]["history"]) for i in ids] == [1, 2, 1, 2, 1], name
        assert all(h["log"].startswith(f".kiro/specs/.seqrun/logs/{name}/") for i in ids for h in tasks[i]["history"])
        assert len(journal_lines(project, name)) == 7
    assert len(progress_logs(project)) == 14


def test_fresh_moves_the_history_aside_with_the_state(make_spec, project):
    make_spec("- [ ] 1. First\n")
    configure(project, {"1": "fail-once"})
    assert seqrun(project, "--no-mark").returncode == 0
    old = (project / HISTORY / "feature.jsonl").read_bytes()
    result = seqrun(project, "--no-mark", "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    backups = list((project / HISTORY).glob("feature.jsonl.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == old
    assert f"--fresh: previous history of feature kept as {backups[0]}" in result.stderr
    # The spec starts over: its history holds only this run's attempt.
    assert [(h["outcome"]) for h in history(project, "1")] == ["passed"]
    assert len(journal_lines(project)) == 1


def test_a_journal_that_no_state_record_owns_is_kept_aside(make_spec, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    assert seqrun(project, "--no-mark").returncode == 0
    (project / STATE).unlink()  # the person deletes the state to start over
    result = seqrun(project, "--no-mark")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((project / HISTORY).glob("feature.jsonl.*.bak"))) == 1
    assert "history of feature that no record of SEQUENTIAL_STATE.json owned kept as" in result.stderr
    assert len(history(project, "1")) == 1
