"""Any command: an argv template from the backend's options.

Configured as ``[tool.seqrun.backends.command]``::

    argv = ["my-agent", "--cwd", "{workdir}", "--task", "{task_id}", "--prompt-file", "{prompt_file}"]
    stdin = "prompt"      # "prompt" (default: the prompt file), "null" or "tty"

Placeholders: ``{prompt_file}``, ``{workdir}``, ``{task_id}``, ``{model}``; an
element that is only ``{model}`` is dropped when no model is set. The prompt
itself never goes on argv (it may be any size): the command reads the file or
its stdin.

The output is plain text: the final message is its last non-empty paragraph,
and its verdict comes from the markers in that paragraph. A non-zero exit
status is a failure whatever was printed.
"""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from seqrun.backends._support import clip, TailLines
from seqrun.backends.base import AgentCall, exit_failure, final_message_verdict, Invocation, LineParser
from seqrun.config import UsageError
from seqrun.outcome import Verdict


class CommandBackend:
    name: ClassVar[str] = "command"
    executable: ClassVar[str] = ""
    """None of its own: the first element of the ``argv`` option."""

    def invocation(self, call: AgentCall) -> Invocation:
        template = call.options.get("argv")
        if not isinstance(template, (list, tuple)) or not template or not all(isinstance(a, str) for a in template):
            raise UsageError("the command backend needs an 'argv' option: a non-empty list of strings")
        values = {
            "{prompt_file}": str(call.prompt_file),
            "{workdir}": str(call.workdir),
            "{task_id}": call.task_id,
            "{model}": call.model or "",
        }
        argv: list[str] = []
        for element in template:
            if element == "{model}" and not call.model:
                continue
            for placeholder, value in values.items():
                element = element.replace(placeholder, value)
            argv.append(element)
        argv += list(call.extra_args)
        stdin = call.options.get("stdin", "prompt")
        return Invocation(
            argv=argv,
            cwd=call.workdir,
            stdin=call.prompt_file if stdin == "prompt" else str(stdin),
        )

    def parser(self) -> CommandParser:
        return CommandParser()


class CommandParser(LineParser):
    """The last non-empty paragraph of plain output is the final message."""

    def __init__(self) -> None:
        self.paragraph = TailLines()
        self.last: str | None = None

    def _feed(self, text: str, raw: str) -> None:
        if text.strip():
            self.paragraph.append(text)
        else:
            self._close()

    def _close(self) -> None:
        if self.paragraph:
            self.last = clip(self.paragraph.text())
            self.paragraph.clear()

    def _finish(self, exit_status: int, now: datetime) -> Verdict:
        self._close()
        if exit_status != 0:
            return exit_failure(exit_status, self.last)
        return final_message_verdict(self.last)
