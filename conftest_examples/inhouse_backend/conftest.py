"""A backend for an in-house agent CLI: ``seqrun --backend acme``.

Copy this file to ``.kiro/specs/conftest.py`` and change the three parts to
match your CLI: how it is invoked, and how its output tells what happened.

This one drives a made-up ``acme-agent`` that takes the prompt as a file and
prints JSON lines::

    {"event": "message", "text": "Reading the spec..."}
    {"event": "message", "text": "Done. <promise>TASK_DONE</promise>"}
    {"event": "end", "status": "ok", "cost_usd": 0.012, "input_tokens": 900, "output_tokens": 80}

The verdict comes from the *last message* of a run that ended with status
``ok`` — never from searching all of the output, where the prompt (which
holds the markers) may be echoed. Options come from seqrun.toml::

    [backends.acme]
    executable = "/opt/acme/bin/acme-agent"   # when it is not on PATH
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from seqrun.backends.base import (
    AgentCall,
    decode_json_line,
    executable,
    exit_failure,
    final_message_verdict,
    Invocation,
    LineParser,
)
from seqrun.hookspec import hookimpl
from seqrun.outcome import Outcome, Usage, Verdict


class AcmeBackend:
    name: ClassVar[str] = "acme"
    executable: ClassVar[str] = "acme-agent"  # checked on PATH before the run starts

    def invocation(self, call: AgentCall) -> Invocation:
        argv = [executable(call, self.executable), "--json", "--cwd", str(call.workdir),
                "--task-file", str(call.prompt_file)]  # a file: prompts can be large
        if call.model:
            argv += ["--model", call.model]
        return Invocation(argv=argv, cwd=call.workdir, stdin="null")

    def parser(self) -> AcmeParser:
        return AcmeParser()


class AcmeParser(LineParser):
    """Keeps only what the verdict needs: the last message and the end event."""

    def __init__(self) -> None:
        self.last_message: str | None = None
        self.end: dict[str, Any] | None = None

    def _feed(self, text: str, raw: str) -> None:
        event = decode_json_line(text)  # None for anything that is not a JSON object
        if event is None:
            return
        if event.get("event") == "message" and isinstance(event.get("text"), str):
            self.last_message = event["text"]
        elif event.get("event") == "end":
            self.end = event

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        end = self.end or {}
        usage = Usage(input_tokens=end.get("input_tokens"), output_tokens=end.get("output_tokens"),
                      cost_usd=end.get("cost_usd"))
        if exit_status != 0:
            return exit_failure(exit_status, self.last_message, usage)
        if end.get("status") != "ok":
            error = end.get("error") or "the run did not end with status ok"
            return Verdict(Outcome.FAILED, f"acme-agent: {error}", self.last_message, usage=usage)
        return final_message_verdict(self.last_message, usage)


@hookimpl
def seqrun_register_backends(register: Any) -> None:
    register(AcmeBackend)
