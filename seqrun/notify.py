"""``--notify CMD``: tell someone when the run halts, when a task fails, and when it ends.

``CMD`` is split with :func:`shlex.split` and run without a shell (write
``sh -c '...'`` for one), in the directory seqrun was started in, with the
outcome in its environment:

``SEQRUN_EVENT``
    ``halt`` (a task asked for a human, or a rate limit is too long to wait
    for), ``failure`` (a task failed, after its reruns), ``finish`` (the run
    is over, whatever happened; once).
``SEQRUN_EXIT_STATUS``
    The exit status seqrun is about to return (``finish`` only; else empty).
``SEQRUN_SPEC``, ``SEQRUN_TASK_ID``, ``SEQRUN_TASK_TITLE``, ``SEQRUN_NODEID``, ``SEQRUN_LOG``
    The task the event is about; for ``finish``, the last task that failed
    or halted (empty when none did), and every spec name, comma-separated.
``SEQRUN_REASON``
    The task's reason; for ``finish``, why the run stopped early (empty when
    it did not).
``SEQRUN_PASSED``, ``SEQRUN_FAILED``, ``SEQRUN_HALTED``, ``SEQRUN_SKIPPED``, ``SEQRUN_SUMMARY``
    The counts so far, and a line such as ``3 passed, 1 failed``.

``--notify-on`` picks the events (default ``halt,failure,finish``). A
notifier is given ``--notify-timeout`` seconds (default 60) before it and its
processes are ended; whatever it does — fail, hang, not exist any more — is a
warning on stderr and never changes the run's outcome. One that cannot be
found when seqrun starts is a usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from seqrun.config import Config, UsageError, seconds
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.outcome import Outcome

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport
    from seqrun.main import Session

EVENTS = ("halt", "failure", "finish")
DEFAULT_NOTIFY_TIMEOUT = 60.0


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


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("notifications")
    group.add_argument("--notify", default=None, metavar="CMD",
                       help="run CMD (no shell) when the run halts, a task fails, and at the end; "
                       "the outcome is in SEQRUN_* environment variables")
    group.add_argument("--notify-on", default=",".join(EVENTS), metavar="EVENTS",
                       help="which events run --notify: halt, failure, finish (default all three)")
    group.add_argument("--notify-timeout", type=seconds, default=DEFAULT_NOTIFY_TIMEOUT, metavar="SECONDS",
                       help=f"end a notifier after this long (default {DEFAULT_NOTIFY_TIMEOUT:g})")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    if opt.collectonly or opt.notify in (None, "", []):
        return
    from seqrun.verify import find_executable, parse_command  # only with --notify

    try:
        argv = parse_command(opt.notify, "--notify")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    raw = opt.notify_on if isinstance(opt.notify_on, str) else ",".join(map(str, opt.notify_on or ()))
    events = frozenset(e.strip() for e in raw.split(",") if e.strip())
    unknown = sorted(events - set(EVENTS))
    if unknown or not events:
        raise UsageError(f"--notify-on: unknown event(s) {', '.join(unknown) or '(none given)'} "
                         f"(known: {', '.join(EVENTS)})")
    if find_executable(argv[0], Path(config.invocation_dir)) is None:
        raise UsageError(f"--notify: {argv[0]} not found (in {config.invocation_dir} or on PATH)")
    config.pluginmanager.register(Notifier(config, argv, events), "notifier")
