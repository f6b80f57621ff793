"""The assigner behind :mod:`seqrun.assign` (``assigner``): asks the
``--assign-backend`` agent to classify each dispatch unit and runs the unit
with the owner's backend.

:mod:`seqrun.assign`'s docstring states what it does; this module is
imported when ``--assign-backend`` registers the assigner: ``seqrun --co``
never loads it. Its names stay importable from :mod:`seqrun.assign`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrun.assign import CLASSIFY_PROMPT, DEFAULT_OWNERS, TYPES, assignments_key
from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.text import LazyPattern

if TYPE_CHECKING:
    from seqrun.main import Session


_OBJECT = LazyPattern(r"\{[^{}]*\}", re.DOTALL)


def parse_assignment(text: str | None) -> dict[str, str] | None:
    """The first JSON object in ``text`` with a known ``type`` and an
    ``owner_agent``; tolerant of code fences and prose around it."""
    import json

    if not text:
        return None
    for match in _OBJECT.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        kind = str(obj.get("type", "")).strip().lower()
        owner = str(obj.get("owner_agent", "")).strip().lower()
        if kind in TYPES and owner:
            return {"type": kind, "owner_agent": owner}
    return None


class Assigner:
    def __init__(self, config: Config) -> None:
        self.config = config
        owners = dict(DEFAULT_OWNERS)
        owners.update({str(k).lower(): str(v) for k, v in config.section("owners").items()})
        self.owners = owners

    def _cache(self, task: Task) -> dict[str, Any]:
        plugin = self.config.pluginmanager.get_plugin("state-files")
        if plugin is None or task.spec is None:
            return self.config.stash.setdefault(assignments_key, {})
        return plugin.assignments(task.spec)

    @hookimpl
    def seqrun_assign_backend(self, task: Task, session: Session) -> str | None:
        unit = task.root
        cache = self._cache(task)
        answer = cache.get(unit.id)
        if not isinstance(answer, dict):
            answer = self.classify(unit, session)
            if answer is None:
                return None
            cache[unit.id] = answer
        owner = str(answer.get("owner_agent", "")).lower()
        backend = self.owners.get(owner)
        if backend is None:
            _warn(f"assignment of task {unit.id}: unknown owner {owner!r}; using --backend")
        return backend

    def classify(self, unit: Task, session: Session) -> dict[str, str] | None:
        import tempfile

        from seqrun.backends.base import AgentCall
        from seqrun.backends.registry import registry
        from seqrun.paths import seqrun_dir, specs_root, workdir
        from seqrun.terminal import run_in_pty

        config = self.config
        try:
            backend = registry(config).get(config.option.assign_backend)
        except Exception as exc:  # noqa: BLE001 - fall back, never stop the run
            _warn(f"assignment: {exc}; using --backend")
            return None
        prompt = CLASSIFY_PROMPT.format(task_id=unit.id, title=unit.title, details=unit.details[:4000])
        assert unit.spec is not None
        folder = seqrun_dir(specs_root(unit.spec)) / "assign"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".md", dir=folder, delete=False, encoding="utf-8") as f:
            f.write(prompt)
        call = AgentCall(prompt=prompt, prompt_file=Path(f.name), workdir=workdir(config),
                         task_id=unit.id, options=config.section("backends").get(backend.name, {}),
                         sandbox=bool(getattr(config.option, "is_sandbox", False)))
        parser = backend.parser()
        try:
            result = run_in_pty(backend.invocation(call), log_path=Path(f.name).with_suffix(".log"),
                                on_line=parser.feed_line, timeout=config.option.assign_timeout,
                                grace=config.option.kill_grace)
            verdict = parser.finish(result.exit_status)
        except Exception as exc:  # noqa: BLE001
            _warn(f"assignment of task {unit.id} failed ({exc}); using --backend")
            return None
        answer = parse_assignment(verdict.final_message)
        if answer is None:
            _warn(f"assignment of task {unit.id}: no usable answer "
                  f"({verdict.reason or 'no JSON object'}); using --backend")
        return answer


def _warn(message: str) -> None:
    print(f"WARNING {message}", file=sys.stderr)
