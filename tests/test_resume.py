"""``--resume``: after an attempt that was cut off, the next one continues that
exact CLI session; after one that completed and failed, a fresh session with
the feedback; a session that is gone gives way to a fresh attempt at once.

The fake CLIs (tests/fakes) print the real transcripts, session ids included;
tests/agents/test_resume_real.py does the same against the real CLIs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import read_state_file

SPECS = Path(".kiro") / "specs"
#: The session ids the recorded "done" transcripts carry.
CLAUDE_SESSION = "89f856e2-3f78-4d28-ad0f-747ec507aba4"
CODEX_THREAD = "01a20b16-c8ff-7e41-925d-cbf8eeb4e042"


def script(project: Path, plan: dict[str, object]) -> dict[str, str]:
    (project / "script.json").write_text(json.dumps(plan))
    return {"SEQRUN_FAKE_SCRIPT": str(project / "script.json"), "SEQRUN_FAKE_LOG": str(project / "calls.jsonl")}


def calls(project: Path) -> list[dict]:
    return [json.loads(line) for line in (project / "calls.jsonl").read_text().splitlines()]


def history(project: Path, task: str = "1") -> list[dict]:
    state = read_state_file(project / SPECS / "SEQUENTIAL_STATE.json")
    return state["specs"]["feature"]["tasks"][task]["history"]


def prompt(project: Path, attempt: int, task: str = "1") -> str:
    return (project / SPECS / ".seqrun" / "logs" / "feature" / task / f"{attempt}.prompt.md").read_text()


RUN = ("--no-tmux", "--delay", "0", "--reruns", "1", "--kill-grace", "1")


@pytest.mark.parametrize("backend, session, resume_args", [
    ("claude", CLAUDE_SESSION, ["--resume", CLAUDE_SESSION]),
    ("codex", CODEX_THREAD, ["resume", CODEX_THREAD, "-"]),
])
def test_a_timed_out_attempt_is_resumed_by_its_session_id(make_spec, project, run_seqrun, backend, session,
                                                           resume_args):
    make_spec("- [ ] 1. Greet the user\n")
    env = script(project, {"1": ["done@sleep=30", "done"]})
    result = run_seqrun("--backend", backend, *RUN, "--timeout", "2", env=env, fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = calls(project)
    assert "resume" not in first["argv"] and "--resume" not in first["argv"]
    assert second["argv"][-len(resume_args):] == resume_args
    assert [(h["kind"], h["session_id"]) for h in history(project)] == [("timeout", session), ("passed", session)]
    # A short continuation prompt, saying what cut the session off.
    text = prompt(project, 2)
    assert "in the same session" in text and "(timeout): timeout: no verdict after 2s" in text
    assert "## Inputs" not in text


def test_a_completed_failure_starts_a_fresh_session_with_the_feedback(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Greet the user\n")
    env = script(project, {"1": ["echo_not_done", "done"]})
    result = run_seqrun("--backend", "claude", *RUN, env=env, fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all("--resume" not in c["argv"] for c in calls(project))
    assert "did not pass (no-marker)" in prompt(project, 2)


def test_always_resumes_a_completed_failure_and_never_resumes_nothing(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Greet the user\n- [ ] 2. Second\n")
    env = script(project, {"1": ["echo_not_done", "done"], "2": ["done@sleep=30", "done"]})
    result = run_seqrun("--backend", "claude", *RUN, "--timeout", "2", "--resume", "always", "-k", "1",
                        env=env, fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--resume" in calls(project)[1]["argv"]
    result = run_seqrun("--backend", "claude", *RUN, "--timeout", "2", "--resume", "never", "-k", "2",
                        env=env, fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [("--resume" in c["argv"]) for c in calls(project)] == [False, True, False, False]


def test_a_resume_works_across_invocations_from_the_state_file(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Greet the user\n")
    env = script(project, {"1": ["done@sleep=30", "done"]})
    first = run_seqrun("--backend", "claude", *RUN, "--reruns", "0", "--timeout", "2", env=env, fakes=True)
    assert first.returncode == 1, first.stdout + first.stderr
    second = run_seqrun("--backend", "claude", *RUN, "--reruns", "0", env=env, fakes=True)
    assert second.returncode == 0, second.stdout + second.stderr
    assert calls(project)[1]["argv"][-2:] == ["--resume", CLAUDE_SESSION]


GONE = """\
import json, sys
if "--resume" in sys.argv:
    print("No conversation found with session ID: " + sys.argv[sys.argv.index("--resume") + 1], file=sys.stderr)
    print(json.dumps({"type": "result", "subtype": "error_during_execution", "is_error": True,
                      "errors": ["No conversation found"], "session_id": "x"}))
    sys.exit(1)
sys.stdin.read()
print(json.dumps({"type": "system", "subtype": "init", "session_id": "s-gone-1"}))
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "session_id": "s-gone-1",
                  "result": "I could not finish." if open("count").read() == "0" else "<promise>TASK_DONE</promise>"}))
"""


def test_a_session_that_is_gone_gives_way_to_a_fresh_attempt_at_once(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Greet the user\n")
    (project / "fake-claude.py").write_text(GONE)
    (project / "count").write_text("0")
    (project / "seqrun.toml").write_text(
        f'[backends.claude]\nexecutable = "{project / "claude-wrapper"}"\n')
    wrapper = project / "claude-wrapper"
    # The first call fails (no marker) after its session started; a resume finds it gone.
    wrapper.write_text(f"#!/bin/sh\npython3 {project / 'fake-claude.py'} \"$@\"; status=$?\n"
                       f"echo 1 > {project / 'count'}\nexit $status\n")
    wrapper.chmod(0o755)
    result = run_seqrun("--backend", "claude", "--no-tmux", "--delay", "0", "--reruns", "1", "--resume", "always")
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = [h["kind"] for h in history(project)]
    assert kinds == ["no-marker", "session-gone", "passed"]
    assert "[session-gone]" in result.stdout
    # The fresh attempt learns from the attempt before the gone session, not from it.
    assert "did not pass (no-marker)" in prompt(project, 3)


def test_a_run_killed_mid_attempt_is_resumed_by_the_next_one(make_spec, project):
    import os
    import signal
    import subprocess
    import sys

    from conftest import seqrun_env, wait_for

    make_spec("- [ ] 1. Greet the user\n")
    env = script(project, {"1": ["done@sleep=60", "done"]})
    argv = [sys.executable, "-m", "seqrun", "--backend", "claude", "--no-tmux", "--delay", "0"]
    proc = subprocess.Popen(argv, cwd=project, env=seqrun_env(env, fakes=True), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    # The CLI named its session: seqrun keeps it beside the attempt's log at once.
    kept = project / SPECS / ".seqrun" / "logs" / "feature" / "1" / "1.session"
    assert wait_for(lambda: kept.exists() and kept.read_text().strip() == CLAUDE_SESSION, timeout=30)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    result = subprocess.run(argv, cwd=project, env=seqrun_env(env, fakes=True), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(project)[1]["argv"][-2:] == ["--resume", CLAUDE_SESSION]
    assert [(h["kind"], h["session_id"]) for h in history(project)] == [
        ("interrupted", CLAUDE_SESSION), ("passed", CLAUDE_SESSION)]
