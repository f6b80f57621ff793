"""Each backend's Renderer on the recorded transcripts of the real CLIs: what a
person watching reads (tool calls, text, abbreviated results, errors), and
that nothing the CLI printed disappears without a trace."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqrun.backends.base import NOT_DECODED, LineParser, Renderer, result_lines, tool_line
from seqrun.backends.claude import ClaudeBackend, ClaudeRenderer
from seqrun.backends.codex import CodexBackend, CodexRenderer
from seqrun.backends.command import CommandBackend
from seqrun.backends.demo import DemoBackend
from seqrun.backends.gemini import GeminiBackend, GeminiRenderer
from seqrun.backends.kiro import KiroBackend
from seqrun.backends.opencode import OpenCodeBackend, OpenCodeRenderer

TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "agent-transcripts"
BACKENDS = {"claude": ClaudeBackend, "codex": CodexBackend, "gemini": GeminiBackend, "opencode": OpenCodeBackend}


def shown(backend: str, case: str) -> list[str]:
    """A transcript through the backend's parser and renderer, as a window shows it."""
    parser, renderer = BACKENDS[backend]().parser(), BACKENDS[backend]().renderer()
    lines: list[str] = []
    for line in (TRANSCRIPTS / backend / case).read_text(encoding="utf-8").splitlines():
        parser.feed_line(line + "\r")
        lines += renderer.render(line + "\r", parser.last_event)
    return lines + renderer.finish()


NOT_DONE_TEXT = ("I read TASK.md and looked at README.md; the greeting is not added yet because the README is "
                 "generated from docs/. I will continue in the next iteration.")
TASK_LINES = [
    "  Task T-003: add a one-line greeting to the end of README.md.",
    "  When the task is complete and verified, end your final message with <promise>TASK_DONE</promise>.",
    "  If you are blocked and need a human, end your final message with <promise>HALT</promise>.",
]


@pytest.mark.parametrize(("backend", "call"), [
    ("claude", "▶ Bash  cat TASK.md"),
    ("codex", "▶ Shell  cat TASK.md"),
    ("gemini", "▶ run_shell_command  cat TASK.md"),
    ("opencode", "▶ bash  cat TASK.md"),
])
def test_tool_call_its_output_and_the_reply(backend: str, call: str) -> None:
    lines = shown(backend, "echo_not_done.jsonl")
    assert lines[lines.index(call):lines.index(call) + 4] == [call, *TASK_LINES]
    assert NOT_DONE_TEXT in lines
    assert not [line for line in lines if line.lstrip().startswith("{")]


def test_claude_run_reads_as_a_conversation() -> None:
    assert shown("claude", "done.jsonl") == [
        "· session 89f856e2-3f78-4d28-ad0f-747ec507aba4 · model claude-opus-4-8[1m]",
        "Let me look first.",
        '▶ Bash  printf "\\nHello from seqrun!\\n" >> README.md && tail -n 1 README.md',
        "  Hello from seqrun!",
        "Added the greeting line to README.md and verified it.",
        "<promise>TASK_DONE</promise>",
        "■ result: success · 2 turns · 0.3s · $0.0158",
    ]


@pytest.mark.parametrize(("backend", "case", "notice"), [
    ("claude", "rate_limited.jsonl", "✗ session limit reached, resets "),
    ("claude", "failed.jsonl", "⚠ API server_error (HTTP 500): retry 1/2"),
    ("codex", "rate_limited.jsonl", "✗ You’ve hit your usage limit."),
    ("codex", "failed.jsonl", "✗ invalid_request_error: Invalid value for 'reasoning.effort'"),
    ("codex", "done_after_reconnect.jsonl", "⚠ Reconnecting... 1/5"),
    ("gemini", "rate_limited.jsonl", "✗ You have exhausted your daily quota on this model."),
    ("gemini", "failed.jsonl", "✗ HTTP 400: Request contains an invalid argument."),
    ("opencode", "rate_limited.jsonl", "✗ rate limited (HTTP 429): Rate limit reached for fake-model"),
    ("opencode", "failed.jsonl", "✗ ContextOverflowError: This model's maximum context length"),
])
def test_errors_and_rate_limits_are_shown(backend: str, case: str, notice: str) -> None:
    assert [line for line in shown(backend, case) if line.startswith(notice)], shown(backend, case)


def test_long_tool_output_is_abbreviated() -> None:
    output = "\n".join(f"line {n}" for n in range(1, 11))
    event = {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": output, "is_error": False}]}}
    assert ClaudeRenderer().render(json.dumps(event)) == [
        "  line 1", "  line 2", "  line 3", "  line 4", "  … (6 more lines)"]
    assert result_lines("one\ntwo") == ["  one", "  two"]


def test_edits_are_marked_and_summarised_by_their_file() -> None:
    claude = {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "name": "Edit", "input": {"file_path": "src/app.py", "old_string": "a"}},
        {"type": "tool_use", "name": "Grep", "input": {"pattern": "TODO", "path": "src"}}]}}
    assert ClaudeRenderer().render(json.dumps(claude)) == ["✎ Edit  src/app.py", "▶ Grep  TODO in src"]
    codex = {"type": "item.completed", "item": {"id": "i1", "type": "file_change", "status": "completed",
                                                 "changes": [{"path": "src/app.py", "kind": "update"}]}}
    assert CodexRenderer().render(json.dumps(codex)) == ["✎ Edit  src/app.py"]
    gemini = {"type": "tool_use", "tool_name": "write_file", "parameters": {"file_path": "src/app.py"}}
    assert GeminiRenderer().render(json.dumps(gemini)) == ["✎ write_file  src/app.py"]
    opencode = {"type": "tool_use", "part": {"tool": "edit", "state": {
        "status": "completed", "input": {"filePath": "src/app.py"}, "output": ""}}}
    assert OpenCodeRenderer().render(json.dumps(opencode)) == ["✎ edit  src/app.py"]
    long_command = "x" * 500
    assert len(tool_line("Bash", long_command)) < 200


def test_codex_command_shows_once_when_it_starts_and_its_output_when_it_ends() -> None:
    renderer = CodexRenderer()
    item = {"id": "item_1", "type": "command_execution", "command": "/bin/bash -lc 'npm test'",
            "aggregated_output": "", "exit_code": None, "status": "in_progress"}
    assert renderer.render(json.dumps({"type": "item.started", "item": item})) == ["▶ Shell  npm test"]
    done = {**item, "aggregated_output": "1 failing\n", "exit_code": 1, "status": "failed"}
    assert renderer.render(json.dumps({"type": "item.completed", "item": done})) == ["  1 failing", "  ✗ exit 1"]


def test_gemini_reply_chunks_are_joined_into_lines() -> None:
    renderer = GeminiRenderer()
    chunks = ["I fix", "ed it.\nNow I ", "run the tests"]
    lines: list[str] = []
    for chunk in chunks:
        lines += renderer.render(json.dumps({"type": "message", "role": "assistant", "content": chunk,
                                             "delta": True}))
    assert lines == ["I fixed it."]
    assert renderer.render(json.dumps({"type": "tool_use", "tool_name": "run_shell_command",
                                       "parameters": {"command": "pytest"}})) == [
        "Now I run the tests", "▶ run_shell_command  pytest"]


@pytest.mark.parametrize("renderer", [ClaudeRenderer(), CodexRenderer(), GeminiRenderer(), OpenCodeRenderer()])
def test_unknown_lines_are_passed_through_never_dropped(renderer: Renderer) -> None:
    assert renderer.render("npm WARN deprecated glob@7.2.3\r") == ["npm WARN deprecated glob@7.2.3"]
    assert renderer.render('{"type":"brand_new_event","x":1}') == ["· brand_new_event"]
    assert renderer.render('{"not": "an event"}') == ['{"not": "an event"}']
    assert renderer.render("{broken json") == ["{broken json"]
    assert renderer.render("\x1b[31mred\x1b[0m text") == ["red text"]


def test_escape_codes_inside_json_text_are_not_sent_to_the_terminal() -> None:
    text = "a\u001b]0;pwned\u0007b\u001b[2Jc, then a reset\u001bc and a bell\u0007."
    event = {"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}
    assert ClaudeRenderer().render(json.dumps(event)) == ["abc, then a resetc and a bell."]


def test_the_parser_decodes_each_line_once_for_both() -> None:
    parser = ClaudeBackend().parser()
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "hi"}]}})
    parser.feed_line(line)
    assert parser.last_event == json.loads(line)
    parser.feed_line("not json")
    assert parser.last_event is None
    # The renderer uses what it is given, and decodes itself only when told nothing.
    assert ClaudeRenderer().render("ignored", {"type": "assistant", "message": {"content": "given"}}) == ["given"]
    assert ClaudeRenderer().render(line, NOT_DECODED) == ["hi"]


def test_a_renderer_that_raises_shows_the_line_as_it_is() -> None:
    class Broken(Renderer):
        def _event(self, event: dict) -> list[str] | None:
            raise KeyError("boom")

    assert Broken().render('{"type":"x"}') == ['{"type":"x"}']


def test_which_backends_render() -> None:
    """Structured streams are rendered; plain-text CLIs are shown as they are."""
    for cls in (*BACKENDS.values(), DemoBackend):
        assert isinstance(cls().renderer(), Renderer), cls
    for cls in (CommandBackend, KiroBackend):
        assert getattr(cls(), "renderer", None) is None, cls
    assert issubclass(type(ClaudeBackend().parser()), LineParser)
