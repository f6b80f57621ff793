"""Kiro CLI: ``kiro-cli chat --no-interactive --trust-all-tools PROMPT``.

kiro-cli has no structured output, so this parser reads its plain text, as
publicly described (the sample transcripts are approximations, not captures):

* assistant replies start with ``> ``; the last reply is the final message;
* a tool call starts at "Using tool:" and ends at "Completed in …" / "Failed
  in …"; what it prints in between (echoed markers) is never a reply;
* errors: a "Kiro is having trouble responding right now:" chain on stderr
  (ThrottlingException = a limit), "The monthly usage limit has been
  reached", "Too many requests…", or an ``error:`` line (a rejected key makes
  kiro exit 0 with only that line);
* a "Credits: x • Time: ys" trailer on stderr after a normal run.

A large prompt is replaced by a pointer to the prompt file.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from seqrun.backends._support import clip, fits_on_argv, pointer_prompt, TailLines
from seqrun.backends.base import (
    AgentCall,
    executable,
    exit_failure,
    final_message_verdict,
    Invocation,
    LineParser,
    one_line,
)
from seqrun.outcome import Outcome, Verdict

_TOOL_START = re.compile(r"Using tool:")
_TOOL_END = re.compile(r"\b(?:Completed|Failed) in \d[\d.]*\s*m?s\b")
_CREDITS = re.compile(r"Credits:\s*[\d.]+")
_TROUBLE = re.compile(r"is having trouble responding right now", re.IGNORECASE)
_LIMIT = re.compile(
    r"ThrottlingException|credit limit exceeded|monthly usage limit|usage limit has been reached"
    r"|Too many requests, please wait",
    re.IGNORECASE,
)
_ERROR_DETAIL = re.compile(r'Error \{ code: "([^"]+)", message: "([^"]*)"')


class KiroBackend:
    name: ClassVar[str] = "kiro"
    executable: ClassVar[str] = "kiro-cli"
    aliases: ClassVar[tuple[str, ...]] = ("kiro-cli",)

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [executable(call, self.executable), "chat", "--no-interactive", "--trust-all-tools"]
        if call.model:
            argv += ["--model", call.model]
        argv += list(call.extra_args)
        prompt = call.prompt if fits_on_argv(call.prompt) else pointer_prompt(call.prompt_file)
        return Invocation(argv=[*argv, prompt], cwd=call.workdir, stdin="null")

    def parser(self) -> KiroParser:
        return KiroParser()


class KiroParser(LineParser):
    def __init__(self) -> None:
        self.reply: TailLines | None = None
        self.last_reply: str | None = None
        self.in_tool = False
        self.in_error = False
        self.error: str | None = None
        self.limited = False

    def _feed(self, text: str, raw: str) -> None:
        stripped = text.strip()
        if self.in_tool:
            if _TOOL_END.search(stripped):
                self.in_tool = False
            return
        if _TOOL_START.search(stripped):
            self._close_reply()
            self.in_tool = True
            return
        if _TROUBLE.search(stripped) or _LIMIT.search(stripped):
            self._close_reply()
            self.in_error = True
            self.error = self.error or one_line(stripped)
            self._error_line(stripped)
            return
        if _CREDITS.search(stripped):
            self._close_reply()
            return
        if self.in_error:
            self._error_line(stripped)
            return
        if text.startswith(">"):
            self._close_reply()
            self.reply = TailLines()
            self.reply.append(text[1:].removeprefix(" "))
        elif self.reply is not None:
            self.reply.append(text)
        elif stripped.lower().startswith("error:"):
            self.in_error = True
            self.error = one_line(stripped.split(":", 1)[1].strip() or stripped)

    def _error_line(self, stripped: str) -> None:
        """A line of the error chain: keep the most specific description."""
        if _LIMIT.search(stripped):
            self.limited = True
        detail = _ERROR_DETAIL.search(stripped)
        if detail:
            self.error = one_line(f"{detail.group(1)}: {detail.group(2)}")
            self.limited = self.limited or detail.group(1) == "ThrottlingException"

    def _close_reply(self) -> None:
        if self.reply is not None:
            text = self.reply.text().strip()
            if text:
                self.last_reply = clip(text)
            self.reply = None

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        self._close_reply()
        if self.limited:
            # kiro names no reset time (the monthly limit resets with the
            # billing cycle): the runner backs off.
            return Verdict(Outcome.RATE_LIMITED, self.error or "usage limit reached", self.last_reply)
        if self.error:
            return Verdict(Outcome.FAILED, self.error, self.last_reply)
        if exit_status != 0:
            return exit_failure(exit_status, self.last_reply)
        return final_message_verdict(self.last_reply)
