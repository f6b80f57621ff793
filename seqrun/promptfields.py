"""The fields of :mod:`seqrun.prompt`'s templates, and their rendering.

:func:`prompt_fields` fills every ``{name}`` placeholder
(:data:`~seqrun.prompt.FIELD_NAMES`) for one attempt: the task block with its
parents and subtasks, the spec's documents, ``{previous_attempt}`` (the
feedback of :func:`feedback_text`) and ``{notes}``; :func:`render` fills a
template, an unknown placeholder being a usage error.

Imported when the first prompt is built (or ``--prompt-template`` is
checked): ``seqrun --co`` never loads it. Its names stay importable from
:mod:`seqrun.prompt`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from seqrun.config import UsageError
from seqrun.nodes import Task, Unit
from seqrun.outcome import Outcome
from seqrun.prompt import FEEDBACK_CHECK_CHARS, FEEDBACK_CHECK_LINES, FEEDBACK_MESSAGE_CHARS

if TYPE_CHECKING:
    from seqrun.outcome import PreviousAttempt
    from seqrun.main import Session


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
