"""``demo``: a scripted agent that needs no agent CLI, for trying seqrun out.

It runs :mod:`seqrun.backends.demo_agent` with the current Python, the prompt
file on stdin, and reads its output with the claude parser (the demo agent
prints Claude's ``stream-json`` events). A task whose title has the word HALT
halts, FAIL fails (no marker); every other task is done after about a second
(``SEQRUN_DEMO_DELAY`` seconds, 0 allowed).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar

from seqrun.backends.base import AgentCall, Invocation
from seqrun.backends.claude import ClaudeParser, ClaudeRenderer


class DemoBackend:
    name: ClassVar[str] = "demo"
    executable: ClassVar[str] = sys.executable

    def invocation(self, call: AgentCall) -> Invocation:
        # The agent runs in the task's directory: make sure it can import
        # seqrun even when seqrun is used from a source checkout.
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        return Invocation(
            argv=[sys.executable, "-m", "seqrun.backends.demo_agent"],
            env={"PYTHONPATH": path},
            cwd=call.workdir,
            stdin=call.prompt_file,
        )

    def parser(self) -> ClaudeParser:
        return ClaudeParser()

    def renderer(self) -> ClaudeRenderer:
        return ClaudeRenderer()
