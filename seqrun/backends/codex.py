"""OpenAI Codex CLI: ``codex exec --json``.

The prompt always travels on stdin (``-`` as the prompt argument), so its size
never matters. The ``--json`` stream is one event per line:

* ``thread.started``: first, with the session's ``thread_id``;
* ``item.completed`` with ``item.type == "agent_message"``: an assistant
  message; the last one is the final message;
* ``turn.completed`` (with ``usage``): the run ended normally;
* ``turn.failed``: the run failed, ``error.message`` says why (rate limits and
  billing included);
* top-level ``error`` events that say "Reconnecting... n/5" and
  ``item.type == "error"`` items are warnings, not failures.

:class:`CodexRenderer` shows the ``--json`` stream to a person: messages, a
line per command, file change, MCP call or web search (when it starts), its
output abbreviated (when it ends), warnings and errors; the human format is
shown as it is.

The human format (no ``--json``) is read as well, in case someone configures
it: the final message is the last block under a ``codex`` header line; the
prompt is echoed under a ``user`` header and must not count. The banner before
the first header says ``session id: <thread id>``.
"""
from __future__ import annotations

import json
import re
import shlex
from datetime import datetime
from typing import ClassVar

from seqrun.backends._resets import BILLING_TEXT, RATE_LIMIT_TEXT, codex_reset, with_reset
from seqrun.backends._support import as_int, as_str, clip, TailLines
from seqrun.backends.base import (
    AgentCall,
    arg_summary,
    executable,
    exit_failure,
    final_message_verdict,
    Invocation,
    LineParser,
    one_line,
    Renderer,
    result_lines,
    text_lines,
    tool_line,
)
from seqrun.outcome import Outcome, Usage, Verdict


class CodexBackend:
    name: ClassVar[str] = "codex"
    executable: ClassVar[str] = "codex"
    #: ``--resume``: `codex exec resume <thread id>`. Only a UUID: another word is taken
    #: for a session *name*, and an unknown one silently starts a new session.
    resume_ids: ClassVar[re.Pattern[str]] = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [
            executable(call, self.executable),
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "-C",
            str(call.workdir),
        ]
        if call.model:
            argv += ["-m", call.model]
        argv += list(call.extra_args)
        if call.resume_session:
            # After every exec option: `codex exec [options] resume <thread id> -`.
            argv += ["resume", call.resume_session]
        argv.append("-")  # read the prompt from stdin: no size limit, no quoting
        return Invocation(argv=argv, cwd=call.workdir, stdin=call.prompt_file)

    def parser(self) -> CodexParser:
        return CodexParser()

    def renderer(self) -> CodexRenderer:
        return CodexRenderer()


#: Header lines of the human format; each starts a block.
_PLAIN_HEADERS = frozenset({"user", "codex", "thinking", "exec", "tokens used", "assistant"})


class CodexParser(LineParser):
    session_gone = re.compile(r"no rollout found for thread id")
    def __init__(self) -> None:
        self.message: str | None = None
        self.completed = False
        self.turn_error: str | None = None
        self.error: str | None = None
        self.usage: Usage | None = None
        self.saw_json = False
        # human format
        self.block: str | None = None
        self.block_lines = TailLines()
        self.plain_message: str | None = None
        self.plain_error: str | None = None

    # -- input ---------------------------------------------------------------

    def _feed(self, text: str, raw: str) -> None:
        event = self._decode(text)
        if event is not None and isinstance(event.get("type"), str):
            self.saw_json = True
            self._event(event)
        elif not self.saw_json:
            self._plain(text)

    def _event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "thread.started":
            self.session_id = self.session_id or as_str(event.get("thread_id")) or None
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                text = item.get("text")
                if isinstance(text, list):  # older builds split the text into parts
                    text = "".join(t for t in text if isinstance(t, str))
                self.message = clip(as_str(text))
        elif kind == "turn.completed":
            self.completed = True
            self.usage = _usage(event.get("usage"), self.usage)
        elif kind == "turn.failed":
            error = event.get("error")
            self.turn_error = clip(as_str(error.get("message")) if isinstance(error, dict) else as_str(error)) or "turn failed"
        elif kind == "error":
            message = as_str(event.get("message"))
            if not message.startswith("Reconnecting"):  # transient: codex retries by itself
                self.error = clip(message)

    def _plain(self, text: str) -> None:
        stripped = text.strip()
        if self.block is None and self.session_id is None and stripped.startswith("session id:"):
            # In the banner, before the first header: the prompt echo comes later.
            self.session_id = stripped.split(":", 1)[1].strip() or None
            return
        if stripped in _PLAIN_HEADERS:
            self._close_block()
            self.block = stripped
            return
        if stripped.startswith(("ERROR:", "error:")):
            self.plain_error = clip(stripped.split(":", 1)[1].strip())
        if self.block == "codex":
            self.block_lines.append(text)

    def _close_block(self) -> None:
        if self.block == "codex":
            message = self.block_lines.text().strip()
            if message:
                self.plain_message = clip(message)
        self.block = None
        self.block_lines.clear()

    # -- verdict -------------------------------------------------------------

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        self._close_block()
        failure = self.turn_error or (None if self.completed else self.error)
        if not self.saw_json and not failure and self.plain_error and exit_status != 0:
            failure = self.plain_error
        if failure:
            return _failure_verdict(failure, self.message, self.usage, now)
        if exit_status != 0:
            return exit_failure(exit_status, self.message or self.plain_message, self.usage)
        if self.saw_json:
            if not self.completed:
                return Verdict(Outcome.FAILED, "the turn never completed (no turn.completed event)", self.message, usage=self.usage)
            return final_message_verdict(self.message, self.usage)
        return final_message_verdict(self.plain_message)


def _usage(data: object, before: Usage | None) -> Usage | None:
    if not isinstance(data, dict):
        return before
    usage = Usage(
        input_tokens=as_int(data.get("input_tokens")),
        output_tokens=as_int(data.get("output_tokens")),
        cached_tokens=as_int(data.get("cached_input_tokens")),
        reasoning_tokens=as_int(data.get("reasoning_output_tokens")),
    )
    return usage if before is None else before + usage


def _failure_verdict(message: str, final: str | None, usage: Usage | None, now: datetime) -> Verdict:
    """Classify a codex error text: billing, rate limit, or plain failure."""
    if BILLING_TEXT.search(message):
        return Verdict(Outcome.FAILED, "quota exceeded: check the plan and billing details", final, usage=usage, billing=True)
    if RATE_LIMIT_TEXT.search(message) or "try again at" in message:
        reset_at = codex_reset(message, now)
        reason = "usage limit reached"
        if "429" in message and "usage limit" not in message.lower():
            reason = "HTTP 429: too many requests"
        return Verdict(Outcome.RATE_LIMITED, with_reset(reason, reset_at, now), final, reset_at=reset_at, usage=usage)
    return Verdict(Outcome.FAILED, _describe(message), final, usage=usage)


def _describe(message: str) -> str:
    """A short reason from an error text that is often a JSON API error body."""
    try:
        body = json.loads(message)
    except ValueError:
        return one_line(message)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        detail = as_str(error.get("message")) or as_str(error.get("code"))
        kind = as_str(error.get("type")) or as_str(error.get("code"))
        status = as_int(error.get("status")) or as_int(body.get("status"))
        prefix = f"HTTP {status}: " if status else (f"{kind}: " if kind else "")
        return one_line(prefix + detail)
    return one_line(message)


#: How many started items a renderer remembers (their line is shown once).
_STARTED_KEPT = 256


class CodexRenderer(Renderer):
    """``codex exec --json`` as a person reads it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        """Ids of items whose tool line was shown when they started."""
        self.error = ""
        """The last error shown: ``turn.failed`` usually repeats it."""

    def _event(self, event: dict) -> list[str] | None:
        kind = event.get("type")
        if kind == "thread.started":
            return [f"· session {as_str(event.get('thread_id'))}"]
        if kind == "turn.started":
            return []
        if kind == "turn.completed":
            usage = event.get("usage")
            tokens = ""
            if isinstance(usage, dict):
                tokens = f" · {as_int(usage.get('input_tokens')) or 0} in, {as_int(usage.get('output_tokens')) or 0} out"
            return [f"■ turn completed{tokens}"]
        if kind == "turn.failed":
            error = event.get("error")
            message = as_str(error.get("message")) if isinstance(error, dict) else as_str(error)
            if message and message == self.error:
                return ["✗ turn failed"]
            return [f"✗ turn failed: {_describe(message) if message else 'no reason given'}"]
        if kind == "error":
            message = self.error = as_str(event.get("message"))
            mark = "⚠" if message.startswith("Reconnecting") else "✗"
            return [f"{mark} {_describe(message) if message else 'error'}"]
        if kind in ("item.started", "item.updated", "item.completed"):
            item = event.get("item")
            return self._item(item, kind) if isinstance(item, dict) else None
        return None

    def _item(self, item: dict, kind: str) -> list[str] | None:
        what = item.get("type")
        item_id = as_str(item.get("id"))
        if kind == "item.updated" and what != "todo_list":
            return []
        if what == "agent_message":
            if kind != "item.completed":
                return []
            text = item.get("text")
            if isinstance(text, list):
                text = "".join(t for t in text if isinstance(t, str))
            return text_lines(as_str(text))
        if what == "reasoning":
            thought = text_lines(as_str(item.get("text")))
            return [f"… {thought[0]}"] if thought and kind == "item.completed" else []
        if what == "error":
            return [f"⚠ {as_str(item.get('message')) or 'error'}"] if kind == "item.completed" else []
        if what == "todo_list":
            todos = item.get("items")
            count = len(todos) if isinstance(todos, list) else 0
            return [f"· plan: {count} steps"] if kind != "item.completed" else []
        call = self._call_line(item)
        if call is None:
            return None
        lines: list[str] = []
        if kind == "item.started":
            self.started.append(item_id)
            del self.started[:-_STARTED_KEPT]
            return [call]
        if item_id not in self.started:
            lines.append(call)
        return lines + _outcome_lines(item)

    @staticmethod
    def _call_line(item: dict) -> str | None:
        what = item.get("type")
        if what == "command_execution":
            return tool_line("Shell", _unwrap_shell(as_str(item.get("command"))))
        if what == "file_change":
            changes = item.get("changes")
            paths = [f"{as_str(c.get('path'))}" for c in changes if isinstance(c, dict)] if isinstance(changes, list) else []
            return tool_line("Edit", ", ".join(paths), edit=True)
        if what == "mcp_tool_call":
            name = ".".join(n for n in (as_str(item.get("server")), as_str(item.get("tool"))) if n)
            return tool_line(name or "mcp", arg_summary(item.get("arguments")))
        if what == "web_search":
            return tool_line("WebSearch", as_str(item.get("query")))
        return None


def _outcome_lines(item: dict) -> list[str]:
    """A finished tool item: its output, abbreviated, and how it ended."""
    lines = result_lines(as_str(item.get("aggregated_output")))
    code = as_int(item.get("exit_code"))
    status = as_str(item.get("status"))
    if code not in (None, 0):
        lines.append(f"  ✗ exit {code}")
    elif status == "failed":
        error = item.get("error")
        message = as_str(error.get("message")) if isinstance(error, dict) else ""
        lines.append(f"  ✗ failed{': ' + one_line(message, 200) if message else ''}")
    return lines


def _unwrap_shell(command: str) -> str:
    """``cat TASK.md`` from codex's ``/bin/bash -lc 'cat TASK.md'``."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and words[0].rsplit("/", 1)[-1] in ("bash", "sh", "zsh") and words[1] in ("-lc", "-c"):
        return words[2]
    return command
