"""The writer behind :mod:`seqrun.reports.ghsummary` (``ghsummary-writer``):
collects the run's reports and appends the Markdown summary at session
finish.

:mod:`seqrun.reports.ghsummary`'s docstring states what it guarantees; this
module is imported when ``$GITHUB_STEP_SUMMARY`` makes a run register the
writer: ``seqrun --co`` never loads it. Its names stay importable from
:mod:`seqrun.reports.ghsummary`.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.outcome import Outcome
from seqrun.reports.ghsummary import MAX_REASON, MAX_ROWS
from seqrun.reports.terminal import LETTERS, format_duration, usage_totals
from seqrun.text import LazyPattern, oneline

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport
    from seqrun.main import Session
    from seqrun.nodes import Task


_HEADLINES = {
    0: ("✅", "all selected tasks done"),
    1: ("❌", "tasks failed"),
    2: ("⏹️", "halted"),
    3: ("💥", "internal error"),
    4: ("⚠️", "usage error"),
    5: ("⚪", "no tasks collected or selected"),
}


_MD_SPECIAL = LazyPattern(r"([\\`*_\[\]|~#!])")


def md(text: str, limit: int | None = None) -> str:
    """``text`` as inert Markdown for one table cell."""
    text = " ".join(oneline(text).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    import html

    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


class GithubSummary:
    """Collects the reports of the run and appends the summary at the end."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.reports: list[TaskReport] = []
        self.deselected = 0
        self.started = time.monotonic()

    @hookimpl
    def seqrun_deselected(self, items: list[Task]) -> None:
        self.deselected += len(items)

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        self.reports.append(report)

    @hookimpl(trylast=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        status = max(int(exitstatus), int(session.exitstatus))
        text = render_summary(
            self.reports, status, specs=[spec.name for spec in session.specs],
            deselected=self.deselected, elapsed=time.monotonic() - self.started,
            halted=session.halted, stopped=session.shouldstop,
        )
        try:
            append(self.path, text)
        except OSError as exc:
            print(f"WARNING cannot write the GitHub step summary {self.path}: {exc.strerror or exc}",
                  file=sys.stderr)


def append(path: Path, text: str) -> None:
    """Append ``text`` with one ``write`` on an ``O_APPEND`` descriptor."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def render_summary(reports: list[TaskReport], exitstatus: int, *, specs: Iterable[str] = (),
                   deselected: int = 0, elapsed: float = 0.0, halted: bool = False,
                   stopped: str | None = None) -> str:
    """The Markdown section for one run."""
    icon, headline = _HEADLINES.get(exitstatus, ("❔", "finished"))
    if exitstatus == 2 and not halted:
        icon, headline = "⏹️", "interrupted"
    names = ", ".join(md(name) for name in specs)
    out = [f"\n## {icon} seqrun: {headline} (exit {exitstatus}){': ' + names if names else ''}\n"]
    if stopped:
        out.append(f"\nStopped: {md(stopped, MAX_REASON)}\n")

    counts: dict[str, int] = {}
    for report in reports:
        name = LETTERS[report.outcome][0].replace("_", " ")
        counts[name] = counts.get(name, 0) + 1
    if deselected:
        counts["deselected"] = deselected
    if counts:
        out.append("\n| outcome | tasks |\n| --- | ---: |\n")
        out.extend(f"| {name} | {n} |\n" for name, n in counts.items())

    problems = [r for r in reports if r.failed or r.outcome is Outcome.HALTED]
    if problems:
        out.append("\n### Failed and halted tasks\n\n"
                   "| task | title | outcome | attempts | reason | log |\n"
                   "| --- | --- | --- | ---: | --- | --- |\n")
        for r in problems[:MAX_ROWS]:
            out.append(f"| {md(r.nodeid)} | {md(r.title, 80)} | {r.outcome.value} | {r.attempt_number} "
                       f"| {md(r.reason or 'no reason given', MAX_REASON)} | {md(r.log_path or '')} |\n")
        if len(problems) > MAX_ROWS:
            out.append(f"\n… and {len(problems) - MAX_ROWS} more.\n")

    tokens, cost = usage_totals(reports)
    totals = [f"{tokens:,} tokens"] if tokens else []
    if cost:
        totals.append(f"${cost:.2f}")
    totals.append(format_duration(elapsed))
    out.append(f"\n**Totals:** {' · '.join(totals)}\n")
    return "".join(out)
