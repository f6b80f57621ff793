"""The prompt sent to the agent for one dispatch (``seqrun_build_prompt``).

The default carries what the seed script's prompt had: the task id and title,
its subtasks (``--dispatch unit``), details and requirement ids, the paths of
the spec's documents and of the state and progress files, the markers and the
rules. ``--prompt-template FILE`` replaces the text; ``{name}`` placeholders
are filled from :func:`prompt_fields`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.main import Session

DEFAULT_TEMPLATE = """\
You are implementing one task of the spec "{spec_name}", working in {workdir}.

## Task {task_id}: {task_title}
Task ID: {task_id}

{task_block}
## Inputs
- Requirements: {requirements_md}
- Design: {design_md}
- Task list: {tasks_md}
- Run state: {state_file}
- Progress log: {progress_file}

Read the requirements and design documents first, then do the task above and
nothing else: other tasks of the list are run separately, one at a time.

## Rules
- Make the change completely: code, tests, and the checks the project uses.
- Do not mark tasks in {tasks_md} yourself; seqrun ticks them when you finish.
- Do not start work on other tasks, and do not stop half-way to ask questions
  you can answer by reading the repository.
- When the task is complete and verified, end your final message with {done_marker}
- If you are blocked and need a human, explain why and end your final message with {halt_marker}
"""


def _task_block(task: Task, subtasks: list[Task]) -> str:
    lines: list[str] = []
    if task.details:
        lines += [task.details, ""]
    if task.requirements:
        lines += [f"Requirements covered: {', '.join(task.requirements)}", ""]
    if task.depends:
        lines += [f"Depends on (already done): {', '.join(task.depends)}", ""]
    if subtasks:
        lines.append("### Subtasks (do all of them in this run)")
        for sub in subtasks:
            flag = " (optional)" if sub.optional else ""
            lines.append(f"- {sub.id} {sub.title}{flag}")
            if sub.details:
                lines += ["  " + d if d else "" for d in sub.details.splitlines()]
            if sub.requirements:
                lines.append(f"  Requirements: {', '.join(sub.requirements)}")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


FIELD_NAMES = (
    "spec_name", "task_id", "task_title", "task_details", "task_block", "subtask_ids",
    "requirements", "workdir", "requirements_md", "design_md", "tasks_md", "state_file",
    "progress_file", "done_marker", "halt_marker",
)


def prompt_fields(task: Task, subtasks: list[Task], session: Session) -> dict[str, str]:
    from seqrun.backends.base import DONE_MARKERS, HALT_MARKER
    from seqrun.paths import workdir

    assert task.spec is not None
    folder = task.spec.folder
    specs_root = folder.parent
    return {
        "spec_name": task.spec.name,
        "task_id": task.id,
        "task_title": task.title,
        "task_details": task.details,
        "task_block": _task_block(task, subtasks),
        "subtask_ids": ", ".join(t.id for t in subtasks),
        "requirements": ", ".join(task.requirements),
        "workdir": str(workdir(session.config)),
        "requirements_md": str(folder / "requirements.md"),
        "design_md": str(folder / "design.md"),
        "tasks_md": str(task.spec.tasks_file),
        "state_file": str(specs_root / "SEQUENTIAL_STATE.json"),
        "progress_file": str(specs_root / "SEQUENTIAL_PROGRESS.md"),
        "done_marker": DONE_MARKERS[0],
        "halt_marker": HALT_MARKER,
    }


class _Fields(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        raise UsageError(f"prompt template: unknown placeholder {{{key}}} "
                         f"(known: {', '.join(sorted(self))})")


def render(template: str, fields: dict[str, str]) -> str:
    return template.format_map(_Fields(fields))


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("agent")
    group.add_argument("--prompt-template", default=None, metavar="FILE",
                       help="file with the prompt text; {task_id}, {task_title}, {task_block}, "
                       "{tasks_md}, {done_marker}, {halt_marker}… are filled in")


template_key = StashKey[str]()


@hookimpl
def seqrun_configure(config: Config) -> None:
    path = config.option.prompt_template
    if not path:
        config.stash[template_key] = DEFAULT_TEMPLATE
        return
    try:
        template = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --prompt-template {path}: {exc}") from None
    try:
        render(template, dict.fromkeys(FIELD_NAMES, ""))  # unknown {names}: fail now, not at 3 am
    except (ValueError, IndexError) as exc:
        raise UsageError(f"--prompt-template {path}: {exc}") from None
    config.stash[template_key] = template


@hookimpl(trylast=True)
def seqrun_build_prompt(task: Task, subtasks: list[Task], session: Session) -> str:
    template = session.config.stash.get(template_key, DEFAULT_TEMPLATE)
    return render(template, prompt_fields(task, subtasks, session))
