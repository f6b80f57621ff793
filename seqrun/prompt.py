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
filled from :func:`prompt_fields`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Outcome
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


def _parent_block(task: Task) -> str:
    """The task's ancestors, outermost first: the context of a leaf."""
    parents = list(task.ancestors())[::-1]
    if not parents:
        return ""
    lines = ["### Part of"]
    for parent in parents:
        lines.append(f"- {parent.id} {parent.title}".rstrip())
        if parent.details:
            lines += ["  " + d if d else "" for d in parent.details.splitlines()]
    return "\n".join(lines) + "\n\n"


def _inputs(task: Task) -> str:
    """The spec's documents and seqrun's files, only those that exist."""
    assert task.spec is not None
    folder, root = task.spec.folder, task.spec.folder.parent
    candidates = [("Requirements", folder / "requirements.md"), ("Design", folder / "design.md"),
                  ("Task list", task.spec.tasks_file), ("Run state", root / "SEQUENTIAL_STATE.json"),
                  ("Progress log", root / "SEQUENTIAL_PROGRESS.md")]
    return "\n".join(f"- {label}: {path}" for label, path in candidates if path.is_file())


def _clip_tail(text: str, lines: int, chars: int) -> str:
    tail = "\n".join(text.splitlines()[-lines:])
    return tail if len(tail) <= chars else "…" + tail[-(chars - 1):]


def feedback_text(previous: PreviousAttempt) -> str:
    """The "Previous attempt" section: what went wrong, in the agent's own
    words and in the verification's."""
    from seqrun.text import printable

    what = "was cut off" if previous.cut_off else "did not pass"
    lines = ["## Previous attempt", "",
             f"Attempt {previous.number} of this task {what} ({previous.kind.value}): "
             f"{printable(previous.reason) or previous.outcome.value}."]
    if previous.final_message:
        message = _clip_tail(printable(previous.final_message), 10_000, FEEDBACK_MESSAGE_CHARS)
        lines += ["", "Its final message ended with:", "```", message, "```"]
    for check in previous.checks:
        if check.passed:
            continue
        status = "did not finish" if check.exit_status is None else f"exited {check.exit_status}"
        output = _clip_tail(printable(check.output_tail), FEEDBACK_CHECK_LINES, FEEDBACK_CHECK_CHARS)
        lines += ["", f"The verification `{check.command}` {status}. The end of its output:", "```",
                  output, "```"]
    if not previous.cut_off:
        lines += ["", "Fix what made it fail; do not only repeat what that attempt did."]
    return "\n".join(lines) + "\n"


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
    "progress_file", "done_marker", "halt_marker", "parent_block", "inputs", "previous_attempt",
    "notes",
)


def prompt_fields(task: Task, subtasks: list[Task], session: Session, unit: Unit | None = None,
                  previous: PreviousAttempt | None = None) -> dict[str, str]:
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
        "parent_block": _parent_block(task),
        "inputs": _inputs(task),
        "previous_attempt": _previous_attempt(task, unit, previous, session),
        "notes": _notes(task, unit, session),
    }


def _previous_attempt(task: Task, unit: Unit | None, previous: PreviousAttempt | None, session: Session) -> str:
    if previous is None or previous.outcome is Outcome.PASSED or unit is None:
        return ""
    text = session.config.hook.seqrun_attempt_feedback(task=task, unit=unit, previous=previous, session=session)
    return f"\n{text}" if text else ""


def _notes(task: Task, unit: Unit | None, session: Session) -> str:
    if unit is None:
        return ""
    notes = [n for n in session.config.hook.seqrun_prompt_notes(task=task, unit=unit, session=session) if n]
    return "".join(f"\n{n.rstrip()}\n" for n in notes)


class _Fields(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        raise UsageError(f"prompt template: unknown placeholder {{{key}}} "
                         f"(known: {', '.join(sorted(self))})")


def render(template: str, fields: dict[str, str]) -> str:
    return template.format_map(_Fields(fields))


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("prompt")
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
def seqrun_build_prompt(task: Task, subtasks: list[Task], session: Session, unit: Unit,
                        previous: PreviousAttempt | None, resume_session: str | None) -> str:
    if resume_session is not None:
        template = CONTINUE_TEMPLATE
    else:
        template = session.config.stash.get(template_key, DEFAULT_TEMPLATE)
    return render(template, prompt_fields(task, subtasks, session, unit, previous))


@hookimpl(trylast=True)
def seqrun_attempt_feedback(previous: PreviousAttempt) -> str:
    return feedback_text(previous)
