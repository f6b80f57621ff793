"""Google Gemini CLI: ``gemini -p PROMPT -o stream-json -y``.

A small prompt goes on argv. A large one goes on stdin, which gemini appends to
the ``-p`` text, with ``-p`` holding a short pointer to the prompt file.

``stream-json`` events, one per line:

* ``init``: first, with the ``session_id``;
* ``message`` with ``role == "user"``: the ECHOED PROMPT (it holds both
  markers) - never read;
* ``message`` with ``role == "assistant"``: the reply, in ``delta`` chunks to
  concatenate (a tool call in between starts a new message);
* ``result``: ``status`` success or error (``error.message``), ``stats``;
* ``error`` events are warnings.

:class:`GeminiRenderer` shows the stream to a person: the reply (its
``delta`` chunks joined into lines), a line per tool call, the tool results
abbreviated, warnings and the result's error.

``-o json`` prints one pretty-printed object at the end (``response``,
``stats``) or, on failure, nothing on stdout and ``{session_id, error}`` on
stderr. Quota errors make the process exit 429 mod 256 = 173, and the reset
hint ("Please retry in 9h41m12.3s.") only appears in the stderr stack dump.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import ClassVar

from seqrun.backends._resets import retry_in, with_reset
from seqrun.backends._support import as_int, as_str, clip, fits_on_argv, pointer_prompt
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
    printable_line,
    Renderer,
    result_lines,
    text_lines,
    tool_line,
)
from seqrun.outcome import Outcome, Usage, Verdict

#: The exit status gemini uses for an HTTP 429 in the JSON output modes.
EXIT_TOO_MANY_REQUESTS = 429 % 256

_QUOTA_TEXT = re.compile(
    r"TerminalQuotaError|RetryableQuotaError|exhausted your .{0,30}quota|quota exceeded|RESOURCE_EXHAUSTED"
    r"|rate[ _-]?limit|too many requests|\bcode: 429\b|\bstatus: 429\b",
    re.IGNORECASE,
)
_API_ERROR = re.compile(r"\[API Error: (.*)\]", re.DOTALL)


class GeminiBackend:
    name: ClassVar[str] = "gemini"
    executable: ClassVar[str] = "gemini"
    #: ``--resume``: continues a session by its id, headless (same HOME and folder).
    resume_ids: ClassVar[re.Pattern[str]] = ANY_SESSION_ID

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [executable(call, self.executable), "-o", "stream-json", "-y", "--skip-trust"]
        if call.model:
            argv += ["-m", call.model]
        if call.resume_session:
            argv += ["--resume", call.resume_session]
        argv += list(call.extra_args)
        if fits_on_argv(call.prompt):
            # stdin closed: gemini would append a piped stdin to the prompt.
            return Invocation(argv=[*argv, "-p", call.prompt], cwd=call.workdir, stdin="null")
        return Invocation(argv=[*argv, "-p", pointer_prompt(call.prompt_file)], cwd=call.workdir, stdin=call.prompt_file)

    def parser(self) -> GeminiParser:
        return GeminiParser()

    def renderer(self) -> GeminiRenderer:
        return GeminiRenderer()


class GeminiParser(LineParser):
    session_gone = re.compile(r"Error resuming session")
    def __init__(self) -> None:
        self.reply: list[str] = []
        self.reply_chars = 0
        self.status: str | None = None
        self.error: str | None = None
        self.error_code: int | None = None
        self.usage: Usage | None = None
        self.quota_signal = False
        self.retry_text: str | None = None
        self.block: list[str] | None = None  # a pretty-printed JSON object (-o json)
        self.block_chars = 0

    # -- input ---------------------------------------------------------------

    def _feed(self, text: str, raw: str) -> None:
        stripped = text.strip()
        if self.block is not None:
            self._feed_block(text, stripped)
            return
        if text == "{":  # start of a pretty-printed object (-o json), at column 0
            self.block, self.block_chars = [text], 1
            return
        event = self._decode(text)
        if event is not None and isinstance(event.get("type"), str):
            self._event(event)
            return
        # Anything else is stderr: keep only the limit signals.
        if _QUOTA_TEXT.search(text):
            self.quota_signal = True
        if "retry in" in text.lower():
            self.retry_text = clip(stripped, 1000)

    def _feed_block(self, text: str, stripped: str) -> None:
        assert self.block is not None
        if text and not text[0].isspace() and text != "}":
            return  # the object's inner lines are indented: this is interleaved stderr
        self.block.append(text)
        self.block_chars += len(text)
        if text == "}":
            block, self.block = self.block, None
            try:
                obj = json.loads("\n".join(block))
            except ValueError:
                return
            if isinstance(obj, dict):
                self._json_mode(obj)
        elif self.block_chars > 4 * 1_000_000:
            self.block = None  # not the object we expected; stop buffering

    def _event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "message" and event.get("role") == "assistant":
            content = as_str(event.get("content"))
            if event.get("delta") is not True:
                self.reply, self.reply_chars = [], 0
            self.reply.append(content)
            self.reply_chars += len(content)
            if self.reply_chars > 2_000_000:
                joined = clip("".join(self.reply))
                self.reply, self.reply_chars = [joined], len(joined)
        elif kind in ("tool_use", "tool_result"):
            # The assistant speaks again after a tool: only that last message is final.
            self.reply, self.reply_chars = [], 0
        elif kind == "result":
            self.status = as_str(event.get("status")) or "success"
            error = event.get("error")
            if isinstance(error, dict):
                self.error = clip(as_str(error.get("message")) or as_str(error.get("type")) or "error")
                self.error_code = as_int(error.get("code"))
            self.usage = _stream_usage(event.get("stats"))
        elif kind == "init":
            self.session_id = self.session_id or as_str(event.get("session_id")) or None
        # "message" role=user is the echoed prompt; "error" warnings are skipped.

    def _json_mode(self, obj: dict) -> None:
        """The single object of ``-o json``: a response, or the stderr error."""
        self.session_id = self.session_id or as_str(obj.get("session_id")) or None
        error = obj.get("error")
        if isinstance(error, dict):
            self.status = "error"
            self.error = clip(as_str(error.get("message")) or as_str(error.get("type")) or "error")
            self.error_code = as_int(error.get("code"))
        elif "response" in obj:
            self.status = "success"
            self.reply, self.reply_chars = [clip(as_str(obj.get("response")))], 0
            self.usage = _json_usage(obj.get("stats"))

    # -- verdict -------------------------------------------------------------

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        message = clip("".join(self.reply)) if self.reply else None
        if self.status == "error" or (self.status is None and exit_status != 0):
            limited = (
                self.error_code == 429
                or exit_status == EXIT_TOO_MANY_REQUESTS
                or self.quota_signal
                or bool(self.error and _QUOTA_TEXT.search(self.error))
            )
            if limited:
                reset_at = retry_in(self.retry_text, now) if self.retry_text else None
                reason = one_line(_api_message(self.error), 160) if self.error else "quota exhausted"
                return Verdict(Outcome.RATE_LIMITED, with_reset(reason, reset_at, now), message, reset_at=reset_at, usage=self.usage)
            if self.error is None:
                return exit_failure(exit_status, message, self.usage)
            return Verdict(Outcome.FAILED, _error_reason(self.error), message, usage=self.usage)
        if exit_status != 0:
            return exit_failure(exit_status, message, self.usage)
        if self.status is None:
            return Verdict(Outcome.FAILED, "the run ended without a result event", message, usage=self.usage)
        return final_message_verdict(message, self.usage)


def _api_message(error: str) -> str:
    """The text inside "[API Error: …]"."""
    m = _API_ERROR.search(error)
    return m.group(1) if m else error


def _error_reason(error: str) -> str:
    inner = _api_message(error)
    try:
        body = json.loads(inner)
    except ValueError:
        return one_line(inner)
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = as_int(detail.get("code"))
        text = as_str(detail.get("message")) or as_str(detail.get("status"))
        return one_line(f"HTTP {code}: {text}" if code else text)
    return one_line(inner)


def _stream_usage(stats: object) -> Usage | None:
    if not isinstance(stats, dict):
        return None
    return Usage(
        input_tokens=as_int(stats.get("input_tokens")),
        output_tokens=as_int(stats.get("output_tokens")),
        cached_tokens=as_int(stats.get("cached")),
    )


def _json_usage(stats: object) -> Usage | None:
    """``-o json`` reports tokens per model: add them up."""
    models = stats.get("models") if isinstance(stats, dict) else None
    if not isinstance(models, dict):
        return None
    total: Usage | None = None
    for model in models.values():
        tokens = model.get("tokens") if isinstance(model, dict) else None
        if isinstance(tokens, dict):
            usage = Usage(
                input_tokens=as_int(tokens.get("prompt")),
                output_tokens=as_int(tokens.get("candidates")),
                cached_tokens=as_int(tokens.get("cached")),
                reasoning_tokens=as_int(tokens.get("thoughts")),
            )
            total = usage if total is None else total + usage
    return total


#: gemini's tools that change files: shown with ✎.
EDIT_TOOLS = frozenset({"replace", "write_file", "edit", "smart_edit"})
#: Longest reply text held back waiting for the end of its line.
_PENDING_CHARS = 10_000


class GeminiRenderer(Renderer):
    """``-o stream-json`` as a person reads it."""

    def __init__(self) -> None:
        self.pending = ""
        """The reply's text after its last newline: ``delta`` chunks end mid-line."""

    def finish(self) -> list[str]:
        pending, self.pending = self.pending, ""
        return [printable_line(pending)] if pending.strip() else []

    def _event(self, event: dict) -> list[str] | None:
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            return self._reply(as_str(event.get("content")), event.get("delta") is True)
        lines = self.finish()
        if kind == "init":
            model = as_str(event.get("model"))
            lines.append(f"· session {as_str(event.get('session_id'))}" + (f" · model {model}" if model else ""))
        elif kind == "message":  # the prompt, echoed
            lines.append(f"· prompt ({len(as_str(event.get('content')).splitlines())} lines)")
        elif kind == "tool_use":
            name = as_str(event.get("tool_name"))
            lines.append(tool_line(name, arg_summary(event.get("parameters")), edit=name in EDIT_TOOLS))
        elif kind == "tool_result":
            if as_str(event.get("status")) == "error":
                error = event.get("error")
                message = as_str(error.get("message")) if isinstance(error, dict) else as_str(error)
                lines.append(f"  ✗ {one_line(message, 300) or 'tool error'}")
            else:
                lines += result_lines(as_str(event.get("output")))
        elif kind == "error":
            lines.append(f"⚠ {as_str(event.get('message')) or as_str(event.get('severity')) or 'error'}")
        elif kind == "result":
            lines += _result_lines(event)
        else:
            return lines or None
        return lines

    def _reply(self, content: str, delta: bool) -> list[str]:
        lines = [] if delta else self.finish()
        text = self.pending + content
        head, newline, tail = text.rpartition("\n")
        if len(tail) > _PENDING_CHARS:
            head, newline, tail = text, "\n", ""
        self.pending = tail
        return lines + (text_lines(head + newline) if newline else [])


def _result_lines(event: dict) -> list[str]:
    stats = event.get("stats") if isinstance(event.get("stats"), dict) else {}
    tokens = as_int(stats.get("total_tokens"))
    calls = as_int(stats.get("tool_calls"))
    facts = " · ".join(f for f in (f"{tokens} tokens" if tokens is not None else "",
                                    f"{calls} tool call{'s' if calls != 1 else ''}" if calls else "") if f)
    status = as_str(event.get("status")) or "success"
    lines = []
    error = event.get("error")
    if isinstance(error, dict):
        lines.append(f"✗ {_error_reason(as_str(error.get('message')) or as_str(error.get('type')) or 'error')}")
    lines.append(f"■ result: {status}" + (f" · {facts}" if facts else ""))
    return lines
