"""The prompt sent to the agent for one attempt (``seqrun_build_prompt``).

The default carries what the seed script's prompt had: the task id and title,
its subtasks (``--dispatch unit``), details and requirement ids, the paths of
the spec's documents (those that exist) and of the state and progress files,
the markers and the rules; and what makes a rerun learn:

- the parent tasks' titles and details, so a leaf is never read out of context;
- ``{previous_attempt}``: after an attempt that did not pass — in this run, or
  in an earlier one (the state file keeps it) — its number, kind and reason,
  the tail of its final message and of any verification output
  (``seqrun_attempt_feedback`` replaces or extends it);
- ``{notes}``: what plugins say about the task, e.g. which commands will
  verify it (``seqrun_prompt_notes``).

An attempt that continues the CLI's own session (``--resume``) gets a short
continuation prompt instead: what cut the session off, and to go on.
``--prompt-template FILE`` replaces the text; ``{name}`` placeholders are
filled from :func:`~seqrun.promptfields.prompt_fields`.

This module is the plugin's light part (its option, the templates,
registration); the fields and their rendering are :mod:`seqrun.promptfields`,
imported when the first prompt is built: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.nodes import Task, Unit
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.outcome import PreviousAttempt
    from seqrun.main import Session

DEFAULT_TEMPLATE = """\
You are implementing one task of the spec "{spec_name}", working in {workdir}.

## Task {task_id}: {task_title}
Task ID: {task_id}

{parent_block}{task_block}{previous_attempt}
## Inputs
{inputs}

Read the documents above first, then do the task above and nothing else:
other tasks of the list are run separately, one at a time.
{notes}
## Rules
- Make the change completely: code, tests, and the checks the project uses.
- Do not mark tasks in {tasks_md} yourself; seqrun ticks them when you finish.
- Do not start work on other tasks, and do not stop half-way to ask questions
  you can answer by reading the repository.
- When the task is complete and verified, end your final message with {done_marker}
- If you are blocked and need a human, explain why and end your final message with {halt_marker}
"""


CONTINUE_TEMPLATE = """\
You are continuing task {task_id} ("{task_title}") of the spec "{spec_name}" in the same session.
{previous_attempt}
Continue the same task from where you stopped. Check what is already done in
the working tree ({workdir}) before you change anything, and run the project's
checks again rather than trusting results from before the interruption.
{notes}
When the task is complete and verified, end your final message with {done_marker}
If you are blocked and need a human, explain why and end your final message with {halt_marker}
"""

#: Bounds of the feedback: a final message's tail, a verification output's tail.
FEEDBACK_MESSAGE_CHARS = 2000
FEEDBACK_CHECK_LINES = 80
FEEDBACK_CHECK_CHARS = 8000


FIELD_NAMES = (
    "spec_name", "task_id", "task_title", "task_details", "task_block", "subtask_ids",
    "requirements", "workdir", "requirements_md", "design_md", "tasks_md", "state_file",
    "progress_file", "done_marker", "halt_marker", "parent_block", "inputs", "previous_attempt",
    "notes",
)


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("prompt")
    group.add_argument("--prompt-template", default=None, metavar="FILE",
                       help="file with the prompt text; {task_id}, {task_title}, {task_block}, "
                       "{tasks_md}, {done_marker}, {halt_marker}… are filled in")


template_key: StashKey[str] = StashKey()


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
    from seqrun.promptfields import render

    try:
        render(template, dict.fromkeys(FIELD_NAMES, ""))  # unknown {names}: fail now, not at 3 am
    except (ValueError, IndexError) as exc:
        raise UsageError(f"--prompt-template {path}: {exc}") from None
    config.stash[template_key] = template


@hookimpl(trylast=True)
def seqrun_build_prompt(task: Task, subtasks: list[Task], session: Session, unit: Unit,
                        previous: PreviousAttempt | None, resume_session: str | None) -> str:
    from seqrun.promptfields import prompt_fields, render

    if resume_session is not None:
        template = CONTINUE_TEMPLATE
    else:
        template = session.config.stash.get(template_key, DEFAULT_TEMPLATE)
    return render(template, prompt_fields(task, subtasks, session, unit, previous))


@hookimpl(trylast=True)
def seqrun_attempt_feedback(previous: PreviousAttempt) -> str:
    from seqrun.promptfields import feedback_text

    return feedback_text(previous)


#: The fields' names, importable from here as before (see the module docstring).
_PROMPTFIELDS = frozenset({"prompt_fields", "feedback_text", "render", "_task_block"})


__getattr__ = moved_names(__name__, "seqrun.promptfields", _PROMPTFIELDS)
