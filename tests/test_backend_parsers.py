"""The output parsers against the recorded agent transcripts.

Every case of ``tests/data/agent-transcripts/cases.json`` is fed the way a pty
gives it (stdout then stderr, merged), also with ``\\r\\n`` endings, with a
noise line between events, and with stderr first; then hand-written checks of
reset times, usage, billing and final messages.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import feed_transcript, transcript_backends, transcript_lines

from seqrun.backends import BUILTIN_BACKENDS as _BUILTIN_NAMES
from seqrun.backends import load_builtin

BUILTIN_BACKENDS = tuple(load_builtin(name) for name in _BUILTIN_NAMES)
from seqrun.backends.base import DONE_MARKERS, OutputParser
from seqrun.backends.claude import ClaudeBackend
from seqrun.backends.codeagent_wrapper import CodeagentWrapperBackend
from seqrun.backends.codex import CodexBackend
from seqrun.backends.command import CommandBackend
from seqrun.backends.gemini import GeminiBackend
from seqrun.backends.opencode import OpenCodeBackend
from seqrun.outcome import Outcome, Verdict

TRANSCRIPTS = Path(__file__).parent / "data" / "agent-transcripts"
CASES: list[dict[str, Any]] = json.loads((TRANSCRIPTS / "cases.json").read_text())["cases"]
WRAPPER_CASES: list[dict[str, Any]] = json.loads((TRANSCRIPTS / "codeagent-wrapper" / "cases.json").read_text())["cases"]

PARSERS = transcript_backends()
EXPECTED = {
    "done": Outcome.PASSED,
    "halt": Outcome.HALTED,
    "failed": Outcome.FAILED,
    "not_done": Outcome.FAILED,
    "rate_limited": Outcome.RATE_LIMITED,
}
#: When the transcripts were recorded (the reset times in them are relative to this).
RECORDED = datetime(2026, 11, 24, 1, 7, tzinfo=timezone.utc)
UTC = timezone.utc
VARIANTS = ("lf", "crlf", "noise", "stderr_first")


lines_of = transcript_lines


def run(parser: OutputParser, lines: list[str], exit_status: int, now: datetime = RECORDED, variant: str = "lf") -> Verdict:
    return feed_transcript(parser, lines, exit_status, now, variant)


def verdict_of(cli: str, case_name: str, now: datetime = RECORDED) -> Verdict:
    (case,) = [c for c in CASES + WRAPPER_CASES if c["cli"] == cli and c["case"] == case_name]
    return run(PARSERS[cli]().parser(), lines_of(case), case["exit_code"], now)


def test_all_36_cases_are_here() -> None:
    assert len(CASES) == 36
    assert {c["cli"] for c in CASES} == {"codex", "claude", "gemini", "opencode", "kiro"}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c['cli']}-{c['case']}" for c in CASES])
def test_case_verdict(case: dict[str, Any], variant: str) -> None:
    parser = PARSERS[case["cli"]]().parser()
    lines = lines_of(case, stderr_first=variant == "stderr_first")
    verdict = run(parser, lines, case["exit_code"], variant=variant)
    assert verdict.outcome is EXPECTED[case["expected_verdict"]], verdict.reason
    if verdict.outcome is Outcome.PASSED:
        # A pass has no reason, and rests on the marker in the agent's final message.
        assert verdict.reason == ""
        assert any(marker in (verdict.final_message or "") for marker in DONE_MARKERS), verdict
    else:
        assert verdict.reason.strip(), verdict  # every other verdict says why


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", WRAPPER_CASES, ids=[c["case"] for c in WRAPPER_CASES])
def test_codeagent_wrapper_case(case: dict[str, Any], variant: str) -> None:
    """Synthesized from the wrapper's source (see that folder's README)."""
    parser = CodeagentWrapperBackend().parser()
    lines = lines_of(case, stderr_first=variant != "lf")
    if variant == "noise":
        lines = ["Warning: something", *lines]
        variant = "lf"
    verdict = run(parser, lines, case["exit_code"], variant=variant)
    assert verdict.outcome is EXPECTED[case["expected_verdict"]], verdict.reason


# -- reset times ------------------------------------------------------------------


def _claude_lines(name: str) -> list[str]:
    return (TRANSCRIPTS / "claude" / name).read_text().splitlines()


def test_claude_reset_from_rate_limit_event() -> None:
    events = [json.loads(line) for line in _claude_lines("rate_limited.jsonl")]
    (limit,) = [e for e in events if e["type"] == "rate_limit_event"]
    verdict = verdict_of("claude", "rate_limited")
    assert verdict.reset_at == limit["rate_limit_info"]["resetsAt"] == 1795493500
    assert verdict.reason.startswith("session limit reached; resets")
    weekly = verdict_of("claude", "rate_limited_weekly")
    assert weekly.reset_at == 1795742353
    assert verdict_of("claude", "rate_limited_api_key").reset_at is None


def test_claude_reset_from_text_when_no_event() -> None:
    for name, expected in (
        ("rate_limited.jsonl", datetime(2026, 11, 24, 4, 11, tzinfo=UTC)),
        ("rate_limited_weekly.jsonl", datetime(2026, 11, 27, 1, 19, tzinfo=UTC)),
    ):
        lines = [line for line in _claude_lines(name) if '"rate_limit_event"' not in line]
        verdict = run(ClaudeBackend().parser(), lines, 1)
        assert verdict.outcome is Outcome.RATE_LIMITED
        assert verdict.reset_at == expected.timestamp()


def test_claude_reset_text_already_past_today_means_tomorrow() -> None:
    lines = [line for line in _claude_lines("rate_limited.jsonl") if '"rate_limit_event"' not in line]
    now = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    verdict = run(ClaudeBackend().parser(), lines, 1, now=now)
    assert verdict.reset_at == datetime(2026, 11, 25, 4, 11, tzinfo=UTC).timestamp()


def test_claude_allowed_warning_is_not_a_limit() -> None:
    assert verdict_of("claude", "halt").outcome is Outcome.HALTED


def test_gemini_retry_in_is_relative_to_now() -> None:
    now = datetime(2026, 11, 24, 1, 6, 34, tzinfo=UTC)
    expected = now.timestamp() + 9 * 3600 + 41 * 60 + 12.3
    for case in ("rate_limited", "rate_limited_jsonmode"):
        verdict = verdict_of("gemini", case, now=now)
        assert verdict.outcome is Outcome.RATE_LIMITED
        assert verdict.reset_at == pytest.approx(expected)
        assert "daily quota" in verdict.reason


def _codex_limit(message: str) -> list[str]:
    return [
        json.dumps({"type": "turn.started"}),
        json.dumps({"type": "error", "message": message}),
        json.dumps({"type": "turn.failed", "error": {"message": message}}),
    ]


def test_codex_reset_same_day_local_time() -> None:
    now = datetime(2026, 11, 24, 1, 7)  # naive: local time, as codex prints it
    verdict = verdict_of("codex", "rate_limited", now=now)
    assert verdict.outcome is Outcome.RATE_LIMITED
    assert verdict.reset_at == datetime(2026, 11, 24, 3, 26).timestamp()
    assert verdict.reason == "usage limit reached; resets 03:26"


def test_codex_reset_already_past_means_tomorrow() -> None:
    now = datetime(2026, 11, 24, 23, 50)
    verdict = verdict_of("codex", "rate_limited", now=now)
    assert verdict.reset_at == datetime(2026, 11, 25, 3, 26).timestamp()


def test_codex_reset_printed_a_moment_ago_is_not_tomorrow() -> None:
    now = datetime(2026, 11, 24, 3, 26, 30)
    verdict = verdict_of("codex", "rate_limited", now=now)
    assert verdict.reset_at == datetime(2026, 11, 24, 3, 26).timestamp()


def test_codex_reset_with_a_date() -> None:
    message = "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro) or try again at Jan 1st, 2030 12:00 AM."
    verdict = run(CodexBackend().parser(), _codex_limit(message), 1, now=datetime(2026, 11, 24, 1, 7))
    assert verdict.outcome is Outcome.RATE_LIMITED
    assert verdict.reset_at == datetime(2030, 1, 1, 0, 0).timestamp()


def test_codex_limit_without_reset_time() -> None:
    message = "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro) or try again later."
    verdict = run(CodexBackend().parser(), _codex_limit(message), 1)
    assert verdict.outcome is Outcome.RATE_LIMITED
    assert verdict.reset_at is None
    plain_429 = run(CodexBackend().parser(), _codex_limit("exceeded retry limit, last status: 429 Too Many Requests"), 1)
    assert plain_429.outcome is Outcome.RATE_LIMITED


def _opencode_429(headers: dict[str, str]) -> list[str]:
    error = {"name": "APIError", "data": {"message": "Rate limit reached", "statusCode": 429, "isRetryable": True, "responseHeaders": headers}}
    return [json.dumps({"type": "error", "timestamp": 0, "sessionID": "ses_x", "error": error})]


def test_opencode_retry_after() -> None:
    verdict = verdict_of("opencode", "rate_limited")
    assert verdict.reset_at == RECORDED.timestamp() + 1  # "retry-after": "1" in the file
    assert verdict.reason.startswith("HTTP 429: APIError")
    seconds = run(OpenCodeBackend().parser(), _opencode_429({"retry-after": "120"}), 1)
    assert seconds.reset_at == RECORDED.timestamp() + 120
    millis = run(OpenCodeBackend().parser(), _opencode_429({"retry-after-ms": "1500", "retry-after": "9"}), 1)
    assert millis.reset_at == RECORDED.timestamp() + 1.5
    date = run(OpenCodeBackend().parser(), _opencode_429({"Retry-After": "Tue, 24 Nov 2026 02:00:00 GMT"}), 1)
    assert date.reset_at == datetime(2026, 11, 24, 2, 0, tzinfo=UTC).timestamp()


def test_kiro_limits_have_no_reset_time() -> None:
    for case in ("rate_limited", "rate_limited_monthly"):
        verdict = verdict_of("kiro", case)
        assert verdict.outcome is Outcome.RATE_LIMITED
        assert verdict.reset_at is None
    assert "ThrottlingException" in verdict_of("kiro", "rate_limited").reason


# -- usage, billing, final messages, reasons ----------------------------------------------


def test_usage_figures() -> None:
    codex = verdict_of("codex", "done").usage
    assert codex is not None and (codex.input_tokens, codex.output_tokens) == (2300, 42)
    claude = verdict_of("claude", "done").usage
    assert claude is not None and claude.cost_usd == pytest.approx(0.01585)
    assert (claude.input_tokens, claude.output_tokens) == (2900, 54)
    opencode = verdict_of("opencode", "done").usage  # summed over the two steps
    assert opencode is not None and (opencode.input_tokens, opencode.output_tokens, opencode.cost_usd) == (1750, 42, 0)
    gemini = verdict_of("gemini", "done").usage
    assert gemini is not None and gemini.total_tokens == 1617
    jsonmode = verdict_of("gemini", "done_jsonmode").usage
    assert jsonmode is not None and (jsonmode.input_tokens, jsonmode.output_tokens) == (1580, 37)


def test_codex_billing_is_a_failure_not_a_limit() -> None:
    verdict = run(CodexBackend().parser(), _codex_limit("Quota exceeded. Check your plan and billing details."), 1)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.billing is True
    assert verdict.reset_at is None


def test_gemini_free_tier_quota_is_a_limit_not_billing() -> None:
    verdict = verdict_of("gemini", "rate_limited")
    assert verdict.billing is False


def test_final_messages() -> None:
    done = "Added the greeting line to README.md and verified it.\n<promise>TASK_DONE</promise>"
    for cli, case in (("codex", "done"), ("claude", "done"), ("gemini", "done"), ("gemini", "done_jsonmode"), ("opencode", "done"), ("kiro", "done")):
        assert verdict_of(cli, case).final_message == done, (cli, case)
    echo = verdict_of("gemini", "echo_not_done")
    assert echo.final_message is not None and echo.final_message.startswith("I read TASK.md")
    assert echo.reason == "no TASK_DONE marker in the final message"
    plain = verdict_of("codex", "echo_not_done.plain")
    assert plain.final_message is not None and "<promise>" not in plain.final_message


def test_failure_reasons() -> None:
    assert "reasoning.effort" in verdict_of("codex", "failed").reason
    assert verdict_of("claude", "failed").reason.startswith("HTTP 500: API Error: 500")
    assert verdict_of("gemini", "failed").reason == "HTTP 400: Request contains an invalid argument."
    assert verdict_of("opencode", "failed").reason.startswith("ContextOverflowError: This model's maximum context length")
    assert verdict_of("kiro", "failed").reason == "ValidationException: Input is too long for requested model."
    assert verdict_of("kiro", "auth_failed").reason.startswith("Not authenticated")


def test_codex_warnings_are_not_failures() -> None:
    # the model-metadata item.completed{type:error} and "Reconnecting... n/5"
    assert verdict_of("codex", "done_after_reconnect").outcome is Outcome.PASSED


def test_claude_result_is_error_fails_even_with_subtype_success() -> None:
    verdict = verdict_of("claude", "failed")
    assert verdict.outcome is Outcome.FAILED
    assert verdict.final_message is None


# -- robustness ---------------------------------------------------------------------------


ALL_PARSERS = [*PARSERS.values(), CommandBackend]


@pytest.mark.parametrize("backend", ALL_PARSERS, ids=lambda b: b.name)
def test_bare_exit_status_is_a_failure(backend: type) -> None:
    verdict = backend().parser().finish(137, now=RECORDED)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reason == "exit status 137"


@pytest.mark.parametrize("backend", ALL_PARSERS, ids=lambda b: b.name)
def test_parsers_never_raise(backend: type) -> None:
    parser = backend().parser()
    junk = [
        "", "{", "}", "[1, 2]", '{"type": 5}', '{"type": "result", "result": null, "usage": "x"}',
        '{"type": "item.completed", "item": []}', '{"type": "step_finish", "part": {"tokens": 3}}',
        '{"type": "message", "role": "assistant", "content": {"a": 1}}', '{"type": "error", "error": 7}',
        "\x1b[31m\x00\xff\ud800 garbage", "x" * 200_000, '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":"soon"}}',
    ]
    for line in junk:
        parser.feed_line(line)
    for status in (0, 1, 173):
        assert isinstance(parser.finish(status, now=RECORDED), Verdict)
    assert isinstance(parser.finish(0), Verdict)


def test_huge_final_message_keeps_its_tail() -> None:
    text = "x" * 3_000_000 + "\n<promise>TASK_DONE</promise>"
    lines = [
        json.dumps({"type": "turn.started"}),
        json.dumps({"type": "item.completed", "item": {"id": "i", "type": "agent_message", "text": text}}),
        json.dumps({"type": "turn.completed", "usage": {}}),
    ]
    verdict = run(CodexBackend().parser(), lines, 0)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.final_message is not None and len(verdict.final_message) <= 1_000_000


def test_gemini_deltas_are_concatenated() -> None:
    events = [
        {"type": "init", "session_id": "s", "model": "m"},
        {"type": "message", "role": "user", "content": "end with <promise>HALT</promise>"},
        {"type": "message", "role": "assistant", "content": "I will look.", "delta": True},
        {"type": "tool_use", "tool_name": "run_shell_command", "tool_id": "t", "parameters": {}},
        {"type": "tool_result", "tool_id": "t", "status": "success", "output": "<promise>HALT</promise>"},
        {"type": "message", "role": "assistant", "content": "All done.\n<promise>TASK_", "delta": True},
        {"type": "message", "role": "assistant", "content": "DONE</promise>", "delta": True},
        {"type": "result", "status": "success", "stats": {}},
    ]
    verdict = run(GeminiBackend().parser(), [json.dumps(e) for e in events], 0)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.final_message == "All done.\n<promise>TASK_DONE</promise>"


def test_json_event_glued_after_noise() -> None:
    lines = lines_of(next(c for c in CASES if c["cli"] == "claude" and c["case"] == "done"))
    lines[-1] = "\x1b[33mwarning: slow\x1b[0m " + lines[-1]
    assert run(ClaudeBackend().parser(), lines, 0).outcome is Outcome.PASSED


def test_marker_with_nonzero_exit_is_a_failure() -> None:
    verdict = verdict_of("claude", "done")
    assert verdict.passed
    (case,) = [c for c in CASES if c["cli"] == "claude" and c["case"] == "done"]
    assert run(ClaudeBackend().parser(), lines_of(case), 1).outcome is Outcome.FAILED


def test_command_parser_reads_the_last_paragraph() -> None:
    out = ["Working on it", "", "Task says: end with <promise>HALT</promise> if blocked", "", "Finished.", "<promise>TASK_DONE</promise>", ""]
    verdict = run(CommandBackend().parser(), out, 0)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.final_message == "Finished.\n<promise>TASK_DONE</promise>"
    assert run(CommandBackend().parser(), out[:3], 0).outcome is Outcome.HALTED
    assert run(CommandBackend().parser(), out, 2).outcome is Outcome.FAILED


def test_builtin_backends() -> None:
    names = [b.name for b in BUILTIN_BACKENDS]
    assert len(names) == len(set(names))
    assert {"codex", "claude", "gemini", "opencode", "kiro", "codeagent-wrapper", "command", "demo"} == set(names)
    for backend in BUILTIN_BACKENDS:
        assert hasattr(backend(), "invocation") and hasattr(backend().parser(), "feed_line")


def test_gemini_reset_hint_only_counts_for_failures() -> None:
    (case,) = [c for c in CASES if c["cli"] == "gemini" and c["case"] == "done"]
    lines = ["Attempt 1 failed with status 429. Retrying with backoff... Please retry in 2s.", *lines_of(case)]
    assert run(GeminiBackend().parser(), lines, 0).outcome is Outcome.PASSED


def test_claude_refusing_root_says_why_and_how_to_opt_in() -> None:
    # What claude 2.x prints on stderr, then exit 1, when run as root without IS_SANDBOX=1.
    parser = ClaudeBackend().parser()
    parser.feed_line("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\r")
    verdict = parser.finish(1)
    assert verdict.outcome.value == "failed"
    assert verdict.reason.startswith("exit status 1: claude refuses --dangerously-skip-permissions when run as root")
    assert "--is-sandbox" in verdict.reason
