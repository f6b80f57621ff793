"""``--report-log``: a JSON-lines record of the run, readable while it happens."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from seqrun.config import Config, new_pluginmanager
from seqrun.nodes import Spec, Task
from seqrun.outcome import Outcome, TaskReport, Usage
from seqrun.reports import reportlog
from seqrun.reports.reportlog import REPORT_LOG_SCHEMA, ReportLog

from conftest import use_command_agent

RUN = ("--backend", "command", "--no-tmux", "--delay", "0", "--reruns", "0")

AGENT = """\
import json, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
task_id = sys.argv[1]
plan = json.loads((here / "plan.json").read_text("utf-8"))
peek = here / "events.jsonl"
if peek.exists():  # what a `tail -f` of the report log shows while this task runs
    (here / f"seen-by-{task_id}.jsonl").write_bytes(peek.read_bytes())
what = plan.get(task_id, "done")
final = {"done": "Finished. <promise>TASK_DONE</promise>",
         "halt": "Blocked. <promise>HALT</promise>"}.get(what, "I could not finish it.")
sys.stdout.write("working on " + task_id + "\\n\\n" + final + "\\n")
"""

#: Hand-written: the fields of each event (besides $report_type, schema, time).
EXPECTED_FIELDS = {
    "SessionStart": {"seqrun_version", "argv", "cwd", "started_at"},
    "CollectReport": {"specs", "items", "nodeids", "deselected"},
    "TaskStart": {"nodeid", "task_id", "title"},
    "AttemptStart": {"nodeid", "attempt", "backend", "log_path"},
    "AttemptReport": {"nodeid", "task_id", "attempt", "run_id", "started_at", "ended_at", "duration",
                      "backend", "model", "outcome", "kind", "reason", "session_id", "usage",
                      "final_message", "checks", "members", "log_path", "prompt_path"},
    "RateLimitWait": {"nodeid", "seconds", "reset_at", "reason"},
    "TaskReport": {"nodeid", "task_id", "title", "outcome", "reason", "kind", "when", "duration",
                   "attempts", "attempt_number", "rate_limit_waits", "rate_limit_wait_seconds", "backend",
                   "model", "log_path", "usage", "final_message", "longrepr", "sections", "dispatch_id"},
    "SessionFinish": {"exitstatus", "counts", "deselected", "duration", "finished_at"},
}


def use_agent(project: Path, plan: dict[str, str]) -> None:
    (project / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    use_command_agent(project, AGENT, "{task_id}")


def read_events(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def check_fields(event: dict) -> None:
    kind = event["$report_type"]
    assert event["schema"] == "2"
    assert isinstance(event["time"], float)
    assert set(event) == {"$report_type", "schema", "time"} | EXPECTED_FIELDS[kind], kind


def test_schema_constant_matches_hand_written_fields_and_docstring():
    assert {k: set(v) for k, v in REPORT_LOG_SCHEMA.items()} == EXPECTED_FIELDS
    doc = reportlog.__doc__ or ""
    for kind, fields in EXPECTED_FIELDS.items():
        assert f"``{kind}``" in doc
        for name in fields:
            assert f"``{name}``" in doc, name
    assert '``"2"``' in doc


def test_run_writes_events_in_order_with_every_field(make_spec, project, run_seqrun):
    make_spec("# Tasks\n\n- [ ] 1. First\n- [ ] 2. Second\n- [ ] 3. Third\n- [ ] 4. Fourth\n", name="feat")
    use_agent(project, {"2": "fail"})
    result = run_seqrun(*RUN, "--report-log", "events.jsonl", "-x", "-k", "not Fourth")
    assert result.returncode == 1, result.stdout + result.stderr
    events = read_events(project / "events.jsonl")
    for event in events:
        check_fields(event)
    kinds = [e["$report_type"] for e in events]
    assert kinds == ["SessionStart", "CollectReport",
                     "TaskStart", "AttemptStart", "AttemptReport", "TaskReport",
                     "TaskStart", "AttemptStart", "AttemptReport", "TaskReport",
                     "TaskReport",  # 3: not reached after -x
                     "SessionFinish"]
    start, collect = events[0], events[1]
    assert start["argv"] == [*RUN, "--report-log", "events.jsonl", "-x", "-k", "not Fourth"]
    assert start["cwd"] == str(project)
    assert collect["items"] == 3 and collect["deselected"] == 1
    assert collect["nodeids"] == [".kiro/specs/feat::1", ".kiro/specs/feat::2", ".kiro/specs/feat::3"]
    assert collect["specs"] == [{"name": "feat", "nodeid": ".kiro/specs/feat",
                                 "tasks_file": str(project / ".kiro/specs/feat/tasks.md"), "collected": 4}]
    attempt = events[7]
    assert attempt["nodeid"] == ".kiro/specs/feat::2" and attempt["attempt"] == 1
    assert attempt["backend"] == "command" and attempt["log_path"].endswith("feat/2/1.log")
    ended = events[8]
    assert (ended["attempt"], ended["outcome"], ended["kind"]) == (1, "failed", "no-marker")
    assert ended["reason"] == "no TASK_DONE marker in the final message"
    assert ended["final_message"] == "I could not finish it." and ended["members"] == ["2"]
    reports = [e for e in events if e["$report_type"] == "TaskReport"]
    assert [(r["task_id"], r["outcome"]) for r in reports] == [("1", "passed"), ("2", "failed"), ("3", "skipped")]
    assert reports[1]["reason"] == "no TASK_DONE marker in the final message"
    assert reports[1]["final_message"] == "I could not finish it."
    assert reports[1]["attempts"] == [1] and reports[1]["sections"] == []
    assert reports[1]["kind"] == "no-marker" and reports[2]["kind"] == "not-reached"
    assert reports[2]["reason"].startswith("not reached")
    finish = events[-1]
    assert finish["exitstatus"] == 1
    assert finish["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert finish["deselected"] == 1
    times = [e["time"] for e in events]
    assert times == sorted(times)


def test_each_event_is_on_disk_as_it_happens(make_spec, project, run_seqrun):
    # The agent of task 2 copies the report log while it runs: what tail -f shows.
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n", name="feat")
    use_agent(project, {})
    assert run_seqrun(*RUN, "--report-log", "events.jsonl").returncode == 0
    seen = read_events(project / "seen-by-2.jsonl")
    assert [e["$report_type"] for e in seen] == [
        "SessionStart", "CollectReport", "TaskStart", "AttemptStart", "AttemptReport", "TaskReport",
        "TaskStart", "AttemptStart"]


def test_halt_and_exit_status(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n", name="feat")
    use_agent(project, {"1": "halt"})
    result = run_seqrun(*RUN, "--report-log", "out/dir/events.jsonl")
    assert result.returncode == 2
    events = read_events(project / "out" / "dir" / "events.jsonl")
    assert events[-1]["exitstatus"] == 2
    assert events[-1]["counts"] == {"halted": 1, "skipped": 1}


def test_collect_only_and_truncation(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First\n", name="feat")
    (project / "events.jsonl").write_text("old content\n")
    assert run_seqrun("--co", "--report-log", "events.jsonl").returncode == 0
    events = read_events(project / "events.jsonl")
    assert [e["$report_type"] for e in events] == ["SessionStart", "CollectReport", "SessionFinish"]


def test_unwritable_path_is_a_usage_error(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First\n", name="feat")
    (project / "afile").write_text("")
    result = run_seqrun("--co", "--report-log", "afile/events.jsonl")
    assert result.returncode == 4
    assert "--report-log" in result.stderr


# -- unit level -----------------------------------------------------------------------------


def make_plugin(tmp_path: Path) -> ReportLog:
    config = Config(new_pluginmanager(), tmp_path, argparse.Namespace())
    plugin = ReportLog(config, tmp_path / "log.jsonl")
    plugin.open()
    return plugin


def test_rate_limit_wait_and_report_fields(tmp_path):
    plugin = make_plugin(tmp_path)
    spec = Spec(name="feat", tasks_file=tmp_path / "feat" / "tasks.md", nodeid="feat")
    task = Task(id="1", title="One", line=1, spec=spec)
    plugin.seqrun_rate_limit_wait(item=task, seconds=90.0, reset_at=1_800_000_000.0, reason="429 slow down")
    wait = read_events(tmp_path / "log.jsonl")[-1]  # on disk before the file is closed
    check_fields(wait)
    assert (wait["nodeid"], wait["seconds"], wait["reset_at"], wait["reason"]) == (
        "feat::1", 90.0, 1_800_000_000.0, "429 slow down")

    plugin.seqrun_runtest_logreport(report=TaskReport(
        nodeid="feat::1", task_id="1", title="One", outcome=Outcome.PASSED, attempt_number=2,
        usage=Usage(input_tokens=10, output_tokens=5, cost_usd=0.5),
        final_message="bad surrogate \udcff and NUL \x00 <promise>TASK_DONE</promise>",
        sections=[("verification", "ok")]))
    raw = (tmp_path / "log.jsonl").read_bytes().splitlines()[-1]
    raw.decode("utf-8")  # strictly valid UTF-8
    event = json.loads(raw)
    check_fields(event)
    assert event["usage"] == {"input_tokens": 10, "output_tokens": 5, "cached_tokens": None,
                              "reasoning_tokens": None, "cost_usd": 0.5}
    assert event["outcome"] == "passed" and event["attempt_number"] == 2 and event["attempts"] == []
    assert event["final_message"] == "bad surrogate ? and NUL \x00 <promise>TASK_DONE</promise>"
    assert event["sections"] == [["verification", "ok"]]
    plugin.close()
