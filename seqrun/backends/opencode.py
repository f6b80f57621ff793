"""opencode: ``opencode run --format json``.

A small prompt goes on argv; a large one is replaced by a pointer to the
prompt file, which is also given as stdin (opencode reads a piped stdin).

``--format json`` events, one per line, each with the session's ``sessionID``
(repeated in its ``part``) and a ``part``:

* ``step_start`` … ``step_finish``: one model call. ``step_finish.part.reason``
  is ``tool-calls`` while the agent works and ``stop`` at the end; its
  ``tokens`` and ``cost`` add up over the steps;
* ``text``: assistant text; the text of the step that finished with ``stop``
  is the final message;
* ``tool_use``: a tool call with its output (echoed markers) - never read;
* ``error``: ``error.name`` and ``error.data`` {message, statusCode,
  isRetryable, responseHeaders, responseBody}; a 429 carries ``retry-after``.

:class:`OpenCodeRenderer` shows the JSON stream to a person: the text, a
line per tool call with its output abbreviated, each step's end but the
``tool-calls`` ones, and errors (rate limits included).

The default format is read too: the reply on stdout, each tool's ``$ command``
and output on stderr, closed by a line holding nothing but a colour reset.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from seqrun.backends._resets import BILLING_TEXT, parse_retry_after, with_reset
from seqrun.backends._support import as_float, as_int, as_str, clip, fits_on_argv, pointer_prompt, TailLines
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


class OpenCodeBackend:
    name: ClassVar[str] = "opencode"
    executable: ClassVar[str] = "opencode"
    #: ``--resume``: continues a session by its id, headless (same HOME and folder).
    resume_ids: ClassVar[re.Pattern[str]] = ANY_SESSION_ID

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [executable(call, self.executable), "run", "--format", "json", "--auto", "--dir", str(call.workdir)]
        if call.model:
            argv += ["-m", call.model]
        if call.resume_session:
            argv += ["--session", call.resume_session]
        argv += list(call.extra_args)
        if fits_on_argv(call.prompt):
            # stdin closed: opencode reads a piped stdin into the message.
            return Invocation(argv=[*argv, call.prompt], cwd=call.workdir, stdin="null")
        return Invocation(argv=[*argv, pointer_prompt(call.prompt_file)], cwd=call.workdir, stdin=call.prompt_file)

    def parser(self) -> OpenCodeParser:
        return OpenCodeParser()

    def renderer(self) -> OpenCodeRenderer:
        return OpenCodeRenderer()


class OpenCodeParser(LineParser):
    session_gone = re.compile(r"Session not found")
    def __init__(self) -> None:
        self.step_text = TailLines()
        self.message: str | None = None
        self.stop_reason: str | None = None
        self.error: dict | None = None
        self.usage: Usage | None = None
        self.saw_json = False
        # default (human) format
        self.in_tool = False
        self.paragraph = TailLines()
        self.plain_message: str | None = None

    # -- input ---------------------------------------------------------------

    def _feed(self, text: str, raw: str) -> None:
        event = self._decode(text)
        if event is not None and isinstance(event.get("type"), str):
            self.saw_json = True
            self._event(event)
        elif not self.saw_json:
            self._plain(text, raw)

    def _event(self, event: dict) -> None:
        kind = event["type"]
        part = event.get("part") if isinstance(event.get("part"), dict) else {}
        if self.session_id is None:
            self.session_id = as_str(event.get("sessionID")) or as_str(part.get("sessionID")) or None
        if kind == "step_start":
            self.step_text.clear()
        elif kind == "text":
            text = as_str(part.get("text"))
            if text:
                self.step_text.append(text)
        elif kind == "step_finish":
            self.usage = _add_usage(self.usage, part)
            reason = as_str(part.get("reason"))
            if reason != "tool-calls":
                self.stop_reason = reason or "stop"
                self.message = clip(self.step_text.text()) or None
                if self.stop_reason == "stop":
                    self.error = None  # a later successful step supersedes an earlier error
        elif kind == "error":
            error = event.get("error")
            self.error = error if isinstance(error, dict) else {"name": "Error", "data": {"message": as_str(error)}}
            self.stop_reason = None

    def _plain(self, text: str, raw: str) -> None:
        if self.in_tool:
            # A tool's output ends at a line that is only a colour reset.
            if raw.strip() and not text.strip():
                self.in_tool = False
            return
        stripped = text.strip()
        if stripped.startswith("$ "):
            self._close_paragraph()
            self.in_tool = True
        elif stripped.startswith("> ") and "·" in stripped:
            self._close_paragraph()  # "> build · model" header
        elif not stripped:
            self._close_paragraph()
        else:
            self.paragraph.append(text)

    def _close_paragraph(self) -> None:
        if self.paragraph:
            self.plain_message = clip(self.paragraph.text())
            self.paragraph.clear()

    # -- verdict -------------------------------------------------------------

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        if self.error is not None and self.stop_reason != "stop":
            return _error_verdict(self.error, self.message, self.usage, now)
        if exit_status != 0:
            return exit_failure(exit_status, self.message, self.usage)
        if self.saw_json:
            if self.stop_reason is None:
                return Verdict(Outcome.FAILED, "the run ended without a final step", self.message, usage=self.usage)
            if self.stop_reason != "stop":
                return Verdict(Outcome.FAILED, f"the last step ended with reason {self.stop_reason!r}", self.message, usage=self.usage)
            return final_message_verdict(self.message, self.usage)
        self._close_paragraph()
        return final_message_verdict(self.plain_message)


def _add_usage(before: Usage | None, part: dict) -> Usage | None:
    tokens = part.get("tokens")
    cost = as_float(part.get("cost"))
    if not isinstance(tokens, dict) and cost is None:
        return before
    tokens = tokens if isinstance(tokens, dict) else {}
    cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
    step = Usage(
        input_tokens=as_int(tokens.get("input")),
        output_tokens=as_int(tokens.get("output")),
        cached_tokens=as_int(cache.get("read")),
        reasoning_tokens=as_int(tokens.get("reasoning")),
        cost_usd=cost,
    )
    return step if before is None else before + step


def _error_verdict(error: dict, message: str | None, usage: Usage | None, now: datetime) -> Verdict:
    name = as_str(error.get("name")) or "Error"
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    text = as_str(data.get("message"))
    status = as_int(data.get("statusCode"))
    body = as_str(data.get("responseBody"))
    headers = data.get("responseHeaders") if isinstance(data.get("responseHeaders"), dict) else {}
    headers = {str(k).lower(): str(v) for k, v in headers.items()}
    summary = one_line(f"{name}: {text}" if text else name)
    if status:
        summary = one_line(f"HTTP {status}: {summary}")
    if BILLING_TEXT.search(body) or BILLING_TEXT.search(text):
        return Verdict(Outcome.FAILED, summary, message, usage=usage, billing=True)
    if status == 429 or "ratelimit" in name.lower().replace("_", ""):
        reset_at = None
        if "retry-after-ms" in headers:
            try:
                reset_at = now.timestamp() + float(headers["retry-after-ms"]) / 1000
            except ValueError:
                reset_at = None
        if reset_at is None and "retry-after" in headers:
            reset_at = parse_retry_after(headers["retry-after"], now)
        return Verdict(Outcome.RATE_LIMITED, with_reset(one_line(summary, 200), reset_at, now), message, reset_at=reset_at, usage=usage)
    return Verdict(Outcome.FAILED, summary, message, usage=usage)


#: opencode's tools that change files: shown with ✎.
EDIT_TOOLS = frozenset({"edit", "write", "patch", "multiedit"})


class OpenCodeRenderer(Renderer):
    """``opencode run --format json`` as a person reads it."""

    def _event(self, event: dict) -> list[str] | None:
        kind = event.get("type")
        part = event.get("part") if isinstance(event.get("part"), dict) else {}
        if kind == "step_start":
            return []
        if kind == "text":
            return text_lines(as_str(part.get("text")))
        if kind == "reasoning":
            thought = text_lines(as_str(part.get("text")))
            return [f"… {thought[0]}"] if thought else []
        if kind == "tool_use":
            return _tool_lines(part)
        if kind == "step_finish":
            reason = as_str(part.get("reason"))
            if reason == "tool-calls":
                return []
            tokens = part.get("tokens") if isinstance(part.get("tokens"), dict) else {}
            total = as_int(tokens.get("total"))
            cost = as_float(part.get("cost"))
            facts = "".join([f" · {total} tokens" if total is not None else "", f" · ${cost:.4f}" if cost else ""])
            return [f"■ step finished: {reason or 'stop'}{facts}"]
        if kind == "error":
            return [_error_line(event.get("error"))]
        return None


def _tool_lines(part: dict) -> list[str]:
    name = as_str(part.get("tool"))
    state = part.get("state") if isinstance(part.get("state"), dict) else {}
    lines = [tool_line(name, arg_summary(state.get("input")) or as_str(state.get("title")), edit=name in EDIT_TOOLS)]
    if as_str(state.get("status")) == "error":
        lines.append(f"  ✗ {one_line(as_str(state.get('error')), 300) or 'tool error'}")
    else:
        lines += result_lines(as_str(state.get("output")))
    return lines


def _error_line(error: object) -> str:
    if not isinstance(error, dict):
        return f"✗ {as_str(error) or 'error'}"
    name = as_str(error.get("name")) or "Error"
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    status = as_int(data.get("statusCode"))
    text = one_line(as_str(data.get("message")), 300)
    limited = status == 429 or "ratelimit" in name.lower().replace("_", "")
    head = "rate limited" if limited else name
    return f"✗ {head}{f' (HTTP {status})' if status else ''}{': ' + text if text else ''}"
