"""Waiting out a rate limit: what :mod:`seqrun.ratelimit`'s wrapper runs
when an attempt is RATE_LIMITED (imported then, not at start-up).

The wait lasts until the reset time the CLI reported plus
``--rate-limit-margin``, or an exponential backoff from
``--rate-limit-backoff`` when it named none; a reset beyond
``--max-rate-limit-wait`` raises :class:`~seqrun.runner.RateLimitTooLong`.
Each unit's waits are counted in its stash (:class:`Waits`).
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from seqrun.ratelimit import waits_key
from seqrun.runner import RateLimitTooLong, sleep_unless_cancelled
from seqrun.text import human_seconds

if TYPE_CHECKING:
    from seqrun.outcome import Attempt
    from seqrun.main import Session
    from seqrun.nodes import Task, Unit


@dataclasses.dataclass
class Waits:
    """The rate-limit waits of one unit in this session."""

    count: int = 0
    seconds: float = 0.0
    backoff: float | None = None
    """The next wait when the CLI names no reset time (doubles each time)."""


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
