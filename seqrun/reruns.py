"""``--reruns N``: run a failed task again, up to N times, as pytest-rerunfailures does.

A wrapper of ``seqrun_runtest_call``: after an attempt FAILED (not halted,
not rate-limited, not interrupted, not a quota error that no rerun can fix),
it asks for the next attempt through the whole call chain, so the other
wrappers (the ``--delay`` between dispatches, the rate-limit waits) apply to
the rerun too. No rerun starts once the session must stop (``-x``, a budget).
The count lives on the unit, so it holds however the wrappers nest.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Generator

from seqrun.config import whole_number
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Kind, Outcome
from seqrun.runner import call_again, retry_policy
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.outcome import Attempt
    from seqrun.main import Session

reruns_used_key: StashKey[int] = StashKey()
_active_key: StashKey[bool] = StashKey()

#: Failures a rerun cannot fix.
NOT_RERUN = frozenset({Kind.QUOTA, Kind.SESSION_GONE})


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--reruns", type=whole_number, default=1, metavar="N",
                       help="run a failed task again up to N times (default 1)")


def wants_rerun(attempt: Attempt, unit: Unit, session: Session) -> bool:
    settings = session.config.hook.seqrun_attempt_settings(item=unit.task, session=session)
    return (attempt.outcome is Outcome.FAILED and attempt.kind not in NOT_RERUN
            and unit.stash.get(reruns_used_key, 0) < settings.reruns
            and not session.shouldstop)


@hookimpl(wrapper=True)
def seqrun_runtest_call(item: Task, unit: Unit, session: Session) -> Generator[None, Attempt, Attempt]:
    with retry_policy(unit, _active_key) as in_charge:
        attempt = yield
        while in_charge and wants_rerun(attempt, unit, session):
            unit.stash[reruns_used_key] = unit.stash.get(reruns_used_key, 0) + 1
            attempt = call_again(unit, session)
        return attempt
