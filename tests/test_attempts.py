"""A task is a series of attempts: each one recorded, none overwritten, in
every place a person or CI reads in the morning — progress file, logs, state
history, report log, JUnit, terminal — in pty and in tmux mode."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import xmlschema
from junitparser import JUnitXml

from conftest import read_state_file, seqrun_env, use_command_agent, wait_for

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
SPECS = Path(".kiro") / "specs"

#: The fake claude CLI replays the real stream-json transcripts: first the
#: echo case (the prompt's markers are echoed, the final message has none),
#: then the done case.
NO_MARKER_THEN_DONE = {"1": ["echo_not_done", "done"]}


def fake_script(project: Path, plan: dict[str, object]) -> dict[str, str]:
    path = project / "fake-script.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return {"SEQRUN_FAKE_SCRIPT": str(path)}


def state_of(project: Path, spec: str = "feature") -> dict:
    return read_state_file(project / SPECS / "SEQUENTIAL_STATE.json")["specs"][spec]


def progress_entries(project: Path) -> list[str]:
    text = (project / SPECS / "SEQUENTIAL_PROGRESS.md").read_text("utf-8")
    return re.split(r"^## Iteration \d+\n", text, flags=re.M)[1:]


def report_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def logs_of(project: Path, task: str, spec: str = "feature") -> Path:
    return project / SPECS / ".seqrun" / "logs" / spec / task


@pytest.fixture(params=["pty", "tmux"])
def mode(request, tmp_path):
    """``--no-tmux``, or a real tmux server on an isolated socket."""
    if request.param == "pty":
        yield ["--no-tmux"], {}
        return
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    sock = tmp_path / "tmux-sock"
    sock.mkdir()
    env = {"TMUX_TMPDIR": str(sock)}
    yield ["--tmux-session", "attempts"], env
    subprocess.run(["tmux", "kill-server"], env=seqrun_env(env), capture_output=True)


def test_no_marker_then_passed_is_two_attempts_everywhere(make_spec, project, run_seqrun, mode):
    args, env = mode
    make_spec("- [ ] 1. Greet the user\n- [ ] 2. Second task\n")
    env = {**env, **fake_script(project, {**NO_MARKER_THEN_DONE, "2": "done"})}
    result = run_seqrun("--backend", "claude", "--delay", "0", "--reruns", "1", *args,
                        "--junitxml", "junit.xml", "--report-log", "log.jsonl", env=env, fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr

    # Terminal: the failed attempt has its own line, with its kind, before the pass.
    first = result.stdout.index("attempt 1 of .kiro/specs/feature::1: failed [no-marker]")
    assert first < result.stdout.index("PASSED  .kiro/specs/feature::1")

    # Progress: one entry per dispatch.
    entries = progress_entries(project)
    assert len(entries) == 3
    assert "feature::1 Greet the user" in entries[0] and "- **Status**: failed (no-marker)" in entries[0]
    assert "feature::1 Greet the user" in entries[1] and "- **Status**: passed" in entries[1]
    assert "attempt 1)" in entries[0] and "attempt 2)" in entries[1]

    # Logs: one file per attempt, each with its own run's bytes; the prompt beside it.
    folder = logs_of(project, "1")
    assert sorted(p.name for p in folder.iterdir()) == ["1.log", "1.prompt.md", "2.log", "2.prompt.md"]
    one, two = (folder / "1.log").read_bytes(), (folder / "2.log").read_bytes()
    assert one != two
    assert b"TASK_DONE</promise>" in two and b'"result":"I wrote greeting.txt' not in one

    # State: a history of two, with kinds.
    task = state_of(project)["tasks"]["1"]
    assert task["status"] == "passed" and task["attempts"] == 2
    assert [(h["attempt"], h["outcome"], h["kind"]) for h in task["history"]] == [
        (1, "failed", "no-marker"), (2, "passed", "passed")]
    assert task["history"][0]["log"] == ".kiro/specs/.seqrun/logs/feature/1/1.log"
    assert task["history"][0]["run_id"] == task["history"][1]["run_id"]
    assert task["history"][1]["session_id"]  # the CLI's own session id

    # Report log: one AttemptReport per attempt, with outcome, kind and reason.
    attempts = [e for e in report_log(project / "log.jsonl") if e["$report_type"] == "AttemptReport"]
    assert [(e["nodeid"], e["attempt"], e["outcome"], e["kind"]) for e in attempts] == [
        (".kiro/specs/feature::1", 1, "failed", "no-marker"),
        (".kiro/specs/feature::1", 2, "passed", "passed"),
        (".kiro/specs/feature::2", 1, "passed", "passed")]
    assert "marker" in attempts[0]["reason"]

    # JUnit: valid, passed, with the failed attempt shown as Surefire's flakyFailure.
    xmlschema.XMLSchema(str(XSD)).validate(str(project / "junit.xml"))
    (suite,) = list(JUnitXml.fromfile(str(project / "junit.xml")))
    assert (suite.tests, suite.failures, suite.errors) == (2, 0, 0)
    case = next(c for c in suite if c.name.startswith("1 "))
    flaky = case._elem.findall("flakyFailure")
    assert [f.get("type") for f in flaky] == ["no-marker"]
    assert "attempt 1" in flaky[0].get("message")
    assert "1/1.log" in flaky[0].find("stackTrace").text


def test_a_later_run_continues_the_count_and_never_rewrites_a_log(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Impossible task\n")
    env = fake_script(project, {"1": "echo_not_done"})
    run = ("--backend", "claude", "--delay", "0", "--no-tmux", "--reruns", "1")
    first = run_seqrun(*run, env=env, fakes=True)
    assert first.returncode == 1, first.stdout + first.stderr
    folder = logs_of(project, "1")
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert sorted(sums) == ["1.log", "1.prompt.md", "2.log", "2.prompt.md"]
    assert len(state_of(project)["tasks"]["1"]["history"]) == 2

    second = run_seqrun(*run, "--lf", env=env, fakes=True)
    assert second.returncode == 1, second.stdout + second.stderr
    task = state_of(project)["tasks"]["1"]
    assert task["attempts"] == 4
    assert [h["attempt"] for h in task["history"]] == [1, 2, 3, 4]
    assert task["history"][0]["run_id"] != task["history"][2]["run_id"]
    assert {p.name for p in folder.iterdir()} == {f"{n}.{ext}" for n in (1, 2, 3, 4) for ext in ("log", "prompt.md")}
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert len(progress_entries(project)) == 4


def test_history_is_bounded(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Impossible task\n")
    use_command_agent(project, "print('no marker here')\n")
    result = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux", "--reruns", "22")
    assert result.returncode == 1, result.stdout + result.stderr
    task = state_of(project)["tasks"]["1"]
    assert task["attempts"] == 23
    assert [h["attempt"] for h in task["history"]] == list(range(4, 24))
    assert task["history_dropped"] == 3


TEARDOWN_RAISES = """\
from seqrun.hookspec import hookimpl

@hookimpl
def seqrun_runtest_teardown(item, report):
    if item.id == "1":
        raise RuntimeError("the cleanup script is broken")
"""


def test_a_plugin_teardown_that_raises_is_an_error_and_the_run_goes_on(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    (project / SPECS / "conftest.py").write_text(TEARDOWN_RAISES, encoding="utf-8")
    use_command_agent(project, "print('<promise>TASK_DONE</promise>')\n")
    result = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux", "--junitxml", "j.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INTERNAL ERROR" not in result.stderr
    assert re.search(r"^ERROR +\.kiro/specs/feature::1 First .*teardown failed: RuntimeError: "
                     r"the cleanup script is broken", result.stdout, re.M), result.stdout
    assert re.search(r"^PASSED +\.kiro/specs/feature::2 Second", result.stdout, re.M)
    tasks = state_of(project)["tasks"]
    assert (tasks["1"]["status"], tasks["1"]["kind"]) == ("error", "teardown-error")
    assert tasks["2"]["status"] == "passed"
    (suite,) = list(JUnitXml.fromfile(str(project / "j.xml")))
    case = next(c for c in suite if c.name.startswith("1 "))
    (error,) = case.result
    assert error._tag == "error" and error.type == "teardown-error"
    assert "RuntimeError" in error.text


SETUP_RAISES = TEARDOWN_RAISES.replace("seqrun_runtest_teardown(item, report)", "seqrun_runtest_setup(item)")


def test_a_plugin_setup_that_raises_is_an_error_and_no_agent_runs_for_it(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    (project / SPECS / "conftest.py").write_text(SETUP_RAISES, encoding="utf-8")
    use_command_agent(project, "import sys\nopen('calls.txt', 'a').write(sys.argv[1] + '\\n')\n"
                               "print('<promise>TASK_DONE</promise>')\n", "{task_id}")
    result = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (project / "calls.txt").read_text() == "2\n"
    assert state_of(project)["tasks"]["1"]["kind"] == "setup-error"


SLOW_AGENT = """\
import sys, time
print("working", flush=True)
time.sleep(60)
"""


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "seqrun", *args], cwd=project, env=seqrun_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _state_file(project: Path) -> Path:
    return project / SPECS / "SEQUENTIAL_STATE.json"


def _status(project: Path, task: str) -> str | None:
    try:
        return state_of(project)["tasks"].get(task, {}).get("status")
    except (OSError, ValueError, KeyError):
        return None


def test_sigterm_during_the_agent_run_records_interrupted_not_failed(make_spec, project):
    make_spec("- [ ] 1. Long\n- [ ] 2. Never reached\n")
    use_command_agent(project, SLOW_AGENT)
    proc = _start(project, "--backend", "command", "--delay", "0", "--no-tmux", "--kill-grace", "1")
    assert wait_for(lambda: _status(project, "1") == "running", timeout=20)
    log = logs_of(project, "1") / "1.log"
    assert wait_for(lambda: log.exists() and b"working" in log.read_bytes(), timeout=20)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    state = state_of(project)
    task = state["tasks"]["1"]
    assert (task["status"], task["kind"]) == ("interrupted", "interrupted")
    assert [(h["outcome"], h["kind"]) for h in task["history"]] == [("interrupted", "interrupted")]
    assert "1" not in state["failed"]
    assert "2" not in state["tasks"]
    assert re.search(r"^INTERRUPTED +\.kiro/specs/feature::1", out, re.M), out
    # Not a failure for --lf: nothing is listed as failed.
    lastfailed = project / SPECS / ".seqrun" / "cache" / "lastfailed.json"
    assert not lastfailed.exists() or json.loads(lastfailed.read_text()) == {}


RECORD_WAITS = """\
from pathlib import Path
from seqrun.hookspec import hookimpl

@hookimpl
def seqrun_wait(seconds, kind):
    with open(Path(__file__).parent / "waits.txt", "a") as f:
        f.write(f"{kind} {seconds:.0f}\\n")
"""


def test_sigterm_during_the_delay_changes_no_tasks_state(make_spec, project):
    make_spec("- [ ] 1. Quick\n- [ ] 2. Waits for the delay\n")
    (project / SPECS / "conftest.py").write_text(RECORD_WAITS, encoding="utf-8")
    use_command_agent(project, "print('<promise>TASK_DONE</promise>')\n")
    proc = _start(project, "--backend", "command", "--delay", "60", "--no-tmux")
    waits = project / SPECS / "waits.txt"
    assert wait_for(lambda: waits.exists() and waits.read_text().startswith("delay "), timeout=20)
    before = state_of(project)["tasks"]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    after = state_of(project)
    assert after["tasks"] == before
    assert list(after["tasks"]) == ["1"] and after["failed"] == []


def test_sigterm_during_a_rate_limit_wait_puts_the_record_back(make_spec, project):
    make_spec("- [ ] 1. Rate limited\n")
    env = {**fake_script(project, {"1": ["rate_limited", "done"]}), "SEQRUN_FAKE_RESET_IN": "3600"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrun", "--backend", "claude", "--delay", "0", "--no-tmux",
         "--rate-limit-margin", "0"],
        cwd=project, env=seqrun_env(env, fakes=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    # The attempt is recorded once its progress entry is written too (the
    # history line comes first): then seqrun is waiting for the reset.
    progress = project / SPECS / "SEQUENTIAL_PROGRESS.md"
    assert wait_for(lambda: bool(state_of(project)["tasks"].get("1", {}).get("history"))
                    if _state_file(project).exists() and progress.exists() and "## Iteration" in progress.read_text()
                    else False, timeout=20)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    task = state_of(project)["tasks"]["1"]
    assert task["status"] != "running" and task["status"] != "failed"
    assert [(h["outcome"], h["kind"]) for h in task["history"]] == [("rate_limited", "rate-limited")]
    entries = progress_entries(project)
    assert len(entries) == 1 and "rate_limited" in entries[0] and "not counted" in entries[0]


def test_an_interrupted_run_killed_with_sigkill_is_an_attempt_in_the_history(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Long\n")
    use_command_agent(project, SLOW_AGENT)
    proc = _start(project, "--backend", "command", "--delay", "0", "--no-tmux", "--kill-grace", "1")
    log = logs_of(project, "1") / "1.log"
    assert wait_for(lambda: log.exists() and b"working" in log.read_bytes(), timeout=20)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    use_command_agent(project, "print('<promise>TASK_DONE</promise>')\n")
    result = run_seqrun("--backend", "command", "--delay", "0", "--no-tmux")
    assert result.returncode == 0, result.stdout + result.stderr
    task = state_of(project)["tasks"]["1"]
    assert [(h["attempt"], h["kind"]) for h in task["history"]] == [(1, "interrupted"), (2, "passed")]
    assert sorted(p.name for p in logs_of(project, "1").glob("*.log")) == ["1.log", "2.log"]


def test_no_module_classifies_by_reason_text():
    """Kinds, not reason prefixes: rewording a reason must change no class."""
    package = Path(__file__).resolve().parent.parent / "seqrun"
    offenders = []
    for path in package.rglob("*.py"):
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if re.search(r"\.reason\s*[!=]=|\.reason\.(startswith|endswith|lower|casefold)\(|in [\w.]*\.reason\b",
                         line):
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_count_survives_deleted_logs_and_a_fresh_state(make_spec, project, run_seqrun):
    """Two sources keep the numbering going, each enough alone: the state
    file's count (the logs were deleted) and the files on disk (--fresh)."""
    make_spec("- [ ] 1. Impossible task\n")
    use_command_agent(project, "print('no marker here')\n")
    run = ("--backend", "command", "--delay", "0", "--no-tmux", "--reruns", "0")
    assert run_seqrun(*run).returncode == 1
    shutil.rmtree(project / SPECS / ".seqrun" / "logs")
    assert run_seqrun(*run).returncode == 1
    assert [h["attempt"] for h in state_of(project)["tasks"]["1"]["history"]] == [1, 2]
    assert sorted(p.name for p in logs_of(project, "1").glob("*.log")) == ["2.log"]
    assert run_seqrun(*run, "--fresh").returncode == 1
    assert [h["attempt"] for h in state_of(project)["tasks"]["1"]["history"]] == [3]
    assert sorted(p.name for p in logs_of(project, "1").glob("*.log")) == ["2.log", "3.log"]
