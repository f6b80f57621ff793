"""SEQUENTIAL_STATE.json and SEQUENTIAL_PROGRESS.md, checked against
hand-written expectations: after a pass, a fail, a halt and a resume; a file
written by the seed script; two specs under one folder; corrupt and
unreadable files; --fresh.

seqrun runs as a subprocess with the ``command`` backend and a scripted agent
(``agent.py`` beside the project) whose answer per task comes from
``plan.json`` ({"<spec>:<id>" or "<id>": "done" | "fail" | "halt"}).
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import read_state_file, seqrun_env

SPECS = Path(".kiro") / "specs"
STATE = SPECS / "SEQUENTIAL_STATE.json"
PROGRESS = SPECS / "SEQUENTIAL_PROGRESS.md"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
THREE = "- [ ] 1. First\n- [ ] 2. Second\n- [ ] 3. Third\n"
NO_MARKER = "no TASK_DONE marker in the final message"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")

AGENT = r'''
import json, os, sys, time
prompt_file, task = sys.argv[1], sys.argv[2]
spec = os.path.basename(os.path.dirname(os.path.dirname(prompt_file)))  # .seqrun/logs/<spec>/<id>/<n>.prompt.md
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.log"), "a") as f:
    f.write(f"{spec}:{task}\n")
plan_file = os.path.join(here, "plan.json")
plan = json.load(open(plan_file)) if os.path.exists(plan_file) else {}
time.sleep(float(plan.get("sleep", 0)))
what = plan.get(f"{spec}:{task}", plan.get(task, "done"))
print("working on", task)
print()
print({"done": "<promise>TASK_DONE</promise>", "fail": "I could not finish.",
       "halt": "<promise>HALT</promise>"}[what])
'''


# -- helpers -------------------------------------------------------------------------


def configure(project: Path, plan: dict[str, Any] | None = None) -> None:
    """The scripted agent as the ``command`` backend, answering per ``plan``."""
    (project / "agent.py").write_text(textwrap.dedent(AGENT))
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, '
        f'{json.dumps(str(project / "agent.py"))}, "{{prompt_file}}", "{{task_id}}"]\n')
    set_plan(project, plan or {})


def set_plan(project: Path, plan: dict[str, Any]) -> None:
    (project / "plan.json").write_text(json.dumps(plan))


def agent_calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().split() if log.exists() else []


def run(run_seqrun: Callable[..., subprocess.CompletedProcess[str]], *args: str,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", *args, timeout=timeout)


def load(project: Path) -> dict[str, Any]:
    """The state file as readers see it: each task with its ``history`` (from the spec's journal)."""
    return read_state_file(project / STATE)


def load_raw(project: Path) -> dict[str, Any]:
    return json.loads((project / STATE).read_text(encoding="utf-8"))


def scrub(value: Any) -> Any:
    """Timestamps become ``"<time>"`` and durations ``"<duration>"`` once
    checked for their form, so the rest compares exactly; a spec's
    ``journal`` (where its history is) is checked, then left out."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "journal" and isinstance(item, dict):
                assert re.fullmatch(r"\.seqrun/history/[\w.~-]+\.jsonl", item["file"]), item
                assert type(item["size"]) is int and item["size"] >= 0, item
                continue
            if key.endswith("_at") and isinstance(item, str):
                assert TIME.match(item), (key, item)
                item = "<time>"
            elif key == "duration":
                assert isinstance(item, float) and 0 <= item < 30, item
                item = "<duration>"
            elif key == "run_id":
                assert isinstance(item, str) and RUN_ID.match(item), item
                item = "<run>"
            else:
                item = scrub(item)
            out[key] = item
        return out
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def scrub_progress(text: str) -> str:
    text = re.sub(r"\*\*Time\*\*: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+\.\ds,",
                  "**Time**: <time> (<d>s,", text)
    return text


#: The final message of the scripted agent's answers.
FINAL_WORDS = {"failed": "I could not finish.", "halted": "<promise>HALT</promise>"}
#: The kind of each status and reason these tests produce.
KINDS = {("passed", None): "passed", ("failed", NO_MARKER): "no-marker",
         ("halted", "agent asked to halt"): "halted"}


def entry(title: str, status: str, attempts: int = 1, log: str | None = None,
          last_error: str | None = None) -> dict[str, Any]:
    """A task's record after a dispatch, as seqrun must write it: every
    attempt of this run failed or passed alike, each in the history."""
    kind = KINDS[(status, last_error)]
    assert log is not None
    history = [attempt_record(log.rsplit("/", 1)[0], n, status, kind, last_error) for n in range(1, attempts + 1)]
    if status != "passed":
        # The newest record keeps what the next attempt is told: the agent's last words.
        history[-1]["final_message"] = FINAL_WORDS[status]
    return {"status": status, "kind": kind, "title": title, "attempts": attempts, "backend": "command",
            "log": log, "updated_at": "<time>", "duration": "<duration>",
            "last_error": last_error, "rate_limit_waits": 0, "history": history}


def attempt_record(folder: str, n: int, outcome: str, kind: str, reason: str | None) -> dict[str, Any]:
    return {"attempt": n, "run_id": "<run>", "started_at": "<time>", "duration": "<duration>",
            "outcome": outcome, "kind": kind, "reason": reason, "backend": "command",
            "log": f"{folder}/{n}.log", "prompt": f"{folder}/{n}.prompt.md", "session_id": None}


def log_of(task: str, attempt: int = 1, spec: str = "feature") -> str:
    return f".kiro/specs/.seqrun/logs/{spec}/{task}/{attempt}.log"


def spec_record(**values: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"completed": [], "halted": False, "started_at": "<time>", "assignments": {},
                              "halted_at": None, "halted_task": None, "completed_at": None,
                              "failed": [], "tasks": {}}
    record.update(values)
    return record


def whole_file(spec: str, record: dict[str, Any], **others: Any) -> dict[str, Any]:
    """The file: the seed's keys mirroring ``spec``, then version and specs."""
    mirror = {k: record[k] for k in ("completed", "halted", "started_at", "assignments",
                                     "halted_at", "halted_task", "completed_at")}
    return {"spec": spec, **mirror, "version": 3, "specs": {spec: record, **others}}


TOP_KEYS = ["spec", "completed", "halted", "started_at", "assignments", "halted_at", "halted_task",
            "completed_at", "version", "specs"]


# -- pass / fail / halt / resume ------------------------------------------------------------


def test_state_after_every_task_passes(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project)
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    data = load(project)
    assert list(data) == TOP_KEYS  # the seed's keys first, readable at a glance
    record = spec_record(completed=["1", "2"], completed_at="<time>", tasks={
        "1": entry("First", "passed", log=log_of("1")),
        "2": entry("Second", "passed", log=log_of("2")),
    })
    assert scrub(data) == whole_file("feature", record)
    # Pretty-printed, UTF-8, one trailing newline.
    raw = (project / STATE).read_bytes()
    assert raw.startswith(b'{\n  "spec": "feature",\n  "completed": [') and raw.endswith(b"}\n")


def test_state_after_a_failure(make_spec, run_seqrun, project):
    make_spec(THREE)
    configure(project, {"2": "fail"})
    result = run(run_seqrun)
    assert result.returncode == 1, result.stdout + result.stderr
    assert agent_calls(project) == ["feature:1", "feature:2", "feature:2", "feature:3"]
    record = spec_record(completed=["1", "3"], failed=["2"], tasks={
        "1": entry("First", "passed", log=log_of("1")),
        "2": entry("Second", "failed", attempts=2, log=log_of("2", 2), last_error=NO_MARKER),
        "3": entry("Third", "passed", log=log_of("3")),
    })
    assert scrub(load(project)) == whole_file("feature", record)


def test_state_after_a_halt_then_resume(make_spec, run_seqrun, project):
    make_spec(THREE)
    configure(project, {"2": "halt"})
    result = run(run_seqrun)
    assert result.returncode == 2, result.stdout + result.stderr
    record = spec_record(completed=["1"], halted=True, halted_at="<time>", halted_task="2", tasks={
        "1": entry("First", "passed", log=log_of("1")),
        "2": entry("Second", "halted", log=log_of("2"), last_error="agent asked to halt"),
        "3": {"status": "skipped", "kind": "not-reached", "title": "Third", "attempts": 0,
              "updated_at": "<time>", "last_error": "not reached: halted by task 2: agent asked to halt"},
    })
    assert scrub(load(project)) == whole_file("feature", record)

    # The person deals with the cause and reruns the same command: it resumes
    # at the halted task; 1 is not run again.
    data = load_raw(project)
    data["specs"]["feature"]["started_at"] = data["started_at"] = "2001-01-01T00:00:00Z"
    (project / STATE).write_text(json.dumps(data))
    set_plan(project, {})
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    assert agent_calls(project) == ["feature:1", "feature:2", "feature:2", "feature:3"]
    data = load(project)
    assert data["specs"]["feature"]["started_at"] != "2001-01-01T00:00:00Z"
    # Task 2's second attempt over its life: the count, the log name and the
    # history go on from the halted first one.
    second = entry("Second", "passed", attempts=2, log=log_of("2", 2))
    second["history"][0] = attempt_record(".kiro/specs/.seqrun/logs/feature/2", 1, "halted", "halted",
                                          "agent asked to halt")
    record = spec_record(completed=["1", "2", "3"], completed_at="<time>", tasks={
        "1": entry("First", "passed", log=log_of("1")),
        "2": second,
        "3": entry("Third", "passed", log=log_of("3")),
    })
    assert scrub(data) == whole_file("feature", record)


def test_a_not_reached_task_keeps_what_an_earlier_run_recorded(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project, {"1": "fail", "2": "fail"})
    assert run(run_seqrun, "--reruns", "0").returncode == 1
    # -x stops after 1: 2 is not reached, and its failure of the last run stays.
    assert run(run_seqrun, "--reruns", "0", "-x").returncode == 1
    state = load(project)["specs"]["feature"]
    assert state["failed"] == ["1", "2"]
    assert scrub(state["tasks"]["2"]) == entry("Second", "failed", log=log_of("2"), last_error=NO_MARKER)
    # With no earlier record, "not reached" is recorded as such.
    assert run(run_seqrun, "--reruns", "0", "-x", "--fresh").returncode == 1
    state = load(project)["specs"]["feature"]
    assert state["failed"] == ["1"]
    assert scrub(state["tasks"]["2"]) == {
        "status": "skipped", "kind": "not-reached", "title": "Second", "attempts": 0, "updated_at": "<time>",
        "last_error": "not reached: stopping after 1 failure(s)"}


PROGRESS_AFTER_HALT = """\
# Sequential progress

## Iteration 1

- **Task**: feature::1 First
- **Status**: passed
- **Time**: <time> (<d>s, attempt 1)
- **Message**: <promise>TASK_DONE</promise>
- **Log**: .kiro/specs/.seqrun/logs/feature/1/1.log

## Iteration 2

- **Task**: feature::2 Second
- **Status**: halted
- **Time**: <time> (<d>s, attempt 1)
- **Message**: agent asked to halt
- **Log**: .kiro/specs/.seqrun/logs/feature/2/1.log

"""

PROGRESS_AFTER_RESUME = PROGRESS_AFTER_HALT + """\
## Iteration 3

- **Task**: feature::2 Second
- **Status**: passed
- **Time**: <time> (<d>s, attempt 2)
- **Message**: <promise>TASK_DONE</promise>
- **Log**: .kiro/specs/.seqrun/logs/feature/2/2.log

## Iteration 4

- **Task**: feature::3 Third
- **Status**: failed (no-marker)
- **Time**: <time> (<d>s, attempt 1)
- **Message**: no TASK_DONE marker in the final message
- **Log**: .kiro/specs/.seqrun/logs/feature/3/1.log

"""


def test_progress_entries_continue_numbering_across_runs(make_spec, run_seqrun, project):
    make_spec(THREE)
    configure(project, {"2": "halt"})
    assert run(run_seqrun).returncode == 2
    assert scrub_progress((project / PROGRESS).read_text()) == PROGRESS_AFTER_HALT
    set_plan(project, {"3": "fail"})
    assert run(run_seqrun, "--reruns", "0").returncode == 1
    assert scrub_progress((project / PROGRESS).read_text()) == PROGRESS_AFTER_RESUME


def test_progress_numbering_follows_the_highest_entry(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    # A hand-trimmed log that ends without a newline: numbering goes on from
    # 41, and the new entry starts on a line of its own.
    (project / PROGRESS).write_text("# Sequential progress\n\n## Iteration 41\n\n- **Task**: x")
    assert run(run_seqrun).returncode == 0
    text = (project / PROGRESS).read_text()
    assert "- **Task**: x\n\n## Iteration 42\n\n- **Task**: feature::1 First\n" in text
    assert text.count("## Iteration") == 2


# -- the seed's file ------------------------------------------------------------------------------

SEED_STATE = {
    "completed": ["1"], "halted": False, "started_at": "2025-06-01T10:00:00",
    "assignments": {"2": {"type": "code", "owner_agent": "codex"}},
    "halted_at": None, "halted_task": None, "completed_at": None,
}


def test_a_seed_written_state_file_resumes_the_spec_being_run(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project)
    (project / STATE).write_text(json.dumps(SEED_STATE, indent=2))
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    assert agent_calls(project) == ["feature:2"]  # 1 was done by the seed
    record = spec_record(
        completed=["1", "2"], completed_at="<time>",
        assignments={"2": {"type": "code", "owner_agent": "codex"}},
        tasks={"2": entry("Second", "passed", log=log_of("2"))},
    )
    expected = whole_file("feature", record)
    expected["adopted_seed_state"] = "feature"
    assert scrub(load(project)) == expected
    # Adopted once: a second spec run later does not take the seed's record too.
    make_spec("- [ ] 1. Other first\n", name="other")
    assert run(run_seqrun, ".kiro/specs/other").returncode == 0
    assert agent_calls(project) == ["feature:2", "other:1"]
    assert load(project)["specs"]["feature"]["completed"] == ["1", "2"]


def test_a_seed_file_with_numeric_ids_and_a_halt(make_spec, run_seqrun, project):
    make_spec(THREE)
    configure(project)
    seed = dict(SEED_STATE, completed=[1, 2], halted=True, halted_at="2025-06-01T11:00:00",
                halted_task="3", assignments={})
    (project / STATE).write_text(json.dumps(seed))
    assert run(run_seqrun).returncode == 0
    assert agent_calls(project) == ["feature:3"]  # resumes at the halted task
    state = load(project)["specs"]["feature"]
    assert state["completed"] == ["1", "2", "3"] and state["halted"] is False
    assert state["halted_task"] is None and state["halted_at"] is None


# -- two specs under one folder ------------------------------------------------------------------------


def test_two_specs_under_one_folder_never_mix(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Alpha one\n- [ ] 2. Alpha two\n", name="alpha")
    make_spec("- [ ] 1. Beta one\n- [ ] 2. Beta two\n", name="beta")
    configure(project, {"beta:2": "fail"})
    assert run(run_seqrun, ".kiro/specs/alpha").returncode == 0
    alpha = load(project)["specs"]["alpha"]
    assert alpha["completed"] == ["1", "2"]
    assert run(run_seqrun, ".kiro/specs/beta", "--reruns", "0").returncode == 1
    data = load(project)
    assert data["specs"]["alpha"] == alpha  # untouched by beta's run
    assert data["specs"]["beta"]["completed"] == ["1"] and data["specs"]["beta"]["failed"] == ["2"]
    assert data["spec"] == "beta" and data["completed"] == ["1"]  # the mirror is beta's, whole
    assert {t["title"] for t in data["specs"]["beta"]["tasks"].values()} == {"Beta one", "Beta two"}
    # Both at once: alpha's ids 1 and 2 being done says nothing about beta's.
    set_plan(project, {})
    assert run(run_seqrun, ".kiro/specs").returncode == 0
    assert agent_calls(project)[-1:] == ["beta:2"]
    data = load(project)
    assert data["specs"]["alpha"]["completed"] == ["1", "2"]
    assert data["specs"]["beta"]["completed"] == ["1", "2"] and data["specs"]["beta"]["failed"] == []


def test_two_specs_run_at_the_same_time_keep_both_records(make_spec, project):
    ids = [str(i) for i in range(1, 7)]
    for name in ("alpha", "beta"):
        make_spec("".join(f"- [ ] {i}. {name} task {i}\n" for i in ids), name=name)
    configure(project, {"sleep": 0.05})
    procs = [subprocess.Popen(
        [sys.executable, "-m", "seqrun", "--no-tmux", "--delay", "0", "--backend", "command",
         f".kiro/specs/{name}"],
        cwd=project, env=seqrun_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) for name in ("alpha", "beta")]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
    data = load(project)
    for name in ("alpha", "beta"):
        assert data["specs"][name]["completed"] == ids, name
        assert set(data["specs"][name]["tasks"]) == set(ids)
    text = (project / PROGRESS).read_text()
    numbers = [int(n) for n in re.findall(r"^## Iteration (\d+)$", text, re.M)]
    assert numbers == list(range(1, 13))  # one numbering, no entry lost or repeated


# -- corrupt and unreadable files -----------------------------------------------------------------------

CORRUPT = {
    "invalid-json": b'{"completed": ["1", ',
    "json-list": b'["1", "2"]',
    "completed-number": b'{"completed": 5, "halted": false}',
    "invalid-utf8": b'{"completed": ["\xff\xfe"]}',
    "task-entry-number": b'{"spec": "feature", "specs": {"feature": {"tasks": {"1": 5}}}}',
    "failed-object": b'{"spec": "feature", "specs": {"feature": {"failed": {"1": true}}}}',
    "empty": b"",
    "nested-too-deep": b"[" * 100_000 + b"]" * 100_000,
    "binary": bytes(range(256)) * 4,
}


def _assert_one_line_usage_error(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 4, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ERROR: ") and str(path) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_state_file_is_a_usage_error_and_left_untouched(name, make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. First\n")
    configure(project)
    path = project / STATE
    path.write_bytes(CORRUPT[name])
    os.utime(path, (1_000_000_000, 1_000_000_000))
    result = run(run_seqrun)
    _assert_one_line_usage_error(result, path)
    assert "--fresh" in result.stderr
    assert path.read_bytes() == CORRUPT[name] and path.stat().st_mtime == 1_000_000_000
    assert agent_calls(project) == []  # nothing ran
    assert (folder / "tasks.md").read_text() == "- [ ] 1. First\n"
    assert sorted(p.name for p in (project / SPECS).iterdir() if not p.is_dir()) == ["SEQUENTIAL_STATE.json"]


def test_a_folder_in_place_of_the_state_file(make_spec, run_seqrun, project):
    # Not chmod 000: the tests may run as root, who reads anything.
    make_spec("- [ ] 1. First\n")
    configure(project)
    (project / STATE).mkdir()
    (project / STATE / "kept.txt").write_text("mine")
    result = run(run_seqrun)
    _assert_one_line_usage_error(result, project / STATE)
    assert "not a regular file" in result.stderr
    assert (project / STATE).is_dir() and [p.name for p in (project / STATE).iterdir()] == ["kept.txt"]
    assert agent_calls(project) == []
    # --fresh recovers from it too: the folder is moved aside whole, as the backup.
    result = run(run_seqrun, "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    (backup,) = (project / SPECS).glob("SEQUENTIAL_STATE.json.*.bak")
    assert (backup / "kept.txt").read_text() == "mine" and str(backup) in result.stderr
    assert load(project)["specs"]["feature"]["completed"] == ["1"]
    assert agent_calls(project) == ["feature:1"]


def test_fresh_moves_a_fifo_aside_without_opening_it(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    os.mkfifo(project / STATE)
    result = run(run_seqrun, "--fresh", timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    (backup,) = (project / SPECS).glob("SEQUENTIAL_STATE.json.*.bak")
    assert stat.S_ISFIFO(backup.lstat().st_mode)
    assert load(project)["specs"]["feature"]["completed"] == ["1"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_state_file(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    (project / STATE).write_text("{}")
    (project / STATE).chmod(0)
    try:
        result = run(run_seqrun)
    finally:
        (project / STATE).chmod(0o644)
    _assert_one_line_usage_error(result, project / STATE)
    assert "Permission denied" in result.stderr


def test_a_fifo_in_place_of_the_state_file_does_not_hang(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    os.mkfifo(project / STATE)
    result = run(run_seqrun, timeout=30)  # opening the FIFO would block for ever
    _assert_one_line_usage_error(result, project / STATE)
    assert stat.S_ISFIFO((project / STATE).stat().st_mode)


# -- --fresh --------------------------------------------------------------------------------------------------


def test_fresh_keeps_a_backup_and_starts_the_spec_over(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    make_spec("- [ ] 1. Other\n", name="other")
    configure(project)
    # --no-mark: the state file is the only record (a [x] in tasks.md stays done).
    assert run(run_seqrun, "--no-mark", ".kiro/specs/other").returncode == 0
    assert run(run_seqrun, "--no-mark", ".kiro/specs/feature").returncode == 0
    assert run(run_seqrun, "--no-mark", ".kiro/specs/feature").returncode == 0  # all done already
    before = (project / STATE).read_bytes()
    other = load(project)["specs"]["other"]
    result = run(run_seqrun, "--no-mark", "--fresh", ".kiro/specs/feature")
    assert result.returncode == 0, result.stdout + result.stderr
    assert agent_calls(project) == ["other:1", "feature:1", "feature:2", "feature:1", "feature:2"]
    backups = sorted((project / SPECS).glob("SEQUENTIAL_STATE.json.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == before
    assert str(backups[0]) in result.stderr
    data = load(project)
    assert data["specs"]["other"] == other  # only the spec being run starts over
    assert data["specs"]["feature"]["completed"] == ["1", "2"]
    # A second --fresh in the same second keeps both backups.
    assert run(run_seqrun, "--no-mark", "--fresh", ".kiro/specs/feature").returncode == 0
    assert len(list((project / SPECS).glob("SEQUENTIAL_STATE.json.*.bak"))) == 2


@pytest.mark.parametrize("name", ["invalid-json", "json-list", "task-entry-number", "nested-too-deep", "binary"])
def test_fresh_over_a_corrupt_file(name, make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    (project / STATE).write_bytes(CORRUPT[name])
    result = run(run_seqrun, "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    (backup,) = (project / SPECS).glob("SEQUENTIAL_STATE.json.*.bak")
    assert backup.read_bytes() == CORRUPT[name]
    assert load(project)["specs"]["feature"]["completed"] == ["1"]


# -- a run that was killed ---------------------------------------------------------------------------------------


def test_a_task_left_running_is_recorded_as_interrupted(make_spec, run_seqrun, project):
    # What a kill -9 while task 1's agent ran leaves: the record says running
    # and tasks.md says [-] (both written before the agent started).
    make_spec("- [-] 1. First\n- [ ] 2. Second\n")
    configure(project, {"1": "fail"})
    running = {"status": "running", "title": "First", "attempts": 1, "backend": "command",
               "log": log_of("1"), "updated_at": "2026-01-01T00:00:00Z"}
    (project / STATE).write_text(json.dumps(whole_file("feature", spec_record(tasks={"1": running}))))
    # Not run this time (deselected): the record says what happened to it.
    assert run(run_seqrun, "-k", "2").returncode == 0
    task = load(project)["specs"]["feature"]["tasks"]["1"]
    assert task["status"] == "interrupted" and "killed" in task["last_error"]
    # Run again: [-] is not done, so it runs (and here fails).
    assert run(run_seqrun, "--reruns", "0").returncode == 1
    assert agent_calls(project) == ["feature:2", "feature:1"]
    state = load(project)["specs"]["feature"]
    assert state["tasks"]["1"]["status"] == "failed" and state["failed"] == ["1"]


def test_a_kill_between_the_tick_and_the_record_loses_nothing(make_spec, run_seqrun, project):
    # seqrun ticks a task that passed, then records it: killed in between,
    # tasks.md has [x] and the record still says running.
    make_spec("- [x] 1. First\n- [ ] 2. Second\n")
    configure(project)
    running = {"status": "running", "title": "First", "attempts": 1, "backend": "command",
               "log": log_of("1"), "updated_at": "2026-01-01T00:00:00Z"}
    (project / STATE).write_text(json.dumps(whole_file("feature", spec_record(tasks={"1": running}))))
    assert run(run_seqrun).returncode == 0
    assert agent_calls(project) == ["feature:2"]
    state = load(project)["specs"]["feature"]
    assert state["completed"] == ["1", "2"]
    assert state["tasks"]["1"]["status"] == "passed" and state["tasks"]["1"]["last_error"] is None
    # The attempt that passed is in the history, as the interrupted one would be.
    assert [(h["attempt"], h["outcome"], h["kind"], h["log"]) for h in state["tasks"]["1"]["history"]] == [
        (1, "passed", "passed", log_of("1"))]


def test_state_is_written_before_the_agent_starts(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    # The agent reads the state file: its own task is recorded as running.
    (project / "agent.py").write_text(textwrap.dedent('''
        import json, sys
        state = json.load(open(".kiro/specs/SEQUENTIAL_STATE.json"))
        task = state["specs"]["feature"]["tasks"][sys.argv[2]]
        print("<promise>TASK_DONE</promise>" if task["status"] == "running" else task)
    '''))
    result = run(run_seqrun, "--reruns", "0")
    assert result.returncode == 0, result.stdout + result.stderr


def test_new_state_file_has_the_usual_permissions(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n")
    configure(project)
    assert run(run_seqrun).returncode == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((project / STATE).stat().st_mode) == 0o666 & ~umask


# -- processes a killed run left ----------------------------------------------------------------


def _start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: the process's start, in clock ticks since boot."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[19])


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
@pytest.mark.parametrize("where", ["agent", "others"])
@pytest.mark.parametrize("start", ["recorded", "reused"])
def test_a_recorded_process_is_ended_only_if_its_start_time_matches(start, where, make_spec, run_seqrun,
                                                                     project):
    """A running record names a live process: the next run ends it when its
    start time is the recorded one, and leaves it alone when the pid now
    belongs to another process (here: the same pid, another start time)."""
    make_spec("- [-] 1. First\n")
    configure(project)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        started = _start_time(live.pid) + (0 if start == "recorded" else 1)
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        if where == "agent":
            processes = {"boot_id": boot_id, "token": "0" * 32, "pid": live.pid, "start": started,
                         "pgid": live.pid, "sid": live.pid, "others": []}
        else:  # a daemon that left the agent's session (the agent itself is gone)
            gone_pid = subprocess.Popen([sys.executable, "-c", "pass"])
            gone_start = _start_time(gone_pid.pid)
            gone_pid.wait()
            processes = {"boot_id": boot_id, "token": "0" * 32, "pid": gone_pid.pid, "start": gone_start,
                         "pgid": gone_pid.pid, "sid": gone_pid.pid, "others": [[live.pid, started]]}
        running = {"status": "running", "title": "First", "attempts": 1, "backend": "command",
                   "log": log_of("1"), "updated_at": "2026-01-01T00:00:00Z", "processes": processes}
        (project / STATE).write_text(json.dumps(whole_file("feature", spec_record(tasks={"1": running}))))
        result = run(run_seqrun, "--kill-grace", "0.5")
        assert result.returncode == 0, result.stdout + result.stderr
        if start == "recorded":
            assert live.wait(5) == -15  # SIGTERM was enough
            assert "ended 1 process(es) that task 1 left running" in result.stderr
        else:
            assert live.poll() is None
            assert "left running" not in result.stderr
        task = load(project)["specs"]["feature"]["tasks"]["1"]
        assert task["status"] == "passed" and "processes" not in task
    finally:
        live.kill()
        live.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="needs /proc")
def test_a_record_made_before_the_agent_started_ends_what_carries_its_token(make_spec, run_seqrun, project):
    """Killed between recording the task as running and recording the agent's
    pid: the token, inherited by every process of the agent, finds them."""
    make_spec("- [-] 1. First\n")
    configure(project)
    token = "5" * 32
    carrier = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               env={**os.environ, "SEQRUN_TREE_TOKEN": token}, start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        processes = {"boot_id": boot_id, "token": token, "pid": 0, "start": 0, "pgid": 0, "sid": 0,
                     "others": []}
        running = {"status": "running", "title": "First", "attempts": 1, "backend": "command",
                   "log": log_of("1"), "updated_at": "2026-01-01T00:00:00Z", "processes": processes}
        (project / STATE).write_text(json.dumps(whole_file("feature", spec_record(tasks={"1": running}))))
        result = run(run_seqrun, "--kill-grace", "0.5")
        assert result.returncode == 0, result.stdout + result.stderr
        assert carrier.wait(5) == -15
        assert bystander.poll() is None
        assert "ended 1 process(es)" in result.stderr
    finally:
        for proc in (carrier, bystander):
            proc.kill()
            proc.wait()
