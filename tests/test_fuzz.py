"""Fuzzing: the backends' output parsers and the state-file loader never raise
anything but seqrun's own UsageError, whatever they are fed."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrun.backends import BUILTIN_BACKENDS, load_builtin
from seqrun.backends.base import DONE_MARKERS, HALT_MARKER
from seqrun.config import UsageError
from seqrun.outcome import Kind, Outcome, Verdict
from seqrun.statefile import StateFile

TRANSCRIPTS = Path(__file__).parent / "data" / "agent-transcripts"
PARSED = ["codex", "claude", "gemini", "opencode", "kiro", "codeagent-wrapper", "demo"]


def transcript_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(TRANSCRIPTS.rglob("*")):
        if path.is_file() and path.suffix in (".jsonl", ".txt", ".json"):
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines


LINES = transcript_lines()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
event_types = st.sampled_from(["result", "assistant", "user", "system", "error", "turn.failed",
                               "turn.completed", "item.completed", "message", "text", "step_finish",
                               "tool_use", "rate_limit_event", "init"])
events = st.builds(lambda t, d: json.dumps({"type": t, **d}), event_types,
                   st.dictionaries(st.sampled_from(["result", "is_error", "message", "item", "part",
                                                    "error", "status", "role", "content", "text",
                                                    "rate_limit_info", "usage", "stats"]),
                                   json_values, max_size=5))


def parse_all(backend_name: str, lines: list[str], status: int) -> Verdict:
    """The verdict on ``lines``, checked for what every parser promises: no
    exception swallowed, and a verdict that rests on the agent's final message."""
    parser = load_builtin(backend_name)().parser()
    for line in lines:
        parser.feed_line(line)
    verdict = parser.finish(status)
    # LineParser keeps what _feed raised, and makes a BACKEND_ERROR of what _finish raised.
    assert parser.parse_errors == [] and parser.parse_errors_dropped == 0, parser.parse_errors
    assert verdict.kind is not Kind.BACKEND_ERROR, verdict.reason + "\n" + verdict.longrepr
    message = verdict.final_message or ""
    if verdict.outcome is Outcome.PASSED:
        assert status == 0, verdict  # markers count only in a run that ended without error
        assert any(marker in message for marker in DONE_MARKERS), verdict
    if verdict.outcome is Outcome.HALTED:
        assert HALT_MARKER in message, verdict
    return verdict


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PARSED), st.lists(st.one_of(events, st.text(max_size=200)), max_size=30),
       st.integers(-300, 300))
def test_parsers_never_raise_on_random_events(backend_name, lines, status):
    verdict = parse_all(backend_name, lines, status)
    assert verdict.outcome in (Outcome.PASSED, Outcome.FAILED, Outcome.HALTED, Outcome.RATE_LIMITED)


@pytest.mark.parametrize("backend_name", PARSED)
def test_parsers_survive_mutated_real_transcripts(backend_name):
    rng = random.Random(2026)
    outcomes = set()
    for _ in range(300):
        lines = rng.sample(LINES, k=min(len(LINES), rng.randint(1, 40)))
        mutated = []
        for line in lines:
            op = rng.random()
            if op < 0.2 and line:
                cut = rng.randrange(len(line))
                line = line[:cut]
            elif op < 0.3:
                line = line.replace('"', "'", 1)
            elif op < 0.4:
                line = "\x1b[31m" + line + "\r"
            elif op < 0.5:
                line = line.replace("true", "null").replace("false", "1")
            mutated.append(line)
        outcomes.add(parse_all(backend_name, mutated, rng.choice([0, 1, 2, 124, 137, 143, 173])).outcome)
    # The mutations leave enough real events for more than one verdict.
    assert Outcome.FAILED in outcomes and len(outcomes) > 1, outcomes


def test_every_builtin_backend_is_fuzzed():
    assert set(BUILTIN_BACKENDS) - set(PARSED) <= {"command"}


state_documents = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["completed", "halted", "specs", "assignments", "tasks", "spec",
                                     "started_at", "version", "failed"]), json_values, max_size=6),
    st.builds(lambda name, inner: {"specs": {name: inner}}, st.text(max_size=5),
              st.dictionaries(st.sampled_from(["completed", "failed", "tasks", "assignments", "halted"]),
                              json_values, max_size=5)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state_documents)
def test_state_loader_only_raises_usage_errors(tmp_path, document):
    path = tmp_path / "SEQUENTIAL_STATE.json"
    path.write_text(json.dumps(document))
    try:
        state = StateFile.load(path)
        spec = state.for_spec("feature")
        # What the run does with a loaded state must not crash either.
        set(map(str, spec.get("completed", [])))
        spec.setdefault("tasks", {}).setdefault("1", {}).update(status="passed")
        state.save(current="feature")
        json.loads(path.read_text())
    except UsageError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_state_loader_on_random_bytes(tmp_path, data):
    path = tmp_path / "SEQUENTIAL_STATE.json"
    path.write_bytes(data)
    try:
        StateFile.load(path)
    except UsageError:
        assert path.read_bytes() == data  # left untouched
