"""Pacing the night: ``--delay`` between dispatches and the ``--max-iterations`` budget.

A wrapper of ``seqrun_runtest_call``, so it sees every attempt — reruns and
rate-limit retries included, however the other wrappers nest:

- before an attempt, it waits what is left of ``--delay`` since the last
  agent ended (never before the first one, never after the last);
- before an attempt, once ``--max-iterations`` dispatches were made, it stops
  the run (the rest is reported ``not reached``, exit 1). A rate-limited
  attempt is not counted: the limit is not the agent's try.
"""
from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Generator

from seqrun.config import Config, seconds, whole_number
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Kind, Outcome
from seqrun.runner import BudgetExhausted, sleep_unless_cancelled

if TYPE_CHECKING:
    from seqrun.outcome import Attempt
    from seqrun.main import Session


class Throttle:
    """The pacing plugin (``throttle-pacing``), registered by every session.

    A plain class, not a dataclass: ``seqrun --co`` registers one too, and
    building a dataclass at import costs more than a listing should."""

    def __init__(self, delay: float, max_iterations: int) -> None:
        self.delay = delay
        self.max_iterations = max_iterations
        self.dispatches = 0
        self.last_end: float | None = None
        """When the last agent run ended (monotonic clock)."""

    @hookimpl(wrapper=True)
    def seqrun_runtest_call(self, item: Task, unit: Unit, session: Session) -> Generator[None, Attempt, Attempt]:
        if self.max_iterations and self.dispatches >= self.max_iterations:
            session.budget_exhausted = True
            session.shouldstop = f"--max-iterations {self.max_iterations} reached"
            raise BudgetExhausted(session.shouldstop)
        self._wait(session)
        return (yield)

    @hookimpl
    def seqrun_runtest_logattempt(self, attempt: Attempt) -> None:
        # Counted here, when the attempt ends, not when the wrapper returns:
        # a retry wrapper asks for the next attempt before that.
        self.last_end = time.monotonic()
        if attempt.outcome is not Outcome.RATE_LIMITED and attempt.kind is not Kind.SESSION_GONE:
            self.dispatches += 1

    def _wait(self, session: Session) -> None:
        if self.last_end is None or not self.delay:
            return
        remaining = self.delay - (time.monotonic() - self.last_end)
        if remaining > 0:
            session.config.hook.seqrun_wait(seconds=remaining, reason="delay between dispatches", kind="delay")
            sleep_unless_cancelled(session.config, remaining)


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--delay", type=seconds, default=5.0, metavar="SECONDS",
                       help="seconds between two dispatches (default 5)")
    group.add_argument("--max-iterations", type=whole_number, default=50, metavar="N",
                       help="most agent dispatches in this run; rate-limited attempts are not "
                       "counted (default 50, 0: no limit)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    config.pluginmanager.register(Throttle(opt.delay, opt.max_iterations), "throttle-pacing")
