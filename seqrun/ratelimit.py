"""Rate limits: wait for the reset the CLI reports, then run the same task again.

A wrapper of ``seqrun_runtest_call``. A RATE_LIMITED attempt (the CLI's own
limit signal, never a failure, never a rerun, never an iteration) is waited
for — until the reset time plus ``--rate-limit-margin``, or an exponential
backoff from ``--rate-limit-backoff`` when the CLI gives no time — and the
next attempt is asked for through the whole call chain. A reset beyond
``--max-rate-limit-wait`` halts the run (``RateLimitTooLong``), with the time
to run the same command again. The waits are added to the task's report.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Generator

from seqrun.config import seconds
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Outcome
from seqrun.runner import CallInfo, RateLimitTooLong, call_again, retry_policy, sleep_unless_cancelled
from seqrun.stash import StashKey
from seqrun.text import human_seconds

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport
    from seqrun.main import Session


@dataclasses.dataclass
class Waits:
    """The rate-limit waits of one unit in this session."""

    count: int = 0
    seconds: float = 0.0
    backoff: float | None = None
    """The next wait when the CLI names no reset time (doubles each time)."""


waits_key = StashKey[Waits]()
_active_key = StashKey[bool]()


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser) -> None:
    rl = parser.add_argument_group("rate limits")
    rl.add_argument("--rate-limit-margin", type=seconds, default=30.0, metavar="SECONDS",
                    help="seconds added to the reset time the CLI reports (default 30)")
    rl.add_argument("--rate-limit-backoff", type=seconds, default=60.0, metavar="SECONDS",
                    help="first wait when the CLI gives no reset time; doubles each time (default 60)")
    rl.add_argument("--max-rate-limit-wait", type=seconds, default=6 * 3600.0, metavar="SECONDS",
                    help="halt instead of waiting longer than this (default 21600 = 6 h)")


@hookimpl(wrapper=True)
def seqrun_runtest_call(item: Task, unit: Unit, session: Session) -> Generator[None, Attempt, Attempt]:
    with retry_policy(unit, _active_key) as in_charge:
        attempt = yield
        while in_charge and attempt.outcome is Outcome.RATE_LIMITED:
            wait_for_reset(attempt, item, unit, session)
            attempt = call_again(unit, session)
        return attempt


def wait_for_reset(attempt: Attempt, item: Task, unit: Unit, session: Session) -> None:
    opt = session.config.option
    waits = unit.stash.setdefault(waits_key, Waits())
    verdict = attempt.verdict
    if verdict.reset_at is not None:
        seconds = max(0.0, verdict.reset_at - time.time()) + opt.rate_limit_margin
        waits.backoff = None
    else:
        seconds = waits.backoff if waits.backoff is not None else opt.rate_limit_backoff
        waits.backoff = seconds * 2
    if seconds > opt.max_rate_limit_wait:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + seconds))
        raise RateLimitTooLong(
            f"rate limited ({verdict.reason or 'no reason given'}); the limit resets in "
            f"{human_seconds(seconds)}, beyond --max-rate-limit-wait: rerun the same command after {when}")
    waits.count += 1
    waits.seconds += seconds
    hook = session.config.hook
    hook.seqrun_rate_limit_wait(item=item, seconds=seconds, reset_at=verdict.reset_at, reason=verdict.reason)
    hook.seqrun_wait(seconds=seconds, reason=f"rate limited: {verdict.reason}", kind="rate-limit")
    sleep_unless_cancelled(session.config, seconds)


@hookimpl(wrapper=True)
def seqrun_runtest_makereport(item: Task, unit: Unit, call: CallInfo[Any],
                              report: TaskReport | None) -> Generator[None, TaskReport, TaskReport]:
    made = yield
    waits = unit.stash.get(waits_key, None)
    if waits is None or not waits.count or made.when != "call":
        return made
    return dataclasses.replace(made, rate_limit_waits=waits.count, rate_limit_wait_seconds=waits.seconds)
