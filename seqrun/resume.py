"""``--resume auto|never|always``: an attempt may continue the CLI's own session.

After an attempt that was **cut off** — a timeout, an idle timeout, a rate
limit, Ctrl-C or a signal, its window closed — the next attempt (in this run,
or the next one: the session id is kept in the attempt history) resumes
*that exact session id* with a short continuation prompt, where the backend
can (``resume_ids`` on its class: claude ``--resume``, codex ``exec resume``,
gemini ``--resume``, opencode ``--session``). Never "the last session": that
could be another run's.

After an attempt that **completed and failed** (no marker, verification
failed), the next one starts a fresh session with the feedback (``auto``),
because the old session would carry its stale results; ``always`` resumes
those too, and ``never`` resumes nothing.

When the CLI says the session is gone, the attempt's kind is
``session-gone`` and a fresh attempt with the feedback follows at once (not a
rerun, not an iteration); the terminal shows the line that says so.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Generator

from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Kind, Outcome
from seqrun.runner import call_again, retry_policy
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, PreviousAttempt
    from seqrun.backends.base import Backend
    from seqrun.main import Session

MODES = ("auto", "never", "always")
gone_key: StashKey[bool] = StashKey()
"""This unit's session was gone: its attempts start fresh from now on."""
_active_key: StashKey[bool] = StashKey()


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--resume", choices=MODES, default="auto",
                       help="continue the CLI's own session after an attempt that was cut off "
                       "(auto, the default), also after one that failed (always), or never")


@hookimpl(trylast=True)
def seqrun_resume_session(item: Task, unit: Unit, previous: PreviousAttempt, backend: Backend,
                          session: Session) -> str | None:
    mode = session.config.option.resume
    if mode == "never" or unit.stash.get(gone_key, False) or previous.outcome is Outcome.PASSED:
        return None
    if previous.backend is not None and previous.backend != backend.name:
        return None  # another CLI's session means nothing to this one
    from seqrun.backends.base import can_resume  # with the backends: not at start-up
    if not can_resume(backend, previous.session_id):
        return None
    if previous.cut_off or (mode == "always" and previous.outcome is Outcome.FAILED):
        return previous.session_id
    return None


@hookimpl(wrapper=True)
def seqrun_runtest_call(item: Task, unit: Unit, session: Session) -> Generator[None, Attempt, Attempt]:
    with retry_policy(unit, _active_key) as in_charge:
        attempt = yield
        while in_charge and attempt.kind is Kind.SESSION_GONE:
            unit.stash[gone_key] = True
            attempt = call_again(unit, session)
        return attempt
