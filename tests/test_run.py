"""Running tasks end to end: seqrun as a subprocess, fake agent CLIs on PATH
under their real names (printing the real CLIs' formats), real ptys."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import pytest

from conftest import seqrun_env, use_command_agent, wait_for

THREE = """\
# Implementation Plan

- [ ] 1. First task
  - _Requirements: 1.1_
- [ ] 2. Second task
- [ ] 3. Third task
"""

BACKENDS = ["codex", "claude", "gemini", "opencode", "kiro", "codeagent-wrapper"]


def calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def tasks_run(log: Path) -> list[str]:
    """The task id of each agent call, read from the prompt the agent got."""
    return [re.search(r"^Task ID: (\S+)$", c["prompt"], re.M).group(1) for c in calls(log)]


def state_of(project: Path, spec: str = "feature") -> dict:
    data = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    return data["specs"][spec]


def run_fake(run_seqrun, project, *args, scenario="done", extra_env=None, **kw):
    env = {"SEQRUN_FAKE_SCENARIO": scenario, "SEQRUN_FAKE_LOG": str(project / "calls.jsonl")}
    env.update(extra_env or {})
    return run_seqrun("--no-tmux", "--delay", "0", *args, env=env, fakes=True, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_passes_a_task_end_to_end(backend, make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Add a greeting\n  - _Requirements: 2.1_\n")
    result = run_fake(run_seqrun, project, "--backend", backend)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "tasks.md").read_text() == "- [x] 1. Add a greeting\n  - _Requirements: 2.1_\n"
    assert state_of(project)["completed"] == ["1"]
    made = calls(project / "calls.jsonl")
    assert len(made) == 1
    assert "Add a greeting" in made[0]["prompt"] and "<promise>TASK_DONE</promise>" in made[0]["prompt"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_prompt_echo_never_passes_a_task(backend, make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Add a greeting\n")
    result = run_fake(run_seqrun, project, "--backend", backend, "--reruns", "0", scenario="echo_not_done")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout
    assert (folder / "tasks.md").read_text() == "- [ ] 1. Add a greeting\n"
    assert state_of(project)["failed"] == ["1"]


def test_real_argv_reaches_the_cli(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Add a greeting\n")
    run_fake(run_seqrun, project, "--backend", "codex", "--model", "gpt-x")
    (call,) = calls(project / "calls.jsonl")
    argv = call["argv"]
    assert argv[0] == "exec" and "--json" in argv and argv[-1] == "-"  # prompt on stdin
    assert "--dangerously-bypass-approvals-and-sandbox" in argv
    assert ["-m", "gpt-x"] == argv[argv.index("-m"):argv.index("-m") + 2]
    assert argv[argv.index("-C") + 1] == str(project)


def test_halt_stops_the_run_with_exit_2(make_spec, run_seqrun, project):
    folder = make_spec(THREE)
    script = project / "script.json"
    script.write_text(json.dumps({"1": "done", "2": "halt", "3": "done"}))
    result = run_fake(run_seqrun, project, "--backend", "claude",
                      extra_env={"SEQRUN_FAKE_SCRIPT": str(script)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert tasks_run(project / "calls.jsonl") == ["1", "2"]
    text = (folder / "tasks.md").read_text()
    assert "- [x] 1. First" in text and "- [ ] 2. Second" in text and "- [ ] 3. Third" in text
    state = state_of(project)
    assert state["halted"] is True and state["halted_task"] == "2"
    assert "HALTED" in result.stdout
    # Rerunning resumes at the halted task: 1 is not run again.
    script.write_text(json.dumps({"*": "done"}))
    again = run_fake(run_seqrun, project, "--backend", "claude",
                     extra_env={"SEQRUN_FAKE_SCRIPT": str(script)})
    assert again.returncode == 0
    assert tasks_run(project / "calls.jsonl")[2:] == ["2", "3"]
    assert state_of(project)["halted"] is False


def test_failed_task_is_rerun_then_reported(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Flaky\n- [ ] 2. Next\n")
    script = project / "script.json"
    script.write_text(json.dumps({"1": ["failed", "done"], "2": "done"}))
    result = run_fake(run_seqrun, project, "--backend", "opencode", "--reruns", "1",
                      extra_env={"SEQRUN_FAKE_SCRIPT": str(script)})
    assert result.returncode == 0, result.stdout
    assert tasks_run(project / "calls.jsonl") == ["1", "1", "2"]
    assert state_of(project)["tasks"]["1"]["attempts"] == 2


def test_rate_limit_waits_for_the_reset_then_passes(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Limited\n")
    script = project / "script.json"
    script.write_text(json.dumps({"1": ["rate_limited", "done"]}))
    start = time.monotonic()
    result = run_fake(run_seqrun, project, "--backend", "claude", "--rate-limit-margin", "0",
                      "--max-iterations", "1",
                      extra_env={"SEQRUN_FAKE_SCRIPT": str(script), "SEQRUN_FAKE_RESET_IN": "2"})
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert 1.5 <= elapsed < 60  # it waited for the reset (the bound above is only a hang guard)
    assert "rate limited" in result.stdout.lower()
    task = state_of(project)["tasks"]["1"]
    # The limited attempt did not use up --max-iterations 1 and is not a rerun.
    assert task["status"] == "passed" and task["rate_limit_waits"] == 1


def test_rate_limit_beyond_the_maximum_wait_halts(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Limited\n")
    result = run_fake(run_seqrun, project, "--backend", "claude", "--max-rate-limit-wait", "60",
                      scenario="rate_limited", extra_env={"SEQRUN_FAKE_RESET_IN": "3600"})
    assert result.returncode == 2
    assert "rerun the same command after" in result.stdout + result.stderr


def test_max_iterations_reports_the_rest_not_run(make_spec, run_seqrun, project):
    make_spec(THREE)
    result = run_fake(run_seqrun, project, "--backend", "claude", "--max-iterations", "2")
    assert result.returncode == 1
    assert len(calls(project / "calls.jsonl")) == 2
    assert "not reached: --max-iterations 2 reached" in result.stdout


def test_dispatch_unit_runs_a_parent_once_for_its_subtasks(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Parent\n  - [ ] 1.1 Child one\n  - [ ]* 1.2 Optional\n"
                       "  - [ ] 1.3 Child three\n- [ ] 2. Standalone\n")
    result = run_fake(run_seqrun, project, "--backend", "gemini", "--dispatch", "unit")
    assert result.returncode == 0, result.stdout
    made = calls(project / "calls.jsonl")
    assert len(made) == 2
    assert "1.1 Child one" in made[0]["prompt"] and "1.3 Child three" in made[0]["prompt"]
    assert "1.2 Optional" not in made[0]["prompt"]
    text = (folder / "tasks.md").read_text()
    assert text == ("- [x] 1. Parent\n  - [x] 1.1 Child one\n  - [ ]* 1.2 Optional\n"
                    "  - [x] 1.3 Child three\n- [x] 2. Standalone\n")


def test_failed_dependency_skips_the_dependent(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Base\n- [ ] 2. Uses base\n  - _Depends: 1_\n- [ ] 3. Independent\n")
    script = project / "script.json"
    script.write_text(json.dumps({"1": "failed", "*": "done"}))
    result = run_fake(run_seqrun, project, "--backend", "claude", "--reruns", "0",
                      extra_env={"SEQRUN_FAKE_SCRIPT": str(script)})
    assert result.returncode == 1
    assert tasks_run(project / "calls.jsonl") == ["1", "3"]
    assert "dependency 1 failed" in result.stdout


def test_done_and_optional_tasks_are_skipped(make_spec, run_seqrun, project):
    make_spec("- [x] 1. Done already\n- [ ]* 2. Optional\n- [ ] 3. Todo\n")
    result = run_fake(run_seqrun, project, "--backend", "claude", "--junitxml", "report.xml")
    assert result.returncode == 0
    assert tasks_run(project / "calls.jsonl") == ["3"]
    # Why each was skipped, in the words for what happened: ticked before the run.
    skipped = {case.get("name"): skip.get("message") if (skip := case.find("skipped")) is not None else None
               for case in ET.parse(project / "report.xml").iter("testcase")}
    assert skipped == {"1 Done already": "already done ([x] in tasks.md)",
                       "2 Optional": "optional task (use --include-optional to run it)", "3 Todo": None}, skipped
    result = run_fake(run_seqrun, project, "--backend", "claude", "--include-optional")
    assert result.returncode == 0, result.stdout + result.stderr
    assert tasks_run(project / "calls.jsonl")[1:] == ["2"]


RECORD_WAITS = """\
import json, time
from seqrun.hookspec import hookimpl

def _note(event):
    with open(EVENTS, "a") as f:
        f.write(json.dumps({**event, "at": time.monotonic()}) + "\\n")

@hookimpl
def seqrun_runtest_attempt(item, attempt):
    _note({"event": "agent", "task": item.id})

@hookimpl
def seqrun_wait(seconds, reason, kind):
    _note({"event": "wait", "kind": kind, "seconds": seconds})

@hookimpl
def seqrun_sessionfinish():
    _note({"event": "end"})
"""


def test_delay_is_between_dispatches_not_after_the_last(make_spec, run_seqrun, project):
    make_spec(THREE)
    events_file = project / "events.jsonl"
    (project / ".kiro" / "specs" / "conftest.py").write_text(
        f"EVENTS = {str(events_file)!r}\n" + RECORD_WAITS)
    result = run_seqrun("--no-tmux", "--delay", "1.5", "--backend", "claude", fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    # Two delays, each between two agents; none before the first or after the last.
    assert [(e["event"], e.get("task") or e.get("kind")) for e in events] == [
        ("agent", "1"), ("wait", "delay"), ("agent", "2"), ("wait", "delay"), ("agent", "3"), ("end", None)]
    waits = [e for e in events if e["event"] == "wait"]
    assert all(0 < w["seconds"] <= 1.5 for w in waits)
    starts = [e["at"] for e in events if e["event"] == "agent"]
    # The delays were slept, not only announced.
    assert starts[1] - starts[0] >= 1.5 and starts[2] - starts[1] >= 1.5


def _command_config(project: Path, agent: str) -> None:
    use_command_agent(project, textwrap.dedent(agent), "{prompt_file}", "{task_id}")


def test_large_prompt_reaches_the_agent(make_spec, run_seqrun, project):
    details = "\n".join(f"  - detail line {i:06d} " + "x" * 60 for i in range(3000))  # ~200 KB
    make_spec(f"- [ ] 1. Big task\n{details}\n")
    _command_config(project, """
        import sys
        text = open(sys.argv[1], encoding="utf-8").read()
        ok = len(text) > 200_000 and "detail line 002999" in text
        print("read", len(text), "characters")
        print("<promise>TASK_DONE</promise>" if ok else "prompt incomplete")
    """)
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "command")
    assert result.returncode == 0, result.stdout + result.stderr


def test_large_prompt_through_claude_stdin(make_spec, run_seqrun, project):
    details = "\n".join(f"  - detail line {i:06d} " + "y" * 60 for i in range(3000))
    make_spec(f"- [ ] 1. Big task\n{details}\n")
    result = run_fake(run_seqrun, project, "--backend", "claude")
    assert result.returncode == 0, result.stderr
    (call,) = calls(project / "calls.jsonl")
    assert len(call["prompt"]) > 200_000 and "detail line 002999" in call["prompt"]
    assert not any(len(a) > 100_000 for a in call["argv"])


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


SPAWNER = """
    import os, subprocess, sys, time
    pids = open(sys.argv[1] + ".pids", "w")
    child = subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"])
    daemon = subprocess.Popen([sys.executable, "-c",
        "import os, signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nos.setsid()\\n"
        "while True: time.sleep(1)"])
    while os.getsid(daemon.pid) != daemon.pid:  # the daemon has left our session: the tree is up
        time.sleep(0.01)
    pids.write(f"{os.getpid()} {child.pid} {daemon.pid}\\n"); pids.flush()
    print("working", flush=True)
    while True:
        time.sleep(1)
"""


def _tree_up(project: Path) -> bool:
    """The SPAWNER agent has started its whole tree (its pids file is complete)."""
    found = list((project / ".kiro" / "specs" / ".seqrun" / "logs").rglob("*.pids"))
    return bool(found) and found[0].read_text().endswith("\n")


@contextlib.contextmanager
def _seqrun_process(project: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """seqrun started in its own session; stopped (and so its agent ended)
    if the test fails before it exits."""
    proc = subprocess.Popen([sys.executable, "-m", "seqrun", *args], cwd=project, env=seqrun_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _wait_until_running(project: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Wait for the agent's tree to be up, then check the state file says so."""
    assert wait_for(lambda: _tree_up(project) or proc.poll() is not None, timeout), "the agent never started"
    assert proc.poll() is None, proc.communicate()
    assert state_of(project)["tasks"]["1"]["status"] == "running"


def _read_pids(project: Path) -> list[int]:
    found = list((project / ".kiro" / "specs" / ".seqrun" / "logs").rglob("*.pids"))
    assert found, "the agent never started"
    return [int(p) for p in found[0].read_text().split()]


def test_timeout_ends_the_agent_and_everything_it_started(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Never finishes\n")
    _command_config(project, SPAWNER)
    start = time.monotonic()
    result = run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", "--timeout", "2",
                        "--reruns", "0", "--kill-grace", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "timeout" in result.stdout
    assert time.monotonic() - start < 20
    pids = _read_pids(project)
    assert len(pids) == 3
    assert not [p for p in pids if _pid_alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_stops_the_run_and_ends_the_agent(sig, make_spec, project):
    make_spec("- [ ] 1. Long\n- [ ] 2. Never reached\n")
    _command_config(project, SPAWNER)
    with _seqrun_process(project, "--no-tmux", "--delay", "0", "--backend", "command",
                         "--kill-grace", "1") as proc:
        _wait_until_running(project, proc)
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    assert time.monotonic() - sent < 10
    assert not [p for p in _read_pids(project) if _pid_alive(p)]
    tasks = state_of(project)["tasks"]
    assert tasks["1"]["status"] == "interrupted" and "interrupted" in tasks["1"]["last_error"]
    # Task 2 never started: no record, no log, so the next run runs it.
    assert "2" not in tasks
    assert not (project / ".kiro" / "specs" / ".seqrun" / "logs" / "feature" / "2").exists()


def test_missing_cli_is_a_usage_error(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Task\n")
    env = {"PATH": os.path.dirname(sys.executable)}
    result = run_seqrun("--no-tmux", "--backend", "codex", env=env)
    assert result.returncode == 4
    assert result.stderr.strip().startswith("ERROR: codex not found on PATH")


def test_unknown_backend_is_a_usage_error(make_spec, run_seqrun):
    make_spec("- [ ] 1. Task\n")
    result = run_seqrun("--backend", "nope")
    assert result.returncode == 4 and "unknown backend 'nope'" in result.stderr


def test_exitfirst_and_maxfail(make_spec, run_seqrun, project):
    make_spec(THREE)
    result = run_fake(run_seqrun, project, "--backend", "claude", "-x", "--reruns", "0",
                      scenario="failed")
    assert result.returncode == 1
    assert tasks_run(project / "calls.jsonl") == ["1"]
    assert "not reached: stopping after 1 failure(s)" in result.stdout
    (project / "calls.jsonl").unlink()
    result = run_fake(run_seqrun, project, "--backend", "claude", "--maxfail", "2", "--reruns", "0",
                      scenario="failed")
    assert result.returncode == 1
    assert "not reached: stopping after 2 failure(s)" in result.stdout
    assert tasks_run(project / "calls.jsonl") == ["1", "2"]


def test_assignment_picks_the_owner_backend_and_is_cached(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Style the login page\n  - [ ] 1.1 Colours\n  - [ ] 1.2 Fonts\n")
    classifier = project / "classify.py"
    classifier.write_text('print(\'Sure: {"type": "ui", "owner_agent": "gemini"}\')\n')
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(classifier))}]\n'
        '[owners]\ngemini = "gemini"\n')
    result = run_fake(run_seqrun, project, "--backend", "claude", "--assign-backend", "command")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c["cli"] for c in calls(project / "calls.jsonl")] == ["gemini", "gemini"]
    state = state_of(project)
    assert state["assignments"] == {"1": {"type": "ui", "owner_agent": "gemini"}}


def test_failed_assignment_falls_back_with_a_warning(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Task\n")
    classifier = project / "classify.py"
    classifier.write_text("print('I cannot decide')\n")
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(classifier))}]\n')
    result = run_fake(run_seqrun, project, "--backend", "claude", "--assign-backend", "command")
    assert result.returncode == 0
    assert "WARNING assignment of task 1" in result.stderr and "using --backend" in result.stderr
    assert [c["cli"] for c in calls(project / "calls.jsonl")] == ["claude"]


def test_prompt_template_file(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Greet\n  - _Requirements: 3.4_\n")
    template = project / "prompt.txt"
    template.write_text("TEAM RULES apply.\nTask ID: {task_id}\n{task_title} for {requirements}\n"
                        "Finish with {done_marker}\n")
    result = run_fake(run_seqrun, project, "--backend", "claude", "--prompt-template", str(template))
    assert result.returncode == 0
    (call,) = calls(project / "calls.jsonl")
    assert call["prompt"] == ("TEAM RULES apply.\nTask ID: 1\nGreet for 3.4\n"
                              "Finish with <promise>TASK_DONE</promise>\n")
    bad = project / "bad.txt"
    bad.write_text("{nope}")
    result = run_fake(run_seqrun, project, "--backend", "claude", "--prompt-template", str(bad), "--fresh")
    assert result.returncode == 4 and "unknown placeholder {nope}" in result.stderr


def test_codex_timeout_env_is_milliseconds(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Slow\n")
    start = time.monotonic()
    result = run_fake(run_seqrun, project, "--backend", "claude", "--reruns", "0",
                      extra_env={"CODEX_TIMEOUT": "1500", "SEQRUN_FAKE_SLEEP": "30"})
    assert result.returncode == 1
    assert "timeout" in result.stdout
    assert time.monotonic() - start < 15


def test_second_interrupt_exits_at_once_and_still_cleans_up(make_spec, project):
    make_spec("- [ ] 1. Stubborn\n")
    # The whole tree ignores SIGTERM; the agent notes each one it gets in <prompt>.term.
    stubborn = SPAWNER.replace(
        "import os, subprocess, sys, time",
        "import os, signal, subprocess, sys, time\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)",
    ).replace(
        "    pids.write(",
        "    signal.signal(signal.SIGTERM, lambda *_: open(sys.argv[1] + '.term', 'w').close())\n"
        "    pids.write(",
    )
    _command_config(project, stubborn)
    with _seqrun_process(project, "--no-tmux", "--delay", "0", "--backend", "command",
                         "--kill-grace", "30") as proc:
        _wait_until_running(project, proc)
        proc.send_signal(signal.SIGINT)
        # The first Ctrl-C was handled: seqrun is ending the agent, which ignores it.
        assert wait_for(lambda: bool(list(project.rglob("*.term"))), 20), "the agent never got SIGTERM"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)  # the agent ignores SIGTERM: don't wait 30 s for it
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert time.monotonic() - sent < 10
    assert not [p for p in _read_pids(project) if _pid_alive(p)]


def test_dash_s_and_dash_v_stream_the_agent_output(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Task\n")
    quiet = run_fake(run_seqrun, project, "--backend", "claude")
    assert '"session_id"' not in quiet.stdout  # by default the output goes to the log only
    for flag in ("-s", "-v"):
        make_spec("- [ ] 1. Task\n")
        shown = run_fake(run_seqrun, project, "--backend", "claude", flag, "--fresh")
        assert shown.returncode == 0
        # Rendered, as a task window shows it: text and tool calls, not JSON.
        lines = shown.stdout.splitlines()
        assert "Added the greeting line to README.md and verified it." in lines, flag
        assert any(line.startswith("▶ Bash  printf") for line in lines), flag
        assert not [line for line in lines if line.startswith('{"type"')], flag
    make_spec("- [ ] 1. Task\n")
    raw = run_fake(run_seqrun, project, "--backend", "claude", "-s", "--window-output", "raw", "--fresh")
    assert raw.returncode == 0
    assert '"type":"result"' in raw.stdout  # the CLI's own stream
