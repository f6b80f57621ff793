"""Reruns that learn, with the real CLIs against the fake LLM on 127.0.0.1.

* cut off: attempt 1 is stuck in a tool call (``sleep``) until seqrun's
  ``--timeout`` ends it; attempt 2's argv resumes attempt 1's session id, and
  the fake LLM receives attempt 1's conversation in attempt 2's first request;
* verification failed: attempt 1 says done, ``--verify`` fails once printing a
  token; attempt 2 is a fresh session whose first request holds that token.

The CLI is started through a small wrapper that records its argv.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import CLIS, AgentRun, Cli

pytestmark = [pytest.mark.agents, pytest.mark.slow]

SPEC = "# Tasks\n\n- [ ] 1. Add a greeting\n"
#: What attempt 1's full prompt has and attempt 2's continuation prompt has not.
ONLY_IN_THE_FIRST_PROMPT = "Do not mark tasks in"


def record_argv(run: AgentRun) -> None:
    """Start the CLI through a wrapper that appends its argv (one JSON list a line) to argv.jsonl."""
    wrapper = run.project / f"{run.cli.backend}-argv"
    log = run.project / "argv.jsonl"
    wrapper.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                       f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                       f"os.execv({str(run.cli.executable)!r}, [{str(run.cli.executable)!r}, *sys.argv[1:]])\n")
    wrapper.chmod(0o755)
    (run.project / "seqrun.toml").write_text(f'[backends.{run.cli.backend}]\nexecutable = "{wrapper}"\n')


def argvs(run: AgentRun) -> list[list[str]]:
    return [json.loads(line) for line in (run.project / "argv.jsonl").read_text().splitlines()]


def explain(run: AgentRun, result: subprocess.CompletedProcess[str]) -> str:
    requests = [(r.attempt, r.answer, r.path) for r in run.fake.requests]
    return (f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}\n"
            f"--- agent output\n{run.logs()[-6000:]}\n--- requests {requests}\n--- escapes {run.fake.escapes}")


def first_request(run: AgentRun, attempt: int) -> str:
    main = [r for r in run.fake.main_requests() if r.attempt == attempt]
    assert main, f"no request of attempt {attempt}"
    return json.dumps(main[0].body)


#: What each pinned CLI puts on argv to continue a session (README: "Reruns and resume").
RESUME_ARGS = {
    "claude": lambda sid: ["--resume", sid],
    "codex": lambda sid: ["resume", sid],
    "opencode": lambda sid: ["--session", sid],
    "gemini": lambda sid: ["--resume", sid],
}


@pytest.mark.parametrize("cli", [CLIS[n] for n in ("claude", "codex", "gemini", "opencode")],
                         ids=["claude", "codex", "gemini", "opencode"])
@pytest.mark.parametrize("mode", ["pty"])
def test_a_timed_out_attempt_continues_its_own_session(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    run.spec(SPEC)
    record_argv(run)
    run.fake.script("stall", "done")
    result = run.seqrun("--reruns", "1", "--timeout", "25", "--kill-grace", "2", timeout=300)
    why = explain(run, result)
    assert result.returncode == 0, why
    history = run.state()["tasks"]["1"]["history"]
    assert [h["kind"] for h in history] == ["timeout", "passed"], why
    session = history[0]["session_id"]
    assert session and history[1]["session_id"] == session, why
    first, second = argvs(run)
    wanted = RESUME_ARGS[cli.backend](session)
    assert not any(a in first for a in ("--resume", "resume", "--session")), why
    assert any(second[i:i + len(wanted)] == wanted for i in range(len(second))), (second, why)
    # The CLI sent attempt 1's conversation (its full prompt) with attempt 2's first request.
    assert ONLY_IN_THE_FIRST_PROMPT in first_request(run, 1), why
    assert ONLY_IN_THE_FIRST_PROMPT in first_request(run, 2), why
    assert run.fake.escapes == [], why


@pytest.mark.parametrize("cli", [CLIS[n] for n in ("claude", "codex", "gemini", "opencode")],
                         ids=["claude", "codex", "gemini", "opencode"])
@pytest.mark.parametrize("mode", ["pty"])
def test_a_failed_verification_is_a_fresh_session_told_the_output(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    run.spec(SPEC)
    record_argv(run)
    run.fake.script("done")
    check = "sh -c 'if [ -e verified-once ]; then exit 0; fi; touch verified-once; echo VERIFY-TOKEN-$((40 + 2)); exit 1'"
    result = run.seqrun("--reruns", "1", "--verify", check, timeout=300)
    why = explain(run, result)
    assert result.returncode == 0, why
    history = run.state()["tasks"]["1"]["history"]
    assert [h["kind"] for h in history] == ["verification", "passed"], why
    assert history[0]["session_id"] != history[1]["session_id"], why
    second = argvs(run)[1]
    assert not any(a in second for a in ("--resume", "resume", "--session")), (second, why)
    request = first_request(run, 2)
    assert "VERIFY-TOKEN-42" in request and "touch verified-once" in request, why
    assert "VERIFY-TOKEN-42" not in first_request(run, 1), why


#: Where each CLI keeps its sessions under the agent's HOME (removing it makes a session "gone").
SESSION_STORE = {"claude": ".claude/projects", "codex": ".codex/sessions"}


@pytest.mark.parametrize("cli", [CLIS[n] for n in ("claude", "codex")], ids=["claude", "codex"])
@pytest.mark.parametrize("mode", ["pty"])
def test_a_session_that_is_gone_gives_way_to_a_fresh_attempt(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    import shutil

    run = agent_run
    run.spec(SPEC)
    record_argv(run)
    run.fake.script("stall", "done")
    first = run.seqrun("--timeout", "25", "--kill-grace", "2", timeout=300)
    assert first.returncode == 1, explain(run, first)
    session = run.state()["tasks"]["1"]["history"][0]["session_id"]
    assert session, explain(run, first)
    shutil.rmtree(run.home / SESSION_STORE[cli.backend])
    second = run.seqrun(timeout=300)
    why = explain(run, second)
    assert second.returncode == 0, why
    history = run.state()["tasks"]["1"]["history"]
    assert [h["kind"] for h in history] == ["timeout", "session-gone", "passed"], why
    resumed, fresh = argvs(run)[1:]
    assert session in resumed and session not in fresh, why
    assert "[session-gone]" in second.stdout, why
