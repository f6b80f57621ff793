"""The notifier behind :mod:`seqrun.notify` (``notifier``): runs the
``--notify`` command, with the outcome in ``SEQRUN_*`` variables, on the
events asked for.

:mod:`seqrun.notify`'s docstring states what it guarantees; this module is
imported when ``--notify`` registers the notifier: ``seqrun --co`` never
loads it. ``Notifier`` stays importable from :mod:`seqrun.notify`.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.outcome import Outcome

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport
    from seqrun.main import Session


class Notifier:
    """Runs the ``--notify`` command on the events asked for."""

    def __init__(self, config: Config, argv: list[str], events: frozenset[str]) -> None:
        self.config = config
        self.argv = argv
        self.events = events
        self.session: Session | None = None
        self.counts = dict.fromkeys(("passed", "failed", "halted", "skipped"), 0)
        self.last_bad: TaskReport | None = None
        self.notified: set[tuple[str, str]] = set()
        self.by_nodeid: dict[str, Task] | None = None

    def _task(self, nodeid: str) -> Task | None:
        if self.by_nodeid is None:
            specs = self.session.specs if self.session is not None else []
            self.by_nodeid = {t.nodeid: t for spec in specs for t in spec.iter_tasks()}
        return self.by_nodeid.get(nodeid)

    def summary(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.counts.items() if n) or "no tasks ran"

    def environment(self, event: str, report: TaskReport | None, exitstatus: int | None) -> dict[str, str]:
        task = self._task(report.nodeid) if report is not None else None
        specs = self.session.specs if self.session is not None else []
        if task is not None and task.spec is not None:
            spec = task.spec.name
        else:
            spec = ",".join(dict.fromkeys(s.name for s in specs))
        if event == "finish":
            reason = (self.session.shouldstop if self.session is not None else None) or ""
        else:
            reason = report.reason if report is not None else ""
        env = {
            "SEQRUN_EVENT": event,
            "SEQRUN_EXIT_STATUS": "" if exitstatus is None else str(int(exitstatus)),
            "SEQRUN_SPEC": spec,
            "SEQRUN_TASK_ID": report.task_id if report is not None else "",
            "SEQRUN_TASK_TITLE": report.title if report is not None else "",
            "SEQRUN_NODEID": report.nodeid if report is not None else "",
            "SEQRUN_LOG": (report.log_path or "") if report is not None else "",
            "SEQRUN_REASON": reason,
            "SEQRUN_SUMMARY": self.summary(),
        }
        env.update({f"SEQRUN_{name.upper()}": str(n) for name, n in self.counts.items()})
        # An environment cannot hold NUL; an agent's reason text might.
        return {k: v.replace("\0", " ") for k, v in env.items()}

    def notify(self, event: str, report: TaskReport | None = None, exitstatus: int | None = None) -> None:
        if event not in self.events:
            return
        key = (event, (report.log_path or report.nodeid) if report is not None else "")
        if key in self.notified:
            return  # the subtasks of one --dispatch unit run: one message
        self.notified.add(key)
        from seqrun.verify import display, run_command, summary_line

        opt = self.config.option
        result = run_command(self.argv, cwd=self.config.invocation_dir,
                             env=self.environment(event, report, exitstatus),
                             timeout=opt.notify_timeout or None, grace=getattr(opt, "kill_grace", 5.0))
        if result.ok:
            return
        if result.error is not None:
            why = f"could not start: {result.error}"
        elif result.timed_out:
            why = f"ended after --notify-timeout {opt.notify_timeout:g}s"
        else:
            last = summary_line(result.output)
            why = f"exited {result.exit_status}" + (f": {last}" if last else "")
        print(f"WARNING --notify ({event}): `{display(self.argv)}` {why}", file=sys.stderr)

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        self.session = session

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        name = {Outcome.PASSED: "passed", Outcome.FAILED: "failed", Outcome.ERROR: "failed",
                Outcome.HALTED: "halted", Outcome.SKIPPED: "skipped"}.get(report.outcome)
        if name:
            self.counts[name] += 1
        if report.outcome is Outcome.HALTED:
            self.last_bad = report
            self.notify("halt", report)
        elif report.failed:
            self.last_bad = report
            self.notify("failure", report)

    @hookimpl(trylast=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        # trylast: after the reporters, so a notifier can read report.xml; and
        # with the exit status they may have raised.
        self.notify("finish", self.last_bad, session.exitstatus)
