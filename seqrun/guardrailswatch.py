"""The watcher behind :mod:`seqrun.guardrails` (``guardrails-watch``): it
reads every task report and stops the session when the time or cost budget
is spent or a task is stuck.

:mod:`seqrun.guardrails`'s docstring states what it guarantees; this module
is imported when ``--max-runtime``, ``--max-cost`` or ``--stuck-after``
registers the watcher: ``seqrun --co`` never loads it. Its names stay
importable from :mod:`seqrun.guardrails`.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Generator

from seqrun.config import Config
from seqrun.guardrails import MIN_TIMEOUT, STUCK_PATH
from seqrun.hookspec import hookimpl
from seqrun.text import human_seconds
from seqrun.nodes import Task
from seqrun.outcome import Kind, Outcome
from seqrun.paths import seqrun_dir
from seqrun.sharedjson import read_json_object, update_json

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport, Verdict
    from seqrun.main import Session
    from seqrun.runner import AttemptSettings


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
