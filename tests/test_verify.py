"""--verify: seqrun checks the agent's "done" itself (seqrun/verify.py).

End to end with the scripted ``demo`` backend (it calls every task done
unless the title says FAIL or HALT) or the ``command`` backend with a small
agent script; the verification commands are real processes.
"""
from __future__ import annotations

import json
import shlex
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from seqrun.verify import CommandResult, compare_with_baseline, failed_ids, judge, parse_command, ran_no_tests

PY = shlex.quote(sys.executable)
PYTEST_NO_CACHE = f"{PY} -m pytest -q -rfE -p no:cacheprovider"


def run_demo(run_seqrun, *args, env=None, **kw):
    return run_seqrun("--no-tmux", "--delay", "0", "--backend", "demo", *args,
                      env={"SEQRUN_DEMO_DELAY": "0", **(env or {})}, **kw)


def reports(path: Path) -> dict[str, dict]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return {e["task_id"]: e for e in events if e["$report_type"] == "TaskReport"}


def command_agent(project: Path, body: str) -> None:
    """Use the ``command`` backend with ``body`` as the agent (argv: prompt file, task id)."""
    script = project / "agent.py"
    script.write_text(textwrap.dedent(body))
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, '
        '"{prompt_file}", "{task_id}"]\n')


# -- the verdict -----------------------------------------------------------------------------------


def test_verify_false_fails_a_task_the_agent_called_done(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Add a greeting\n")
    result = run_demo(run_seqrun, "--verify", "false", "--junitxml", "report.xml",
                      "--report-log", "events.jsonl")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED  .kiro/specs/feature::1 Add a greeting" in result.stdout
    assert "verification failed: `false` exited 1" in result.stdout
    assert (project / "demo-output.txt").exists()  # the agent did run and said done
    assert (folder / "tasks.md").read_text() == "- [ ] 1. Add a greeting\n"  # not ticked
    failure = ET.parse(project / "report.xml").getroot().find(".//testcase/failure")
    assert failure is not None and failure.get("type") == "verification"
    assert failure.get("message", "").startswith("verification failed")
    report = reports(project / "events.jsonl")["1"]
    assert report["outcome"] == "failed" and report["reason"].startswith("verification failed")
    assert [title for title, _ in report["sections"]] == ["verification: false"]
    log = Path(report["log_path"]).read_text()
    assert "----- seqrun verification (after the task): $ false -> exit 1" in log


def test_verify_true_passes_it(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Add a greeting\n- [ ] 2. Add a farewell\n")
    result = run_demo(run_seqrun, "--verify", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "tasks.md").read_text() == "- [x] 1. Add a greeting\n- [x] 2. Add a farewell\n"


def test_pytest_collecting_no_tests_fails_verification(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Add a greeting\n")
    result = run_demo(run_seqrun, "--verify", PYTEST_NO_CACHE, "--junitxml", "report.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ran no tests (pytest exit status 5: no tests were collected)" in result.stdout
    assert (folder / "tasks.md").read_text() == "- [ ] 1. Add a greeting\n"
    failure = ET.parse(project / "report.xml").getroot().find(".//testcase/failure")
    assert failure is not None and failure.get("type") == "verification"
    assert "no tests ran" in failure.text  # pytest's own words, in the details


def test_pytest_with_passing_tests_verifies(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Add a greeting\n")
    (project / "tests").mkdir()
    (project / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    result = run_demo(run_seqrun, "--verify", PYTEST_NO_CACHE + " tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_runner_that_says_it_ran_nothing_fails_even_with_exit_0(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Add a greeting\n")
    result = run_demo(run_seqrun, "--verify", "sh -c 'echo ----; echo Ran 0 tests in 0.000s; echo OK'")
    assert result.returncode == 1
    assert "ran no tests (exit status 0, but its output says 'Ran 0 tests')" in result.stdout


def test_verification_runs_only_for_a_task_the_agent_called_done(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Break it FAIL\n- [ ] 2. Fine\n")
    result = run_demo(run_seqrun, "--reruns", "0",
                      "--verify", "sh -c 'echo $SEQRUN_TASK_ID $SEQRUN_VERIFY_PHASE >> verified.txt'")
    assert result.returncode == 1
    assert "no TASK_DONE marker" in result.stdout  # the agent's failure, not a verification's
    assert (project / "verified.txt").read_text() == "2 after\n"


# -- where the command comes from ------------------------------------------------------------------


def test_a_tasks_verify_line_overrides_the_option(make_spec, run_seqrun, project):
    folder = make_spec(
        "- [ ] 1. Checked by its own line\n  - _Verify: false_\n"
        "- [ ] 2. Verification turned off\n  - _Verify: none_\n"
        "- [ ] 3. Checked by --verify\n"
        "- [ ] 4. Parent with a line\n  - **Verify**: `sh -c 'echo $SEQRUN_TASK_ID >> parent.txt'`\n"
        "  - [ ] 4.1 Child inherits it\n")
    result = run_demo(run_seqrun, "--verify", "sh -c 'echo $SEQRUN_TASK_ID >> option.txt'", "--reruns", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED  .kiro/specs/feature::1" in result.stdout
    assert "verification failed: `false` exited 1" in result.stdout
    text = (folder / "tasks.md").read_text()
    assert "- [x] 2. Verification turned off" in text and "- [x] 3. Checked" in text
    assert "- [x] 4.1 Child" in text
    assert (project / "option.txt").read_text() == "3\n"
    assert (project / "parent.txt").read_text() == "4.1\n"


def test_a_tasks_missing_verify_command_fails_that_task_only(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Odd one\n  - _Verify: no-such-verifier --all_\n- [ ] 2. Normal\n")
    result = run_demo(run_seqrun)
    assert result.returncode == 1
    assert ("verification failed: `no-such-verifier` not found (the Verify line of task 1)"
            in result.stdout)
    assert "PASSED  .kiro/specs/feature::2" in result.stdout


def test_config_file_verify_and_its_missing_command_is_a_usage_error(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Add a greeting\n")
    (project / "pyproject.toml").write_text('[tool.seqrun]\nverify = "no-such-verifier -q"\n')
    result = run_demo(run_seqrun)
    assert result.returncode == 4
    assert result.stderr.strip() == ("ERROR: verify in pyproject.toml: no-such-verifier not found "
                                     f"(in {project} or on PATH)")
    assert not (project / "demo-output.txt").exists()  # refused before any agent ran
    (project / "pyproject.toml").write_text('[tool.seqrun]\nverify = ["sh", "-c", "exit 3"]\n')
    result = run_demo(run_seqrun)
    assert result.returncode == 1 and "verification failed: `sh -c 'exit 3'` exited 3" in result.stdout


def test_missing_verify_option_command_is_a_usage_error(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Add a greeting\n")
    result = run_demo(run_seqrun, "--verify", "./check.sh")
    assert result.returncode == 4
    assert result.stderr.startswith("ERROR: --verify: ./check.sh not found")
    result = run_demo(run_seqrun, "--verify", "pytest 'unclosed")
    assert result.returncode == 4 and "cannot split" in result.stderr


def test_no_verify_turns_everything_off(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Checked\n  - _Verify: false_\n")
    result = run_demo(run_seqrun, "--verify", "false", "--no-verify")
    assert result.returncode == 0, result.stdout


# -- baseline --------------------------------------------------------------------------------------


BREAKS_A_TEST = """
    import sys
    from pathlib import Path
    task = sys.argv[2]
    if task == "2":
        Path("tests/test_new.py").write_text("def test_new():\\n    assert 1 == 2\\n")
    print("<promise>TASK_DONE</promise>")
"""


def test_baseline_tells_new_failures_from_old_ones(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Harmless\n- [ ] 2. Breaks a test\n")
    (project / "tests").mkdir()
    (project / "tests" / "test_old.py").write_text(
        "def test_ok():\n    pass\n\ndef test_old():\n    assert False\n")
    command_agent(project, BREAKS_A_TEST)
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", "--reruns", "0",
                        "--verify", PYTEST_NO_CACHE + " tests", "--verify-baseline",
                        "--report-log", "events.jsonl")
    assert result.returncode == 1, result.stdout + result.stderr
    got = reports(project / "events.jsonl")
    assert got["1"]["reason"].endswith(
        "0 new failure(s); 1 failing before the task too: tests/test_old.py::test_old")
    assert got["2"]["reason"].endswith(
        "1 new failure(s): tests/test_new.py::test_new; 1 failing before the task too: "
        "tests/test_old.py::test_old")
    titles = [title for title, _ in got["2"]["sections"]]
    assert titles == [f"verification: {PYTEST_NO_CACHE} tests", f"verification baseline: {PYTEST_NO_CACHE} tests"]
    log = Path(got["2"]["log_path"]).read_text()
    assert "verification (baseline, before the task)" in log and "verification (after the task)" in log


def test_baseline_says_when_the_task_broke_a_passing_command(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Breaks the build\n")
    command_agent(project, """
        from pathlib import Path
        Path("broken").write_text("yes")
        print("<promise>TASK_DONE</promise>")
    """)
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", "--reruns", "0",
                        "--verify", "sh -c 'test ! -e broken'", "--verify-baseline")
    assert result.returncode == 1
    assert "exited 1; it passed before the task: the task broke it" in result.stdout


# -- time limit ------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_verify_timeout_ends_the_command_and_its_processes(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Add a greeting\n")
    hang = project / "hang.py"
    hang.write_text(textwrap.dedent("""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open("pids.txt", "w").write(f"{os.getpid()} {child.pid}")
        time.sleep(60)
    """))
    start = time.monotonic()
    result = run_demo(run_seqrun, "--verify", f"{PY} hang.py", "--verify-timeout", "1", "--kill-grace", "1")
    assert result.returncode == 1
    assert time.monotonic() - start < 20
    assert "timed out after 1s (it and its processes were ended)" in result.stdout
    pids = [int(p) for p in (project / "pids.txt").read_text().split()]
    assert not [p for p in pids if _alive(p)]


# -- unit mode -------------------------------------------------------------------------------------


def test_one_verification_per_dispatch_unit(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Parent\n  - [ ] 1.1 One\n  - [ ] 1.2 Two\n")
    result = run_demo(run_seqrun, "--dispatch", "unit", "--verify",
                      "sh -c 'echo $SEQRUN_TASK_ID >> verified.txt; exit 1'")
    assert result.returncode == 1
    # One verification per attempt of the unit (not per subtask): the first
    # failed, so the unit ran again once (--reruns 1) and was verified again.
    assert (project / "verified.txt").read_text() == "1\n1\n"
    assert result.stdout.count("verification failed") >= 2  # both subtasks carry it
    assert "[x]" not in (folder / "tasks.md").read_text()


# -- the judging functions -------------------------------------------------------------------------


def result(output: str, status: int | None = 0, argv: tuple[str, ...] = ("runner",)) -> CommandResult:
    return CommandResult(argv, status, output, 0.1)


@pytest.mark.parametrize("output", [
    "no tests ran in 0.01s",
    "collected 0 items\n\n===== no tests ran in 0.01s =====",
    "----------\nRan 0 tests in 0.000s\n\nNO TESTS RAN",
    "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored",
    "?   	example.com/pkg	[no test files]",
    "  0 passing (1ms)",
    "Tests:       0 total",
])
def test_outputs_that_mean_no_tests_ran(output):
    assert ran_no_tests(result(output)) is not None
    assert judge(result(output), 60).startswith("`runner` ran no tests")


@pytest.mark.parametrize("output", [
    "3 passed in 0.12s",
    "running 0 tests\ntest result: ok. 0 passed\nrunning 12 tests\ntest result: ok. 12 passed",
    "?   	example.com/a	[no test files]\nok  	example.com/b	0.012s",
    "All checks passed!",
    "",
    "10 passed, 0 failed",
])
def test_outputs_that_ran_tests_or_are_not_test_runs(output):
    assert ran_no_tests(result(output)) is None
    assert judge(result(output), 60) is None


def test_pytest_exit_5_is_no_tests_and_other_exits_are_failures():
    assert ran_no_tests(result("", 5, ("python", "-m", "pytest"))) is not None
    assert ran_no_tests(result("", 5, ("make", "check"))) is None
    assert judge(result("boom\n=== 1 failed, 2 passed in 0.3s ===\n", 1), 60) == \
        "`runner` exited 1 (1 failed, 2 passed in 0.3s)"


def test_baseline_comparison_by_pytest_ids():
    before = result("FAILED a.py::old - x\n1 failed", 1)
    after = result("FAILED a.py::old - x\nFAILED b.py::new - y\n2 failed", 1)
    assert failed_ids(after.output) == ["a.py::old", "b.py::new"]
    assert compare_with_baseline(after, before) == \
        "1 new failure(s): b.py::new; 1 failing before the task too: a.py::old"
    assert compare_with_baseline(result("FAILED b.py::new", 1), before) == \
        "1 new failure(s): b.py::new; 1 fixed by the task"
    assert compare_with_baseline(result("", 2), result("", 2)) == "it failed before the task too (exit 2)"


def test_parse_command_forms():
    assert parse_command("pytest -q 'a b'", "x") == ["pytest", "-q", "a b"]
    assert parse_command("`make check`", "x") == ["make", "check"]
    assert parse_command(["sh", "-c", "a && b"], "x") == ["sh", "-c", "a && b"]
    for bad in ("", "   ", [], ["ok", 3], 42):
        with pytest.raises(ValueError):
            parse_command(bad, "x")
