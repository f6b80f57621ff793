"""Anthropic Claude Code: ``claude -p --output-format stream-json --verbose``.

``claude -p`` reads the prompt from stdin when none is on argv, so the prompt
file is its stdin whatever its size. The stream is one event per line:

* ``result``: the end of the run. ``result`` is the final message when
  ``is_error`` is false; with ``is_error`` true it is the error text (and
  ``subtype`` may still say "success"), ``api_error_status`` the HTTP status;
  ``total_cost_usd`` and ``usage`` are the run's cost;
* ``rate_limit_event``: ``rate_limit_info.status`` is ``allowed``,
  ``allowed_warning`` (both informational) or ``rejected`` (the limit, with
  ``resetsAt`` in epoch seconds);
* ``assistant`` events (``error`` set on the synthetic message of a failed
  call: rate_limit, server_error, authentication_failed…);
* ``system`` events: ``init`` first (its ``session_id``, which the result
  repeats), ``api_retry`` among them (transient);
* ``user`` events: tool results and, with ``--replay-user-messages``, the
  prompt itself. They are never read: they hold echoed markers.

:class:`ClaudeRenderer` shows the same stream to a person: the assistant's
text, a line per ``tool_use``, the tool results abbreviated, API retries,
rate-limit notices and the result's errors.
"""
from __future__ import annotations

import os
import re
from datetime import datetime
from typing import ClassVar, Mapping

from seqrun.backends._resets import BILLING_TEXT, claude_reset, with_reset
from seqrun.backends._support import as_float, as_int, as_str, clip
from seqrun.backends.base import (
    ANY_SESSION_ID,
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


#: What claude prints (and exits 1) when run as root without ``IS_SANDBOX=1``.
ROOT_REFUSED = re.compile(r"--dangerously-skip-permissions cannot be used with root/sudo privileges")
ROOT_REFUSAL = ("claude refuses --dangerously-skip-permissions when run as root: run seqrun as another "
                "user, or, on a throwaway container or VM, pass --is-sandbox (sets IS_SANDBOX=1 for claude)")


class ClaudeBackend:
    name: ClassVar[str] = "claude"
    executable: ClassVar[str] = "claude"
    #: ``--resume``: continues a session by its id, headless (same HOME and folder).
    resume_ids: ClassVar[re.Pattern[str]] = ANY_SESSION_ID

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [
            executable(call, self.executable),
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ]
        if call.model:
            argv += ["--model", call.model]
        if call.resume_session:
            argv += ["--resume", call.resume_session]  # that exact session, never "the last one"
        argv += list(call.extra_args)
        # No prompt argument: claude -p then reads it from stdin, at any size.
        env = {"IS_SANDBOX": "1"} if call.sandbox else {}
        return Invocation(argv=argv, env=env, cwd=call.workdir, stdin=call.prompt_file)

    def parser(self) -> ClaudeParser:
        return ClaudeParser()

    def renderer(self) -> ClaudeRenderer:
        return ClaudeRenderer()

    @staticmethod
    def environment_problem(env: Mapping[str, str], sandbox: bool) -> str | None:
        """claude run as root exits 1 at once, refusing
        ``--dangerously-skip-permissions``, unless told it is in a sandbox
        (its own test: real uid 0, no ``IS_SANDBOX=1``, no bubblewrap)."""
        if os.getuid() != 0 or sandbox or env.get("IS_SANDBOX") == "1" or env.get("CLAUDE_CODE_BUBBLEWRAP"):
            return None
        return ROOT_REFUSAL


class ClaudeParser(LineParser):
    session_gone = re.compile(r"No conversation found with session ID")
    def __init__(self) -> None:
        self.result: dict[str, object] | None = None
        self.rejected_reset: float | None = None
        self.rejected_type: str = ""
        self.rejected = False
        self.assistant_error: str = ""
        self.assistant_text: str = ""
        self.root_refused = False

    def _feed(self, text: str, raw: str) -> None:
        event = self._decode(text)
        if event is None:
            if ROOT_REFUSED.search(text):
                self.root_refused = True
            return
        kind = event.get("type")
        if self.session_id is None and kind in ("system", "result"):
            self.session_id = as_str(event.get("session_id")) or None  # on system/init and the result
        if kind == "result":
            self.result = {
                "is_error": event.get("is_error") is True,
                "subtype": as_str(event.get("subtype")),
                "text": clip(as_str(event.get("result"))),
                "status": as_int(event.get("api_error_status")),
                "usage": _usage(event),
            }
        elif kind == "rate_limit_event":
            info = event.get("rate_limit_info")
            if isinstance(info, dict) and info.get("status") == "rejected":
                self.rejected = True
                self.rejected_reset = as_float(info.get("resetsAt")) or self.rejected_reset
                self.rejected_type = as_str(info.get("rateLimitType"))
        elif kind == "assistant":
            self.assistant_error = as_str(event.get("error")) or self.assistant_error
            text_parts = _texts(event.get("message"))
            if text_parts:
                self.assistant_text = clip(text_parts)
        # "user" events are echoes (tool output, replayed prompt): never read.

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        result = self.result
        if result is None:
            if self.rejected or self.assistant_error == "rate_limit":
                return self._limited(self.assistant_text, None, now)
            if exit_status != 0 and self.root_refused:
                return Verdict(Outcome.FAILED, f"exit status {exit_status}: {ROOT_REFUSAL}")
            if exit_status != 0:
                verdict = exit_failure(exit_status, None)
                if self.assistant_error:
                    return Verdict(Outcome.FAILED, f"{verdict.reason}: {self.assistant_error}")
                return verdict
            return Verdict(Outcome.FAILED, "the run ended without a result event")
        text = str(result["text"])
        usage = result["usage"] if isinstance(result["usage"], Usage) else None
        status = result["status"]
        if result["is_error"] or str(result["subtype"]).startswith("error"):
            if self.rejected or status == 429 or self.assistant_error == "rate_limit":
                return self._limited(text, usage, now)
            if BILLING_TEXT.search(text):
                return Verdict(Outcome.FAILED, one_line(text), usage=usage, billing=True)
            return Verdict(Outcome.FAILED, _error_reason(str(result["subtype"]), status, text), usage=usage)
        if exit_status != 0:
            return exit_failure(exit_status, text, usage)
        return final_message_verdict(text, usage)

    def _limited(self, text: str, usage: Usage | None, now: datetime) -> Verdict:
        reset_at = self.rejected_reset if self.rejected_reset is not None else claude_reset(text, now)
        kind = {"five_hour": "session", "seven_day": "weekly"}.get(self.rejected_type, "")
        reason = f"{kind} limit reached" if kind else (one_line(text, 160) if text else "rate limited")
        return Verdict(Outcome.RATE_LIMITED, with_reset(reason, reset_at, now), reset_at=reset_at, usage=usage)


def _texts(message: object) -> str:
    """The text parts of an assistant message."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(as_str(part.get("text")) for part in content if isinstance(part, dict) and part.get("type") == "text")


def _usage(event: dict) -> Usage | None:
    data = event.get("usage")
    cost = as_float(event.get("total_cost_usd"))
    if not isinstance(data, dict):
        return Usage(cost_usd=cost) if cost is not None else None
    return Usage(
        input_tokens=as_int(data.get("input_tokens")),
        output_tokens=as_int(data.get("output_tokens")),
        cached_tokens=as_int(data.get("cache_read_input_tokens")),
        cost_usd=cost,
    )


def _error_reason(subtype: str, status: int | None, text: str) -> str:
    if subtype == "error_max_turns":
        return "the agent reached its maximum number of turns"
    detail = one_line(text) if text else (subtype or "error")
    return f"HTTP {status}: {detail}" if status else detail


#: Claude Code's tools that change files: shown with ✎.
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})


class ClaudeRenderer(Renderer):
    """``stream-json`` as a person reads it."""

    def __init__(self) -> None:
        self.said = ""
        """The assistant's last text: an error result repeating it is not shown twice."""

    def _event(self, event: dict) -> list[str] | None:
        kind = event.get("type")
        if kind == "assistant":
            return self._assistant(event)
        if kind == "user":
            return self._user(event)
        if kind == "system":
            return self._system(event)
        if kind == "rate_limit_event":
            return _rate_limit_lines(event.get("rate_limit_info"))
        if kind == "result":
            return _result_lines(event, self.said)
        return None

    def _assistant(self, event: dict) -> list[str]:
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        lines: list[str] = []
        if isinstance(content, str):
            lines += text_lines(content)
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                self.said = as_str(part.get("text"))
                lines += text_lines(self.said)
            elif part.get("type") == "tool_use":
                name = as_str(part.get("name"))
                lines.append(tool_line(name, arg_summary(part.get("input")), edit=name in EDIT_TOOLS))
            elif part.get("type") == "thinking":
                thought = text_lines(as_str(part.get("thinking")))
                if thought:
                    lines.append(f"… {thought[0]}")
        error = as_str(event.get("error"))
        if error:
            lines.append(f"✗ error: {error}")
        return lines

    def _user(self, event: dict) -> list[str]:
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):  # the prompt, replayed (--replay-user-messages)
            return [f"· prompt ({len(content.splitlines())} lines)"]
        lines: list[str] = []
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict) or part.get("type") != "tool_result":
                continue
            output = part.get("content")
            if isinstance(output, list):
                output = "\n".join(as_str(p.get("text")) for p in output if isinstance(p, dict))
            shown = result_lines(as_str(output))
            if part.get("is_error") is True:
                shown = [f"  ✗ {shown[0].strip() if shown else 'tool error'}", *shown[1:]]
            lines += shown
        return lines

    def _system(self, event: dict) -> list[str]:
        subtype = as_str(event.get("subtype"))
        if subtype == "init":
            model = as_str(event.get("model"))
            session = as_str(event.get("session_id"))
            return [f"· session {session}" + (f" · model {model}" if model else "")]
        if subtype == "api_retry":
            status = as_int(event.get("error_status"))
            why = as_str(event.get("error")) or "error"
            return [f"⚠ API {why}{f' (HTTP {status})' if status else ''}: retry "
                    f"{as_int(event.get('attempt')) or '?'}/{as_int(event.get('max_retries')) or '?'}"]
        return [f"· system/{subtype}" if subtype else "· system"]


def _rate_limit_lines(info: object) -> list[str]:
    if not isinstance(info, dict):
        return ["· rate_limit_event"]
    status = as_str(info.get("status"))
    if status == "allowed":
        return []  # every request says so: nothing to notice
    kind = {"five_hour": "session", "seven_day": "weekly"}.get(as_str(info.get("rateLimitType")), "")
    reset = as_float(info.get("resetsAt"))
    when = f", resets {datetime.fromtimestamp(reset).strftime('%H:%M')}" if reset else ""
    what = f"{kind} limit" if kind else "rate limit"
    if status == "rejected":
        return [f"✗ {what} reached{when}"]
    return [f"⚠ {what}: {status or 'warning'}{when}"]


def _result_lines(event: dict, said: str) -> list[str]:
    turns = as_int(event.get("num_turns"))
    seconds = as_float(event.get("duration_ms"))
    cost = as_float(event.get("total_cost_usd"))
    facts = [f"{turns} turn{'s' if turns != 1 else ''}" if turns is not None else "",
             f"{seconds / 1000:.1f}s" if seconds is not None else "",
             f"${cost:.4f}" if cost else ""]
    summary = " · ".join(f for f in facts if f)
    if event.get("is_error") is True or as_str(event.get("subtype")).startswith("error"):
        status = as_int(event.get("api_error_status"))
        text = as_str(event.get("result")) or as_str(event.get("subtype")) or "error"
        error = f"✗ {f'HTTP {status}: ' if status else ''}{one_line(text) if text != said else 'error'}"
        return [error, f"■ result: error · {summary}"]
    return [f"■ result: {as_str(event.get('subtype')) or 'done'}" + (f" · {summary}" if summary else "")]
