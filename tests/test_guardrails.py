"""Guardrails (seqrun/guardrails.py) and --notify (seqrun/notify.py): each one
triggers, says why, and keeps the exit-status rules."""
from __future__ import annotations

import json
import shlex
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seqrun.guardrails import failure_signature, parse_duration

THREE = "- [ ] 1. First task\n- [ ] 2. Second task\n- [ ] 3. Third task\n"
PY = shlex.quote(sys.executable)


def run_demo(run_seqrun, *args, delay: str = "0", **kw):
    return run_seqrun("--no-tmux", "--delay", "0", "--backend", "demo", *args,
                      env={"SEQRUN_DEMO_DELAY": delay}, **kw)


# -- --max-runtime ---------------------------------------------------------------------------------


def test_max_runtime_ends_the_running_task_and_skips_the_rest(make_spec, run_seqrun, project):
    make_spec(THREE)
    start = time.monotonic()
    result = run_demo(run_seqrun, "--max-runtime", "3s", "--kill-grace", "1", delay="2")
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 15
    assert "PASSED  .kiro/specs/feature::1" in result.stdout
    assert ("FAILED  .kiro/specs/feature::2 Second task" in result.stdout
            and "timeout: --max-runtime 3s reached while the task ran; agent and its processes ended"
            in result.stdout)
    assert "SKIPPED .kiro/specs/feature::3 Third task - not reached: --max-runtime 3s reached" in result.stdout
    assert "stopped: --max-runtime 3s reached" in result.stdout


def test_max_runtime_spent_in_the_first_task_starts_nothing_else(make_spec, run_seqrun, project):
    make_spec(THREE)
    # Task 1 takes ~1.5 s of a 1 s budget: it is cut, nothing else starts.
    result = run_demo(run_seqrun, "--max-runtime", "1", "--kill-grace", "1", "--reruns", "0", delay="1.5")
    assert result.returncode == 1, result.stdout
    assert result.stdout.count("not reached: --max-runtime 1s reached") >= 2
    assert "RUN     .kiro/specs/feature::2" not in result.stdout


def test_max_runtime_not_reached_changes_nothing(make_spec, run_seqrun, project):
    make_spec(THREE)
    result = run_demo(run_seqrun, "--max-runtime", "1h")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("90s", 90), ("45m", 2700), ("8h", 28800), ("1h30m", 5400), ("1.5h", 5400), (120, 120),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_guardrail_values_are_usage_errors(make_spec, run_seqrun):
    make_spec(THREE)
    for args, message in ((("--max-runtime", "soon"), "--max-runtime: not a duration: 'soon'"),
                          (("--max-cost", "-1"), "argument --max-cost: must be a number >= 0, got '-1'"),
                          (("--stuck-after", "-2"), "argument --stuck-after: must be a whole number >= 0, got '-2'"),
                          (("--notify-on", "always", "--notify", "true"), "--notify-on: unknown event(s) always")):
        result = run_demo(run_seqrun, *args)
        assert result.returncode == 4 and message in result.stderr, (args, result.stderr)


# -- --stuck-after ---------------------------------------------------------------------------------


def test_a_task_failing_the_same_way_n_times_in_a_row_stops_the_run(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Impossible FAIL\n- [ ] 2. Easy\n")
    first = run_demo(run_seqrun, "--stuck-after", "2", "--reruns", "0", "--no-mark")
    assert first.returncode == 1
    assert "PASSED  .kiro/specs/feature::2" in first.stdout  # once is not stuck
    second = run_demo(run_seqrun, "--stuck-after", "2", "--reruns", "0", "--no-mark")
    assert second.returncode == 1
    why = ("stuck: task 1 failed the same way 2 times in a row (no TASK_DONE marker in the final "
           "message); change the task or the project before running it again")
    assert f"stopped: {why}" in second.stdout
    history = json.loads((project / ".kiro" / "specs" / ".seqrun" / "cache" / "stuck.json").read_text())
    assert history["feature::1"]["count"] == 2
    # Once it passes, the count starts again.
    (folder / "tasks.md").write_text("- [ ] 1. Possible now\n- [ ] 2. Easy\n")
    third = run_demo(run_seqrun, "--stuck-after", "2", "--reruns", "0")
    assert third.returncode == 0, third.stdout
    history = json.loads((project / ".kiro" / "specs" / ".seqrun" / "cache" / "stuck.json").read_text())
    assert "feature::1" not in history


def test_a_different_failure_is_not_stuck(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Impossible FAIL\n- [ ] 2. Easy\n")
    assert run_demo(run_seqrun, "--stuck-after", "2", "--reruns", "0", "--no-mark").returncode == 1
    # Now the same task fails differently: verification instead of a missing marker.
    (project / ".kiro" / "specs" / "feature" / "tasks.md").write_text("- [ ] 1. Impossible\n- [ ] 2. Easy\n")
    result = run_demo(run_seqrun, "--stuck-after", "2", "--reruns", "0", "--no-mark", "--verify", "false")
    assert result.returncode == 1 and "verification failed" in result.stdout
    assert "stuck" not in result.stdout and "not reached" not in result.stdout
    history = json.loads((project / ".kiro" / "specs" / ".seqrun" / "cache" / "stuck.json").read_text())
    assert history["feature::1"]["count"] == 1


def test_failure_signature_ignores_numbers():
    assert failure_signature("timeout: no verdict after 2h00m") == failure_signature("timeout: no verdict after 1h59m")
    assert failure_signature("exit status 1") != failure_signature("no TASK_DONE marker in the final message")


# -- --max-cost ------------------------------------------------------------------------------------


def test_max_cost_stops_after_the_task_that_reaches_it(make_spec, run_seqrun, project):
    make_spec(THREE)
    # The fake claude reports $0.01585 per run: two runs reach $0.03.
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "claude", "--max-cost", "0.03",
                        fakes=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PASSED  .kiro/specs/feature::2" in result.stdout
    why = "--max-cost $0.0300 reached ($0.0317 spent)"
    assert f"SKIPPED .kiro/specs/feature::3 Third task - not reached: {why}" in result.stdout
    assert f"stopped: {why}" in result.stdout


def test_max_cost_warns_when_the_backend_reports_no_cost(make_spec, run_seqrun, project):
    make_spec(THREE)
    (project / "agent.py").write_text("print('<promise>TASK_DONE</promise>')\n")
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(project / "agent.py"))}]\n')
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", "--max-cost", "1")
    assert result.returncode == 0
    assert result.stderr.count("WARNING --max-cost: backend command reported no cost") == 1


# -- --notify --------------------------------------------------------------------------------------


RECORDER = """
    import json, os
    with open("notes.jsonl", "a") as f:
        f.write(json.dumps({k: v for k, v in os.environ.items() if k.startswith("SEQRUN_")}) + "\\n")
"""


def notes(project: Path) -> list[dict]:
    path = project / "notes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_notify_on_failure_halt_and_finish(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Fine\n- [ ] 2. Broken FAIL\n- [ ] 3. Ask a HALT question\n- [ ] 4. Never\n")
    (project / "recorder.py").write_text(textwrap.dedent(RECORDER))
    result = run_demo(run_seqrun, "--reruns", "0", "--notify", f"{PY} recorder.py")
    assert result.returncode == 2, result.stdout + result.stderr
    got = notes(project)
    assert [n["SEQRUN_EVENT"] for n in got] == ["failure", "halt", "finish"]
    failure, halt, finish = got
    assert failure["SEQRUN_TASK_ID"] == "2" and failure["SEQRUN_SPEC"] == "feature"
    assert failure["SEQRUN_REASON"] == "no TASK_DONE marker in the final message"
    assert failure["SEQRUN_EXIT_STATUS"] == "" and failure["SEQRUN_FAILED"] == "1"
    assert failure["SEQRUN_NODEID"] == ".kiro/specs/feature::2" and failure["SEQRUN_LOG"].endswith("feature/2/1.log")
    assert halt["SEQRUN_TASK_ID"] == "3" and halt["SEQRUN_REASON"] == "agent asked to halt"
    assert finish["SEQRUN_EXIT_STATUS"] == "2"
    assert finish["SEQRUN_REASON"] == "halted by task 3: agent asked to halt"
    assert finish["SEQRUN_SUMMARY"] == "1 passed, 1 failed, 1 halted, 1 skipped"
    assert (finish["SEQRUN_PASSED"], finish["SEQRUN_FAILED"], finish["SEQRUN_HALTED"],
            finish["SEQRUN_SKIPPED"]) == ("1", "1", "1", "1")
    assert finish["SEQRUN_TASK_ID"] == "3"  # the last task that went wrong


def test_notify_on_picks_events(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Broken FAIL\n- [ ] 2. Fine\n")
    (project / "recorder.py").write_text(textwrap.dedent(RECORDER))
    result = run_demo(run_seqrun, "--reruns", "0", "--notify", f"{PY} recorder.py", "--notify-on", "finish")
    assert result.returncode == 1
    got = notes(project)
    assert [n["SEQRUN_EVENT"] for n in got] == ["finish"] and got[0]["SEQRUN_EXIT_STATUS"] == "1"


def test_a_failing_or_hanging_notifier_does_not_change_the_outcome(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Fine\n")
    result = run_demo(run_seqrun, "--notify", "sh -c 'echo webhook down; exit 3'")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING --notify (finish): `sh -c 'echo webhook down; exit 3'` exited 3: webhook down" in result.stderr
    start = time.monotonic()
    result = run_demo(run_seqrun, "--fresh", "--notify", "sleep 60", "--notify-timeout", "1", "--kill-grace", "1")
    assert result.returncode == 0
    assert time.monotonic() - start < 15
    assert "WARNING --notify (finish): `sleep 60` ended after --notify-timeout 1s" in result.stderr


def test_a_missing_notifier_is_a_usage_error(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Fine\n")
    result = run_demo(run_seqrun, "--notify", "no-such-notifier --now")
    assert result.returncode == 4
    assert result.stderr.startswith("ERROR: --notify: no-such-notifier not found")
    assert not (project / "demo-output.txt").exists()


def test_a_guardrail_stop_reaches_the_notifier(make_spec, run_seqrun, project):
    make_spec(THREE)
    (project / "recorder.py").write_text(textwrap.dedent(RECORDER))
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "claude", "--max-cost", "0.01",
                        "--notify", f"{PY} recorder.py", fakes=True)
    assert result.returncode == 1
    (finish,) = notes(project)
    assert finish["SEQRUN_EVENT"] == "finish" and finish["SEQRUN_EXIT_STATUS"] == "1"
    assert finish["SEQRUN_REASON"].startswith("--max-cost $0.0100 reached")
