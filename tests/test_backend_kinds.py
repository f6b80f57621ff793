"""The typed side of the parsers' verdicts: the :class:`Kind` of every recorded
case, the CLI's session id, and parse errors that are reported, never hidden.

The session ids below were read by hand from the transcript files (the
``session_id`` / ``thread_id`` / ``sessionID`` fields, the codex banner, the
wrapper's ``SESSION_ID:`` trailer), not produced by running a parser.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import feed_transcript, transcript_backends, transcript_lines

from seqrun.backends.base import MAX_PARSE_ERRORS, LineParser
from seqrun.backends.base import final_message_verdict
from seqrun.backends.claude import ClaudeBackend
from seqrun.backends.codeagent_wrapper import CodeagentWrapperBackend
from seqrun.backends.codex import CodexBackend, CodexParser
from seqrun.outcome import Kind, Outcome, Verdict

TRANSCRIPTS = Path(__file__).parent / "data" / "agent-transcripts"
CASES: list[dict[str, Any]] = [
    *json.loads((TRANSCRIPTS / "cases.json").read_text())["cases"],
    *json.loads((TRANSCRIPTS / "codeagent-wrapper" / "cases.json").read_text())["cases"],
]
BACKENDS = transcript_backends()
RECORDED = datetime(2026, 11, 24, 1, 7, tzinfo=timezone.utc)
VARIANTS = ("lf", "crlf", "noise", "stderr_first")

#: The kind each expected verdict of cases.json must have.
KINDS = {
    "done": Kind.PASSED,
    "halt": Kind.HALTED,
    "not_done": Kind.NO_MARKER,
    "rate_limited": Kind.RATE_LIMITED,
    "failed": Kind.AGENT_ERROR,
}

#: (cli, case) -> the session id written in its transcript; None: it has none.
SESSION_IDS: dict[tuple[str, str], str | None] = {
    # claude: "session_id" of the system/init event (the result repeats it)
    ("claude", "done"): "89f856e2-3f78-4d28-ad0f-747ec507aba4",
    ("claude", "done_after_retry"): "ebf935a2-9ede-435c-8904-71d608d42e7d",
    ("claude", "echo_not_done"): "e1df4016-1494-47eb-800a-ac528cd94c92",
    ("claude", "echo_replay_not_done"): "86c5e037-99b4-4a65-9c90-1f721b40e0f7",
    ("claude", "failed"): "a16616f6-19b9-4a6a-bfec-1bebd0fe27e4",
    ("claude", "halt"): "1cb09b0f-d94e-4934-841a-e5d8b5b45c63",
    ("claude", "rate_limited"): "0518b1ad-f7a7-4b33-95a9-23d4494958fa",
    ("claude", "rate_limited_api_key"): "84001d64-15d7-48ae-b932-92cbf3df2b2e",
    ("claude", "rate_limited_weekly"): "5f17bb65-d9b6-4398-a51c-fcc704177229",
    # codex --json: "thread_id" of thread.started; the human format: its "session id:" banner line
    ("codex", "done"): "01a20b16-c8ff-7e41-925d-cbf8eeb4e042",
    ("codex", "done_after_reconnect"): "01a20b16-d130-7640-b347-a97d089feca5",
    ("codex", "echo_not_done"): "01a20b16-ce8c-7c22-bb5f-5b1e0292ad43",
    ("codex", "failed"): "01a20b16-cc27-7f32-956c-2df15e3675b2",
    ("codex", "halt"): "01a20b16-cacd-7e63-9726-724aa6abffef",
    ("codex", "rate_limited"): "01a20b16-cd59-7f41-bf07-51a3670a4c28",
    ("codex", "echo_not_done.plain"): "01a20b16-d50d-7762-9b01-4ac7cdae0bdd",
    # gemini: "session_id" of the init event; -o json: of the single object
    ("gemini", "done"): "85b17873-4da2-4c45-b9f3-02dd80e57c76",
    ("gemini", "done_jsonmode"): "b8b5eb1f-2a9f-4ad5-9aa6-b620a3b32cfd",
    ("gemini", "echo_not_done"): "822c8492-d210-48e9-b813-1c86178557fa",
    ("gemini", "failed"): "031820fb-556e-4b7d-80cd-1df763acdda5",
    ("gemini", "halt"): "0a34482c-52c0-459b-84f7-4bab81eb0618",
    ("gemini", "rate_limited"): "09789661-bcd8-404f-8ae6-89a83452ef03",
    ("gemini", "rate_limited_jsonmode"): "2066b9e9-7573-4a49-8359-671b7f6d96cd",
    # opencode --format json: the top-level "sessionID" of every event
    ("opencode", "done"): "ses_df4e8c0cfffejCla2uuVdgZsUT",
    ("opencode", "echo_not_done"): "ses_df4e8780effep55qIQsDnpJwWT",
    ("opencode", "failed"): "ses_df4e8a4adffe0YEtc7JY0VO2rB",
    ("opencode", "halt"): "ses_df4e8b0f4ffeoSeRhE55qnQBB8",
    ("opencode", "rate_limited"): "ses_df4e89833ffeh8mqbbLkDopMqu",
    ("opencode", "echo_not_done.plain"): None,  # the default format prints none
    # kiro prints no session id
    ("kiro", "done"): None,
    ("kiro", "halt"): None,
    ("kiro", "failed"): None,
    ("kiro", "rate_limited"): None,
    ("kiro", "rate_limited_monthly"): None,
    ("kiro", "echo_not_done"): None,
    ("kiro", "auth_failed"): None,
    # codeagent-wrapper: the "SESSION_ID:" trailer, printed only on success
    ("codeagent-wrapper", "done"): "01a20b16-c8ff-7e41-925d-cbf8eeb4e042",
    ("codeagent-wrapper", "halt"): "01a20b16-cacd-7e63-9726-724aa6abffef",
    ("codeagent-wrapper", "echo_not_done"): "01a20b16-ce8c-7c22-bb5f-5b1e0292ad43",
    ("codeagent-wrapper", "failed"): None,
    ("codeagent-wrapper", "rate_limited"): None,
    ("codeagent-wrapper", "gemini_echo_done"): "85b17873-4da2-4c45-b9f3-02dd80e57c76",
    ("codeagent-wrapper", "gemini_echo_not_done"): "822c8492-d210-48e9-b813-1c86178557fa",
}


lines_of = transcript_lines


def run(parser: Any, lines: list[str], exit_status: int, variant: str = "lf") -> Verdict:
    return feed_transcript(parser, lines, exit_status, RECORDED, variant)


def case_verdict(case: dict[str, Any], variant: str = "lf") -> Verdict:
    if case["cli"] == "codeagent-wrapper":
        # As in test_backend_parsers: the wrapper's message is plain stdout, so
        # noise can only come before it (its stderr banner comes first anyway).
        lines = lines_of(case, stderr_first=variant != "lf")
        if variant == "noise":
            lines, variant = ["Warning: something", *lines], "lf"
    else:
        lines = lines_of(case, stderr_first=variant == "stderr_first")
    return run(BACKENDS[case["cli"]]().parser(), lines, case["exit_code"], variant)


def test_every_case_has_a_session_id_entry() -> None:
    assert {(c["cli"], c["case"]) for c in CASES} == set(SESSION_IDS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c['cli']}-{c['case']}" for c in CASES])
def test_case_kind(case: dict[str, Any], variant: str) -> None:
    verdict = case_verdict(case, variant)
    assert verdict.kind is KINDS[case["expected_verdict"]], verdict.reason
    assert not verdict.longrepr  # no parse errors in a real transcript


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c['cli']}-{c['case']}" for c in CASES])
def test_case_session_id(case: dict[str, Any], variant: str) -> None:
    assert case_verdict(case, variant).session_id == SESSION_IDS[(case["cli"], case["case"])]


def test_no_marker_reasons() -> None:
    empty = final_message_verdict(None)
    assert (empty.reason, empty.kind) == ("no final message from the agent", Kind.NO_MARKER)
    (case,) = [c for c in CASES if c["cli"] == "codeagent-wrapper" and c["case"] == "echo_not_done"]
    lines = lines_of(case)
    lines[0] += " <promise>TASK_DONE</promise> is what I will write when done."  # a marker, not at the end
    verdict = run(CodeagentWrapperBackend().parser(), lines, 0)
    assert verdict.reason == "the final message does not end with a marker"
    assert verdict.kind is Kind.NO_MARKER


def test_exit_failure_is_an_agent_error() -> None:
    (case,) = [c for c in CASES if c["cli"] == "claude" and c["case"] == "done"]
    verdict = run(ClaudeBackend().parser(), lines_of(case), 1)
    assert (verdict.outcome, verdict.kind) == (Outcome.FAILED, Kind.AGENT_ERROR)


# -- quota (no transcript has one: the error texts the parsers know) -------------------


def _quota_lines(cli: str) -> list[str]:
    if cli == "codex":
        message = "Quota exceeded. Check your plan and billing details."
        return [json.dumps({"type": "thread.started", "thread_id": "t-1"}),
                json.dumps({"type": "turn.failed", "error": {"message": message}})]
    if cli == "claude":
        return [json.dumps({"type": "system", "subtype": "init", "session_id": "s-1"}),
                json.dumps({"type": "result", "subtype": "success", "is_error": True, "session_id": "s-1",
                            "result": "Credit balance is too low"})]
    if cli == "opencode":
        error = {"name": "APIError", "data": {"message": "insufficient_quota", "statusCode": 429}}
        return [json.dumps({"type": "error", "sessionID": "ses_1", "error": error})]
    assert cli == "codeagent-wrapper"
    return ["=== Recent Errors ===", "ERROR: codex: insufficient_quota: you exceeded your quota", "Log file: x"]


@pytest.mark.parametrize("cli", ["codex", "claude", "opencode", "codeagent-wrapper"])
def test_quota_kind(cli: str) -> None:
    verdict = run(BACKENDS[cli]().parser(), _quota_lines(cli), 1)
    assert (verdict.outcome, verdict.kind, verdict.billing) == (Outcome.FAILED, Kind.QUOTA, True)


# -- session ids on every path -------------------------------------------------------------


def test_session_id_on_an_early_exit() -> None:
    """Every return path of ``_finish`` gets the id: here a kill after init."""
    init = json.dumps({"type": "system", "subtype": "init", "session_id": "s-early"})
    verdict = run(ClaudeBackend().parser(), [init], 137)
    assert (verdict.reason, verdict.session_id) == ("exit status 137", "s-early")


@pytest.mark.parametrize(("cli", "event", "field"), [
    ("claude", {"type": "system", "subtype": "init"}, "session_id"),
    ("codex", {"type": "thread.started"}, "thread_id"),
    ("gemini", {"type": "init"}, "session_id"),
    ("opencode", {"type": "step_start", "part": {}}, "sessionID"),
])
def test_first_session_id_wins(cli: str, event: dict[str, Any], field: str) -> None:
    lines = [json.dumps({**event, field: "first"}), json.dumps({**event, field: "second"})]
    assert run(BACKENDS[cli]().parser(), lines, 1).session_id == "first"


def test_codex_session_id_in_the_prompt_echo_does_not_count() -> None:
    lines = ["user", "session id: from-the-prompt", "codex", "Nothing to do.", "tokens used", "12"]
    assert run(CodexBackend().parser(), lines, 0).session_id is None


def test_codeagent_wrapper_parallel_report_session_id() -> None:
    report = {"summary": {"total": 1}, "task_results": [
        {"task_id": "1", "exit_code": 0, "message": "Done.\n<promise>TASK_DONE</promise>", "session_id": "par-1", "error": ""},
    ]}
    verdict = run(CodeagentWrapperBackend().parser(), [json.dumps(report)], 0)
    assert (verdict.outcome, verdict.session_id) == (Outcome.PASSED, "par-1")


# -- parse errors --------------------------------------------------------------------------


class FlakyParser(LineParser):
    """Raises on lines that say "boom"; the last other line is the final message.

    Its __init__ does not call super().__init__(), as a plugin's may not.
    """

    def __init__(self) -> None:
        self.message: str | None = None
        self.session_id = "flaky-1"

    def _feed(self, text: str, raw: str) -> None:
        if "boom" in text:
            raise ValueError(f"cannot read {text!r}")
        self.message = text

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        return final_message_verdict(self.message)


def test_parse_error_makes_a_no_marker_verdict_a_backend_error() -> None:
    parser = FlakyParser()
    verdict = run(parser, ["working", "a boom line", "I stopped here."], 0)
    assert len(parser.parse_errors) == 1
    error = parser.parse_errors[0]
    assert error.startswith("ValueError: cannot read 'a boom line' (line 'a boom line' at test_backend_kinds.py:")
    assert (verdict.outcome, verdict.kind) == (Outcome.FAILED, Kind.BACKEND_ERROR)
    assert verdict.reason == "no TASK_DONE marker in the final message"
    assert error in verdict.longrepr
    assert verdict.session_id == "flaky-1"


def test_parse_error_leaves_a_passed_verdict_passed() -> None:
    parser = FlakyParser()
    verdict = run(parser, ["boom", "Done.<promise>TASK_DONE</promise>"], 0)
    assert (verdict.outcome, verdict.kind) == (Outcome.PASSED, Kind.PASSED)
    assert parser.parse_errors[0] in verdict.longrepr


def test_parse_errors_are_capped() -> None:
    parser = FlakyParser()
    verdict = run(parser, [f"boom {n}" for n in range(MAX_PARSE_ERRORS + 3)], 0)
    assert len(parser.parse_errors) == MAX_PARSE_ERRORS
    assert "boom 0" in parser.parse_errors[0]
    assert "… and 3 more" in verdict.longrepr
    assert verdict.kind is Kind.BACKEND_ERROR


def test_no_parse_errors_no_longrepr() -> None:
    parser = FlakyParser()
    verdict = run(parser, ["fine"], 0)
    assert parser.parse_errors == []
    assert (verdict.kind, verdict.longrepr) == (Kind.NO_MARKER, "")


def test_finish_that_raises_is_a_backend_error() -> None:
    class Broken(FlakyParser):
        def _finish(self, exit_status: int, now: datetime) -> Verdict:
            raise KeyError("state")

    verdict = run(Broken(), ["text"], 0)
    assert (verdict.outcome, verdict.kind) == (Outcome.FAILED, Kind.BACKEND_ERROR)
    assert verdict.reason == "could not read the agent output: KeyError: 'state'"
    assert "Traceback" in verdict.longrepr and "KeyError: 'state'" in verdict.longrepr
    assert verdict.session_id == "flaky-1"
    with_errors = run(Broken(), ["boom", "text"], 0)
    assert "ValueError: cannot read 'boom'" in with_errors.longrepr


def test_a_real_parser_bug_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug on claude's result event: the run looks unfinished, and says why."""
    import seqrun.backends.claude as claude

    def broken_usage(event: dict) -> None:
        raise TypeError("unsupported usage")

    monkeypatch.setattr(claude, "_usage", broken_usage)
    (case,) = [c for c in CASES if c["cli"] == "claude" and c["case"] == "echo_not_done"]
    parser = ClaudeBackend().parser()
    verdict = run(parser, lines_of(case), 0)
    assert verdict.kind is Kind.BACKEND_ERROR
    assert verdict.reason == "the run ended without a result event"
    assert "TypeError: unsupported usage (line '{\"type\":\"result\"" in verdict.longrepr
    assert verdict.session_id == "e1df4016-1494-47eb-800a-ac528cd94c92"


def test_rate_limit_stays_a_rate_limit_despite_parse_errors() -> None:
    class Flaky(CodexParser):
        def _feed(self, text: str, raw: str) -> None:
            if "turn.started" in text:
                raise RuntimeError("x")
            super()._feed(text, raw)

    (case,) = [c for c in CASES if c["cli"] == "codex" and c["case"] == "rate_limited"]
    parser = Flaky()
    verdict = run(parser, lines_of(case), case["exit_code"])
    assert parser.parse_errors
    assert (verdict.outcome, verdict.kind) == (Outcome.RATE_LIMITED, Kind.RATE_LIMITED)
    assert "RuntimeError: x" in verdict.longrepr
