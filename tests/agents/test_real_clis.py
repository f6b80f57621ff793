"""seqrun end to end with the real agent CLIs from npm, against a fake LLM on 127.0.0.1.

The fakes in tests/fakes print each CLI's format and so prove the parsers; these
tests prove the rest: that the argv each backend builds is one the installed
CLI accepts (non-interactive, tools allowed without asking, model passed on),
that the environment reaches it in pty and in tmux mode, and that the verdict
comes out right from the exit status and the stream as the CLI really writes
them. Each test runs ``python -m seqrun`` on a one-task spec:

* done  the agent runs a shell tool (writes greeting.txt), then answers with
        TASK_DONE → exit 0, tasks.md ticked;
* halt  the answer has HALT → exit 2;
* echo  a tool prints the prompt (both markers in the tool output), the answer
        has no marker → failed, exit 1;
* 429   every request of the first attempt gets the vendor's rate-limit error,
        resetting a few seconds ahead → seqrun waits (the reset the CLI reports,
        or --rate-limit-backoff), runs the task again, passes;
* 500   HTTP 500 → failed, exit 1, no waiting.

Install the CLIs with ``scripts/install-agent-clis``; without them these tests
skip. Run just these with ``python -m pytest -m agents``.
"""
from __future__ import annotations

import subprocess
import time

import pytest

from .conftest import CLIS, AgentRun, Cli
from .fake_llm_server import DONE, GREETING_FILE, HALT

pytestmark = [pytest.mark.agents, pytest.mark.slow]

SPEC = "# Tasks\n\n- [ ] 1. Add a greeting\n  - _Requirements: 1.1_\n"
TICKED = "# Tasks\n\n- [x] 1. Add a greeting\n  - _Requirements: 1.1_\n"
MODES = ["pty", "tmux"]

#: What each CLI tells about the reset of the 429 the fake sends, as verified
#: against the real CLIs (see the README's "Tested with" table):
#:   "minute"  the reset as a wall-clock time to the minute ("try again at 2:06 AM")
#:   "exact"   the reset itself, to the second (or "retry in Ns" as the CLI exits)
#:   "after"   a retry-after, read when the CLI gives up after its own retries
#:   None      nothing: seqrun falls back to --rate-limit-backoff
RESET_REPORTED: dict[str, str | None] = {
    "codex": "minute",     # usage_limit_reached {resets_at} → "try again at H:MM AM"
    "claude": None,        # API key: "API Error: Request rejected (429) · …", no time
    "gemini": "exact",     # RetryInfo retryDelay → "Please retry in 4s." (stderr and result.error)
    "opencode": "after",   # retry-after header in error.data.responseHeaders
}
BACKOFF = 2.0  # --rate-limit-backoff in AgentRun.seqrun


def params(*names: str):
    return pytest.mark.parametrize("cli", [CLIS[n] for n in names], ids=list(names))


every_cli = params(*CLIS)
every_mode = pytest.mark.parametrize("mode", MODES)


def explain(run: AgentRun, result: subprocess.CompletedProcess[str]) -> str:
    """Everything worth reading when a test fails."""
    requests = [(r.attempt, r.protocol, r.answer, r.path) for r in run.fake.requests]
    return (f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}\n"
            f"--- agent output\n{run.logs()}\n--- requests {requests}\n--- escapes {run.fake.escapes}")


def check_common(run: AgentRun, result: subprocess.CompletedProcess[str]) -> None:
    """What holds for every run: the CLI talked to the fake, in its own protocol,
    with the model seqrun passed, and to nothing else."""
    why = explain(run, result)
    assert run.fake.requests, "the CLI never reached the fake LLM\n" + why
    assert {r.protocol for r in run.fake.requests} <= {run.cli.protocol}, why
    assert run.fake.models_requested() == {run.cli.requested_model}, why
    assert run.fake.escapes == [], "the CLI tried to reach another host\n" + why


def task_report(run: AgentRun) -> dict:
    (report,) = run.events("TaskReport")
    return report


@every_cli
@every_mode
def test_done_ticks_the_task_and_exits_0(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    folder = run.spec(SPEC)
    run.fake.script("done")
    result = run.seqrun()
    why = explain(run, result)
    assert result.returncode == 0, why
    check_common(run, result)
    assert (folder / "tasks.md").read_text() == TICKED, why
    # The tool call really ran, without a permission prompt, in the workdir.
    assert (run.project / GREETING_FILE).read_text() == "Hello from seqrun\n", why
    state = run.state()
    assert state["completed"] == ["1"] and state["tasks"]["1"]["status"] == "passed", why
    report = task_report(run)
    assert report["outcome"] == "passed" and DONE in report["final_message"], why
    usage = report["usage"] or {}
    assert (usage.get("input_tokens") or 0) > 0 and (usage.get("output_tokens") or 0) > 0, why
    # Two model calls: the tool call, then the answer after its result.
    assert [r.answer for r in run.fake.main_requests()] == ["done:tool", "done:final"], why
    if mode == "tmux":
        windows = subprocess.run(["tmux", "list-windows", "-a", "-F", "#{session_name} #{window_name}"],
                                 env=run.env(), capture_output=True, text=True).stdout.split("\n")
        assert f"agents-{cli.backend} task-1" in windows, windows


@every_cli
@every_mode
def test_halt_stops_with_exit_2(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    folder = run.spec(SPEC)
    run.fake.script("halt")
    result = run.seqrun()
    why = explain(run, result)
    assert result.returncode == 2, why
    check_common(run, result)
    assert (folder / "tasks.md").read_text() == SPEC, why
    state = run.state()
    assert state["halted"] is True and state["halted_task"] == "1", why
    report = task_report(run)
    assert report["outcome"] == "halted" and HALT in report["final_message"], why
    assert "HALTED" in result.stdout, why


@every_cli
@every_mode
def test_prompt_echoed_by_a_tool_is_not_done(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    folder = run.spec(SPEC)
    run.fake.script("echo")
    result = run.seqrun()
    why = explain(run, result)
    assert result.returncode == 1, why
    check_common(run, result)
    # The trap was sprung: the agent's output holds both markers (the prompt,
    # printed by the tool) ...
    output = run.logs()
    assert DONE in output and HALT in output, why
    # ... and still the task is not done: the final message has no marker.
    assert (folder / "tasks.md").read_text() == SPEC, why
    state = run.state()
    assert state["failed"] == ["1"] and state["halted"] is False, why
    report = task_report(run)
    assert report["outcome"] == "failed", why
    assert report["reason"] == "no TASK_DONE marker in the final message", why
    assert [r.answer for r in run.fake.main_requests()] == ["echo:tool", "echo:final"], why


@every_cli
@every_mode
def test_rate_limit_waits_for_the_reset_then_passes(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    folder = run.spec(SPEC)
    run.fake.script("429", "done")
    result = run.seqrun()
    why = explain(run, result)
    assert result.returncode == 0, why
    check_common(run, result)
    assert (folder / "tasks.md").read_text() == TICKED, why
    task = run.state()["tasks"]["1"]
    # The attempt after the wait resumes the limited one's session (--resume auto). gemini
    # keeps no session when its first request was refused: the resume finds it gone, and a
    # fresh attempt follows at once (no wait, no rerun).
    kinds = ["rate-limited", "session-gone", "passed"] if cli.backend == "gemini" else ["rate-limited", "passed"]
    assert [h["kind"] for h in task["history"]] == kinds, why
    retry = len(kinds)
    assert run.fake.attempts_seen() == [1, retry], why
    assert {r.answer for r in run.fake.requests if r.attempt == 1} == {"429"}, why
    # A limit is neither a failure nor a rerun: one wait, then the same task passed.
    assert task["status"] == "passed" and task["rate_limit_waits"] == 1, why
    (wait,) = run.events("RateLimitWait")
    check_reset(cli, run, wait, why)
    # seqrun slept as long as it said before attempt 2 reached the fake.
    last_limited = max(r.time for r in run.fake.requests if r.attempt == 1)
    first_retry = min(r.time for r in run.fake.requests if r.attempt == retry)
    assert first_retry - last_limited >= wait["seconds"] - 0.5, why


def check_reset(cli: Cli, run: AgentRun, wait: dict, why: str) -> None:
    announced = run.fake.reset_at[1]  # when the fake said the limit resets
    kind = RESET_REPORTED[cli.backend]
    reset_at = wait["reset_at"]
    if kind is None:
        assert reset_at is None and wait["seconds"] == pytest.approx(BACKOFF), why
        return
    assert reset_at is not None, f"{cli.backend} should report a reset time\n{why}"
    if kind == "minute":  # the wall-clock minute the reset falls in
        assert announced - 60 < reset_at <= announced, why
    elif kind == "exact":  # "retry in Ns", counted from when seqrun reads it
        assert announced - 1.5 <= reset_at <= announced + 6, why
    else:  # "after": the CLI retried by itself until the end of the limit, then gave up
        assert reset_at >= announced - 2.5, why
    assert 0 <= wait["seconds"] <= run.fake.reset_in + 2, why


@every_cli
@every_mode
def test_server_error_fails_without_waiting(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    run = agent_run
    folder = run.spec(SPEC)
    run.fake.script("500")
    result = run.seqrun()
    why = explain(run, result)
    assert result.returncode == 1, why
    check_common(run, result)
    assert (folder / "tasks.md").read_text() == SPEC, why
    task = run.state()["tasks"]["1"]
    assert task["status"] == "failed" and task["rate_limit_waits"] == 0, why
    assert run.events("RateLimitWait") == [], why
    assert run.fake.attempts_seen() == [1], why  # --reruns 0: one dispatch
    report = task_report(run)
    assert report["outcome"] == "failed", why
    reason = report["reason"].lower()
    assert "500" in reason or "internal" in reason or "server" in reason or "high demand" in reason, why


@params("claude")
@every_mode
def test_claude_subscription_limit_waits_until_resets_at(cli: Cli, mode: str, agent_run: AgentRun) -> None:
    """With a subscription (OAuth) token, claude reports the limit as a
    ``rate_limit_event`` with ``resetsAt``: seqrun waits until exactly then."""
    run = agent_run
    run.extra_env.update(ANTHROPIC_API_KEY=None, CLAUDE_CODE_OAUTH_TOKEN="sk-ant-oat01-fake-llm")
    run.spec(SPEC)
    run.fake.script("429", "done")
    start = time.time()
    result = run.seqrun()
    why = explain(run, result)
    assert result.returncode == 0, why
    check_common(run, result)
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in run.fake.requests), why
    (wait,) = run.events("RateLimitWait")
    announced = run.fake.reset_at[1]
    assert wait["reset_at"] == int(announced), why  # the fake's epoch second, verbatim
    assert "session limit" in wait["reason"], why
    first_retry = min(r.time for r in run.fake.requests if r.attempt == 2)
    assert first_retry >= int(announced) - 0.5 and first_retry - start < 60, why
