"""codeagent-wrapper, the Go executor ``sequential_loop.py`` dispatched through.

Invocation: ``codeagent-wrapper [--backend B] [--model M] -`` with the prompt
file on stdin and the task's working directory as cwd (single-task mode;
seqrun hosts the tmux window itself, so the wrapper's ``--tmux-session`` and
``--parallel`` modes are not used). ``CODEX_BYPASS_SANDBOX`` and
``CODEAGENT_SKIP_PERMISSIONS`` are set so that the agent it starts can write
without asking, as every other backend here does.

What it prints (read from its Go source, cexll/myclaude and
PeterFile/devpilot-agents; no captured transcript was available):

* on stderr a banner - ``[codeagent-wrapper]`` then ``  Backend:``,
  ``  Command:``, ``  PID:``, ``  Log:`` lines - and the backend's own stderr;
* on success (exit 0) the agent's final message on stdout, then
  ``---`` and ``SESSION_ID: <id>`` when there is a session;
* on failure the backend's exit status (124 on its own timeout, 127 when the
  backend is missing) and a ``=== Recent Errors ===`` list on stderr. The
  backend's error event itself is only in the wrapper's log file, so a rate
  limit is recognised only when the error text says so;
* in ``--parallel`` mode (PeterFile's build) one JSON ExecutionReport line
  whose ``task_results`` entries hold ``exit_code``, ``message``, ``error``,
  ``session_id``.

The message the wrapper extracts for gemini concatenates *every* ``message``
event, the echoed prompt (with both markers) included. So the verdict here
reads only the marker that ENDS the message, as the prompt asks agents to
write it; a marker earlier in the text does not count.
"""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

from seqrun.backends._resets import BILLING_TEXT, RATE_LIMIT_TEXT, any_reset, with_reset
from seqrun.backends._support import as_int, as_str, clip, TailLines
from seqrun.backends.base import (
    DONE_MARKERS,
    HALT_MARKER,
    AgentCall,
    decode_json_line,
    executable,
    exit_failure,
    final_message_verdict,
    Invocation,
    LineParser,
    one_line,
)
from seqrun.outcome import Kind, Outcome, Verdict

_BANNER = re.compile(r"^\[[\w.-]+\]$")
_BANNER_FIELD = re.compile(r"^\s+(Backend|Command|PID|Log):")
_SESSION = re.compile(r"^SESSION_ID:\s*(\S+)")


class CodeagentWrapperBackend:
    name: ClassVar[str] = "codeagent-wrapper"
    executable: ClassVar[str] = "codeagent-wrapper"
    aliases: ClassVar[tuple[str, ...]] = ("codeagent",)

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [executable(call, self.executable)]
        backend = call.options.get("backend")
        if isinstance(backend, str) and backend:
            argv += ["--backend", backend]
        if call.model:
            argv += ["--model", call.model]  # newer wrapper builds only
        argv += list(call.extra_args)
        argv.append("-")  # task from stdin: any size, no quoting
        env = {"CODEX_BYPASS_SANDBOX": "true", "CODEAGENT_SKIP_PERMISSIONS": "true"}
        return Invocation(argv=argv, env=env, cwd=call.workdir, stdin=call.prompt_file)

    def parser(self) -> CodeagentWrapperParser:
        return CodeagentWrapperParser()


class CodeagentWrapperParser(LineParser):
    def __init__(self) -> None:
        self.body = TailLines()
        self.in_banner = False
        self.in_errors = False
        self.errors: list[str] = []
        self.session_id: str | None = None
        self.report: dict | None = None

    def _feed(self, text: str, raw: str) -> None:
        stripped = text.strip()
        if self.in_banner:
            if _BANNER_FIELD.match(text):
                return
            self.in_banner = False
        if _BANNER.match(stripped):
            self.in_banner = True
            return
        if stripped == "=== Recent Errors ===":
            self.in_errors = True
            return
        if self.in_errors:
            if stripped.startswith("Log file:"):
                self.in_errors = False
            elif stripped:
                self.errors = [*self.errors[-19:], clip(stripped, 4000)]
            return
        if self.session_id is not None:
            return  # the message ended at the session trailer; later lines are stderr
        session = _SESSION.match(stripped)
        if session:
            self.session_id = session.group(1)
            # The message ends at the "---" printed just before the session id.
            for back in range(1, min(len(self.body), 5) + 1):
                if self.body.lines[-back].strip() == "---":
                    self.body.drop_last(back)
                    break
            return
        event = decode_json_line(text) if stripped.startswith("{") else None
        if event is not None and isinstance(event.get("task_results") or event.get("tasks"), list):
            results = event.get("task_results") or event.get("tasks")
            entries = [r for r in results if isinstance(r, dict)]
            self.report = entries[-1] if entries else {}
            return
        self.body.append(text)

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        if self.report is not None:
            self.session_id = self.session_id or as_str(self.report.get("session_id")) or None
            code = as_int(self.report.get("exit_code")) or 0
            message = clip(as_str(self.report.get("message"))) or None
            error = as_str(self.report.get("error"))
            if code != 0 or error:
                return _failure(code or exit_status, [error] if error else [], [], message, now)
            return trailing_marker_verdict(message)
        message = clip(self.body.text().strip()) or None
        if exit_status != 0:
            return _failure(exit_status, self.errors, list(self.body.lines)[-50:], None, now)
        return trailing_marker_verdict(message)


def trailing_marker_verdict(message: str | None) -> Verdict:
    """The verdict from the marker that ends ``message`` (see the module doc)."""
    text = (message or "").rstrip().rstrip("`*_.!").rstrip()
    for marker in (HALT_MARKER, *DONE_MARKERS):
        if text.endswith(marker):
            return replace(final_message_verdict(marker), final_message=message)
    if any(m in text for m in (HALT_MARKER, *DONE_MARKERS)):
        return Verdict(Outcome.FAILED, "the final message does not end with a marker", message, kind=Kind.NO_MARKER)
    return final_message_verdict(message)


def _failure(exit_status: int, errors: list[str], context: list[str], message: str | None, now: datetime) -> Verdict:
    """A failed run: a limit or billing problem when the error text (or the
    backend's stderr just before it) says so, else the first error line."""
    lines = [*errors, *context]
    text = "\n".join(lines)
    if BILLING_TEXT.search(text):
        return Verdict(Outcome.FAILED, "quota exceeded: check the plan and billing details", message, billing=True)
    hits = [(line, m) for line in lines for m in [RATE_LIMIT_TEXT.search(line)] if m]
    if hits:
        line, m = hits[0]
        # From the start of the sentence that says so, not the log prefix.
        start = max(line.rfind(": ", 0, m.start()), line.rfind(". ", 0, m.start()))
        reason = one_line(line[start + 2 if start >= 0 else 0 :], 160)
        reset_at = any_reset(text, now)
        return Verdict(Outcome.RATE_LIMITED, with_reset(reason, reset_at, now), message, reset_at=reset_at)
    verdict = exit_failure(exit_status, message)
    if errors:
        return replace(verdict, reason=f"{verdict.reason}: {one_line(errors[0], 200)}")
    return verdict
