"""The FAILURES section of the terminal summary, as pytest has one.

One block per task that failed, was an error or halted, built only from its
:class:`~seqrun.outcome.TaskReport` (and the :class:`~seqrun.outcome.Attempt`
and :class:`~seqrun.outcome.Verdict` records it carries), never from what was
printed: the outcome, kind and reason, the earlier attempts of this run (one
line each), the tail of the agent's final message (its last words), the
output tail of each verification command that failed, the log, and the
command that reruns just that task (``seqrun .kiro/specs/x::3.2``,
shell-quoted when needed).

``--tb`` shapes it, as pytest's does:

* ``short`` (the default): the last :data:`SHORT_LINES` lines of each text
  (for an error, of its traceback too);
* ``long``: each text as kept (the final message's last
  :data:`~seqrun.outcome.FINAL_MESSAGE_TAIL` characters, a verification's
  last lines), the explanation (a traceback for an error, where a
  verification ran), and the report's other sections;
* ``line``: one line per task;
* ``no``: no section.

Every text from a tasks file or an agent goes through
:func:`~seqrun.text.printable`: the section cannot move the cursor.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqrun.outcome import Outcome, tail
# The ``--tb`` values are defined with the option, which every start-up builds.
from seqrun.reports.terminal import DEFAULT_STYLE, STYLES  # noqa: F401
from seqrun.text import oneline, printable

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport

#: Outcomes that get a block: the task was judged and not done.
SHOWN = frozenset({Outcome.FAILED, Outcome.ERROR, Outcome.HALTED})
#: Lines of each text ``--tb short`` keeps (the end: where an agent says why).
SHORT_LINES = 10
_INDENT = "    "


@dataclass(frozen=True)
class Line:
    """One line of the section and its rich style ("" for none)."""

    text: str
    style: str = ""


def rerun_command(nodeid: str) -> str:
    """The command that runs ``nodeid`` again, as a person types it in the
    folder seqrun was started from."""
    import shlex

    return f"seqrun {shlex.quote(nodeid)}"


def shown_path(path: str, start: Path) -> str:
    """``path`` relative to ``start`` when it lies under it (shorter, and
    valid where the rerun command is typed); as it is otherwise."""
    try:
        relative = Path(path).resolve().relative_to(start.resolve())
    except (ValueError, OSError):
        return path
    return relative.as_posix()


def _last_lines(text: str, style: str) -> list[str]:
    lines = printable(text).rstrip().splitlines()
    while lines and not lines[0].strip():
        del lines[0]
    if style == "short" and len(lines) > SHORT_LINES:
        hidden = len(lines) - SHORT_LINES
        lines = [f"… ({hidden} line{'s' if hidden != 1 else ''} above; --tb long shows them)",
                 *lines[-SHORT_LINES:]]
    return lines


def _quoted(title: str, text: str, style: str) -> list[Line]:
    lines = _last_lines(text, style)
    if not lines:
        return []
    return [Line(title, "bold"), *(Line(f"{_INDENT}{line}".rstrip()) for line in lines)]


def failure_line(report: TaskReport, word: str) -> str:
    """``--tb line``: the task, its outcome, kind and reason on one line."""
    why = f" {oneline(report.reason)}" if report.reason else ""
    return f"{printable(report.nodeid)}: {word} [{report.kind.value}]{why}"


def failure_block(report: TaskReport, word: str, color: str, style: str, start: Path) -> list[Line]:
    """The lines under a task's ``___ nodeid ___`` header (``long`` or ``short``)."""
    last = report.attempts[-1] if report.attempts else None
    number = f" attempt {report.attempt_number}" if report.attempt_number else ""
    lines = [Line(oneline(report.title), "bold"),
             Line(f"{word} [{report.kind.value}]{number}: {oneline(report.reason or report.outcome.value)}", color)]
    earlier = report.attempt_number - len(report.attempts)
    if earlier > 0:
        lines.append(Line(f"after {earlier} attempt{'s' if earlier != 1 else ''} in earlier runs"))
    for attempt in report.attempts[:-1]:
        why = f" - {oneline(attempt.reason)}" if attempt.reason else ""
        lines.append(Line(f"attempt {attempt.number}: {attempt.outcome.value} [{attempt.kind.value}] "
                          f"({attempt.duration:.1f}s){why}"))
    lines += _quoted("agent's last words:", tail(report.final_message), style)
    checks = [check for check in (last.verdict.checks if last else ()) if not check.passed]
    for check in checks:
        status = "no exit status" if check.exit_status is None else f"exit {check.exit_status}"
        lines += _quoted(f"verification: {oneline(check.command)} ({status}):", check.output_tail, style)
    if style == "long" or report.outcome is Outcome.ERROR:  # an error's explanation is its traceback
        lines += _quoted("explanation:", report.longrepr, style)
    if style == "long":
        covered = {f"verification: {check.command}" for check in checks}
        for key, content in report.sections:
            if key not in covered:
                lines += _quoted(f"{oneline(key)}:", content, style)
    if report.log_path:
        lines.append(Line(f"log: {oneline(shown_path(report.log_path, start))}", "dim"))
    lines.append(Line(f"rerun: {printable(rerun_command(report.nodeid))}", "bold"))
    return lines


def shown_reports(reports: Iterable[TaskReport]) -> list[TaskReport]:
    """The reports that get a block, in run order."""
    return [report for report in reports if report.outcome in SHOWN]

