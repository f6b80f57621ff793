"""Rate limits: wait for the reset the CLI reports, then run the same task again.

A wrapper of ``seqrun_runtest_call``. A RATE_LIMITED attempt (the CLI's own
limit signal, never a failure, never a rerun, never an iteration) is waited
for — until the reset time plus ``--rate-limit-margin``, or an exponential
backoff from ``--rate-limit-backoff`` when the CLI gives no time — and the
next attempt is asked for through the whole call chain. A reset beyond
``--max-rate-limit-wait`` halts the run (``RateLimitTooLong``), with the time
to run the same command again. The waits are added to the task's report.

The wait itself (:mod:`seqrun.ratewait`) is imported at the first rate limit.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any, Generator

from seqrun.config import seconds
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Outcome
from seqrun.runner import call_again, retry_policy
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport
    from seqrun.main import Session
    from seqrun.protocol import CallInfo
    from seqrun.ratewait import Waits


# Annotated, not subscripted: Waits (seqrun.ratewait) loads with the first rate limit.
waits_key: StashKey[Waits] = StashKey()
_active_key: StashKey[bool] = StashKey()


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
            from seqrun.ratewait import wait_for_reset  # the first rate limit loads it

            wait_for_reset(attempt, item, unit, session)
            attempt = call_again(unit, session)
        return attempt


@hookimpl(wrapper=True)
def seqrun_runtest_makereport(item: Task, unit: Unit, call: CallInfo[Any],
                              report: TaskReport | None) -> Generator[None, TaskReport, TaskReport]:
    made = yield
    waits = unit.stash.get(waits_key, None)
    if waits is None or not waits.count or made.when != "call":
        return made
    return dataclasses.replace(made, rate_limit_waits=waits.count, rate_limit_wait_seconds=waits.seconds)
