"""Guardrails for unattended runs: a time budget, a cost budget, a stuck task.

``--max-runtime DURATION`` (``5400``, ``90m``, ``8h``, ``1h30m``)
    A budget for the whole session. No task starts once it is spent, and the
    running agent's time limit (``--timeout``, or a task's ``_Timeout:``) is cut to the time left, so a long task is
    ended (with its processes) when the budget runs out; its failure reason
    says so. The tasks left are reported ``not reached: --max-runtime 8h
    reached`` and the exit status is 1, as for ``--max-iterations``. (A rerun
    that starts after the budget is spent gets one second; a rate-limit wait
    is not cut short.)
``--max-cost USD``
    The sum of the ``cost_usd`` the backends report. The run stops after the
    task that reaches it: ``not reached: --max-cost $5.00 reached ($5.12
    spent)``, exit 1. A backend that reports no cost is warned about once and
    its runs count as free: the budget cannot see them.
``--stuck-after N``
    Stop the run when a task has failed the same way N times in a row: the
    final failure reasons of its last N runs (reruns included in each) are
    the same once numbers are ignored ("timeout after 2h00m" is "timeout
    after #h##m"). The count spans seqrun invocations — the stuck loop is a
    cron job or a shell ``while`` restarting seqrun on a task no agent can do —
    and lives in ``<specs root>/.seqrun/cache/stuck.json`` (``--cache-clear``
    forgets it), updated after each report under a lock from what the file
    holds then (:func:`seqrun.sharedjson.update_json`), so runs of other
    specs under the same root keep their counts. A pass, a halt or another
    failure starts the count again.
    0 (the default) turns it off; 3 suits a loop.

Every stop sets ``session.shouldstop`` to the reason: the terminal prints it
(``stopped: ...``), the tasks not run are reported with it, and
``--notify`` passes it on.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import pluggy

from seqrun.config import MAX_SECONDS, Config, UsageError, non_negative, whole_number
from seqrun.hookspec import hookimpl
from seqrun.text import LazyPattern, human_seconds
from seqrun.nodes import Task
from seqrun.outcome import Kind, Outcome
from seqrun.paths import seqrun_dir
from seqrun.sharedjson import read_json_object, update_json

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport, Verdict
    from seqrun.main import Session
    from seqrun.runner import AttemptSettings

#: Per specs root: ``{"<spec>::<task id>": {"signature", "count", "reason"}}``.
STUCK_PATH = Path(".seqrun") / "cache" / "stuck.json"
#: The least an agent run gets once the time budget is spent: the runner has
#: no hook to skip a rerun, and a timeout of 0 means "no limit".
MIN_TIMEOUT = 1.0
_DURATION = LazyPattern(r"^\s*(?:(?P<h>\d+(?:\.\d+)?)h)?\s*(?:(?P<m>\d+(?:\.\d+)?)m)?\s*"
                       r"(?:(?P<s>\d+(?:\.\d+)?)s?)?\s*$", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``90s``, ``45m``, ``8h``, ``1h30m`` (or a number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and (m := _DURATION.match(value)) and any(m.groups()):
        seconds = sum(float(m.group(k) or 0) * f for k, f in (("h", 3600), ("m", 60), ("s", 1)))
    else:
        raise ValueError(f"not a duration: {value!r} (use seconds, or e.g. 45m, 8h, 1h30m)")
    if not 0 <= seconds <= MAX_SECONDS:  # NaN and infinity too
        raise ValueError(f"not a duration from 0 to {MAX_SECONDS:.0f} seconds (a year): {value!r}")
    return seconds


def usd(amount: float) -> str:
    """``$5.00``; small amounts keep the cents' fractions (``$0.0158``)."""
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}"


def failure_signature(reason: str) -> str:
    """A failure reason with the parts that vary between identical failures
    (counts, durations, times) blanked out."""
    return " ".join(re.sub(r"\d+", "#", reason.casefold()).split())[:300]


class Guardrails:
    """Watches every task report and stops the session when a budget is spent."""

    def __init__(self, config: Config, max_runtime: float, max_cost: float, stuck_after: int) -> None:
        self.config = config
        self.max_runtime = max_runtime
        self.max_cost = max_cost
        self.stuck_after = stuck_after
        self.session: Session | None = None
        self.started = time.monotonic()
        """The --timeout the user asked for, before the time budget cut it."""
        self.cut_timeout = False
        self.spent = 0.0
        self.costed: set[str] = set()
        self.warned_no_cost = False
        self.stops: set[str] = set()
        self.by_nodeid: dict[str, Task] | None = None

    # -- stopping ------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        assert self.session is not None
        self.stops.add(reason)
        if not self.session.shouldstop:
            self.session.shouldstop = reason

    @property
    def runtime_reason(self) -> str:
        return f"--max-runtime {human_seconds(self.max_runtime)} reached"

    def time_left(self) -> float:
        return self.max_runtime - (time.monotonic() - self.started)

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        self.session = session
        self.started = time.monotonic()

    # -- the time budget ---------------------------------------------------------------------------

    @hookimpl(trylast=True)
    def seqrun_runtest_attempt(self, item: Task) -> None:
        # trylast: right before the agent starts, after other plugins' work in
        # this hook (a --verify-baseline run) has used its share of the budget.
        if not self.max_runtime:
            return
        if self.time_left() <= 0:
            self.stop(self.runtime_reason)

    @hookimpl(wrapper=True)
    def seqrun_attempt_settings(self, item: Task,
                                session: Session) -> Generator[None, AttemptSettings, AttemptSettings]:
        # The runner asks right before the agent starts, after seqrun_runtest_attempt:
        # the agent's time limit (--timeout or a task's _Timeout:) is cut to the budget left.
        settings = yield
        if not self.max_runtime:
            return settings
        left = self.time_left()
        wanted = settings.timeout or math.inf
        self.cut_timeout = left < wanted
        return dataclasses.replace(settings, timeout=max(MIN_TIMEOUT, left)) if self.cut_timeout else settings

    @hookimpl(wrapper=True)
    def seqrun_decide_verdict(self, item: Task, verdict: Verdict,
                              session: Session) -> Generator[None, Verdict | None, Verdict | None]:
        # A wrapper, not an implementation: it must not stop other plugins' verdicts.
        decided = yield
        final = decided or verdict
        if (self.max_runtime and self.cut_timeout and final.kind is Kind.TIMEOUT
                and self.time_left() <= MIN_TIMEOUT):
            self.stop(self.runtime_reason)
            return dataclasses.replace(final, reason=f"timeout: {self.runtime_reason} while the task ran; "
                                       "agent and its processes ended")
        return decided

    # -- every report ------------------------------------------------------------------------------------

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        if self.session is None:
            return
        if report.outcome is Outcome.SKIPPED:
            if report.kind is Kind.NOT_REACHED and self.session.shouldstop in self.stops:
                # A budget, not the tasks, ended the run: exit 1, as --max-iterations does.
                self.session.budget_exhausted = True
            return
        if self.max_runtime and self.time_left() <= 0:
            self.stop(self.runtime_reason)
        if self.max_cost:
            self._count_cost(report)
        if self.stuck_after:
            self._track_stuck(report)

    def _count_cost(self, report: TaskReport) -> None:
        key = report.dispatch_id or report.nodeid
        if key in self.costed:
            return  # the subtasks of one --dispatch unit run share its cost
        self.costed.add(key)
        cost = report.usage.cost_usd if report.usage is not None else None
        if cost is None:
            if report.dispatched and not self.warned_no_cost:
                self.warned_no_cost = True
                print(f"WARNING --max-cost: backend {report.backend or '?'} reported no cost for "
                      f"{report.nodeid}; runs without a cost are not counted", file=sys.stderr)
            return
        self.spent += cost
        if self.spent >= self.max_cost:
            self.stop(f"--max-cost {usd(self.max_cost)} reached ({usd(self.spent)} spent)")

    # -- the stuck task ------------------------------------------------------------------------------------

    def _task(self, nodeid: str) -> Task | None:
        if self.by_nodeid is None:
            assert self.session is not None
            self.by_nodeid = {t.nodeid: t for spec in self.session.specs for t in spec.iter_tasks()}
        return self.by_nodeid.get(nodeid)

    def _track_stuck(self, report: TaskReport) -> None:
        from seqrun.reports.cache import specs_root, task_key

        task = self._task(report.nodeid)
        if task is None or task.spec is None:
            return
        root = specs_root(task.spec)
        key = task_key(task)
        failed = report.outcome is Outcome.FAILED
        signature = f"{report.kind.value}: {failure_signature(report.reason)}"
        if not failed and not (root / STUCK_PATH).exists():
            return  # nothing to forget: leave the cache folder alone

        def count_this_run(history: dict[str, Any]) -> dict[str, Any]:
            # Only this task's entry changes: other specs' runs keep theirs.
            before = history.get(key) if isinstance(history.get(key), dict) else None
            if not failed:
                history.pop(key, None)
            else:
                count = before["count"] + 1 if before and before.get("signature") == signature \
                    and isinstance(before.get("count"), int) else 1
                history[key] = {"signature": signature, "count": count, "reason": report.reason}
            return dict(sorted(history.items()))

        path = root / STUCK_PATH
        try:
            seqrun_dir(root)  # the .gitignore'd folder, created as the runner does
            path.parent.mkdir(parents=True, exist_ok=True)
            history = update_json(path, count_this_run)
        except OSError as exc:
            print(f"WARNING --stuck-after: cannot write {path}: {exc}", file=sys.stderr)
            history = count_this_run(read_json_object(path))  # this run still stops a stuck task
        count = history[key]["count"] if failed else 0
        if failed and count >= self.stuck_after:
            self.stop(f"stuck: task {task.id} failed the same way {count} times in a row "
                      f"({report.reason}); change the task or the project before running it again")


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("guardrails")
    group.add_argument("--max-runtime", default=None, metavar="DURATION",
                       help="time budget of the whole run (seconds, or 45m, 8h, 1h30m): no task starts "
                       "after it, and the running agent is ended when it runs out; exit 1")
    group.add_argument("--max-cost", type=non_negative, default=None, metavar="USD",
                       help="stop after the task that brings the cost the backends report to USD; exit 1")
    group.add_argument("--stuck-after", type=whole_number, default=0, metavar="N",
                       help="stop when a task has failed the same way N runs in a row, counted across "
                       "seqrun invocations (0: off, the default)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    try:
        max_runtime = parse_duration(opt.max_runtime) if opt.max_runtime not in (None, "") else 0.0
    except ValueError as exc:
        raise UsageError(f"--max-runtime: {exc}") from None
    max_cost = opt.max_cost or 0.0
    stuck_after = opt.stuck_after
    if opt.collectonly or not (max_runtime or max_cost or stuck_after):
        return
    config.pluginmanager.register(Guardrails(config, max_runtime, float(max_cost), stuck_after),
                                  "guardrails-watch")
