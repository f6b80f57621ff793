"""What a run produced: the backend's :class:`Verdict`, each :class:`Attempt`,
and the :class:`TaskReport` of every task.

A :class:`Verdict` is decided by a backend's output parser from the CLI's
structured output (and may be amended by ``seqrun_decide_verdict`` and
``seqrun_verify_task``); an :class:`Attempt` is the record of one agent run,
kept for the task's whole life; a :class:`TaskReport` is what the runner hands
to the reporters (terminal, JUnit XML, report log, state file) for every task,
including the ones it skipped.

Every verdict, attempt and report carries a typed :class:`Kind`. The reason is
free text for people: no module decides a class of failure by reading it.

The records (:class:`Usage`, :class:`Check`, :class:`Verdict`,
:class:`Attempt`, :class:`PreviousAttempt`, :class:`TaskReport`) are defined
in :mod:`seqrun.records` and imported from here as before; this module loads
them on the first use of one of them (``from seqrun.outcome import
TaskReport``, ``seqrun.outcome.Attempt``). Listing tasks needs none of them:
``seqrun --co`` does not build them. seqrun's own modules import them
under ``TYPE_CHECKING`` or in the functions that build or read them.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal

from seqrun.lazy import moved_names

if TYPE_CHECKING:
    from seqrun.records import Attempt, Check, PreviousAttempt, TaskReport, Usage, Verdict  # noqa: F401

#: The phase of the per-task protocol a report or an error comes from.
When = Literal["setup", "call", "teardown"]


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    """The agent's work was judged and found wanting."""
    ERROR = "error"
    """seqrun's protocol around the agent failed (a plugin's setup or teardown raised)."""
    HALTED = "halted"
    RATE_LIMITED = "rate_limited"
    INTERRUPTED = "interrupted"
    """Ctrl-C or a signal ended the agent's run: no verdict, the task runs again next time."""
    SKIPPED = "skipped"


class Kind(str, enum.Enum):
    """Why an attempt or a task ended as it did.

    The values are stable: they are JUnit's ``type`` attributes, the report
    log's and the state file's ``kind``.
    """

    PASSED = "passed"
    HALTED = "halted"
    RATE_LIMITED = "rate-limited"
    """The CLI's own limit signal: waited for, retried, never a failure."""
    NO_MARKER = "no-marker"
    """The run ended cleanly, but its final message has no marker."""
    AGENT_ERROR = "agent-error"
    """The CLI reported an error, or exited non-zero."""
    QUOTA = "quota"
    """A quota or billing error: waiting will not fix it."""
    TIMEOUT = "timeout"
    IDLE_TIMEOUT = "idle-timeout"
    VERIFICATION_FAILED = "verification"
    INTERRUPTED = "interrupted"
    KILLED = "killed"
    """The agent was ended from outside seqrun (its tmux window closed, a signal)."""
    BACKEND_ERROR = "backend-error"
    """The backend could not read the CLI's output (a parser error)."""
    SESSION_GONE = "session-gone"
    """A resumed attempt found its CLI session gone: a fresh one follows at once."""
    SETUP_ERROR = "setup-error"
    CALL_ERROR = "call-error"
    TEARDOWN_ERROR = "teardown-error"
    OPTIONAL = "optional"
    ALREADY_DONE = "already-done"
    DEPENDENCY = "dependency"
    NOT_REACHED = "not-reached"
    SKIP = "skip"
    """A plugin's skip that names no kind."""


#: The kind a verdict gets when the backend names none.
_DEFAULT_KIND = {
    "passed": Kind.PASSED,
    "halted": Kind.HALTED,
    "rate_limited": Kind.RATE_LIMITED,
    "failed": Kind.AGENT_ERROR,
    "error": Kind.CALL_ERROR,
    "interrupted": Kind.INTERRUPTED,
    "skipped": Kind.SKIP,
}


#: How much of an agent's final message an attempt record keeps.
FINAL_MESSAGE_TAIL = 2000


def tail(text: str | None, limit: int = FINAL_MESSAGE_TAIL) -> str:
    """The last ``limit`` characters of ``text`` (with ``…`` when cut)."""
    if not text:
        return ""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


#: Kinds of an attempt that was cut off before it could finish: the next
#: attempt may continue its session (``--resume auto``).
CUT_OFF = frozenset({Kind.TIMEOUT, Kind.IDLE_TIMEOUT, Kind.RATE_LIMITED, Kind.INTERRUPTED, Kind.KILLED})


class Skipped(Exception):
    """Raised by a ``seqrun_runtest_setup`` implementation to skip a task."""

    def __init__(self, reason: str, kind: Kind = Kind.SKIP) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


#: The records this module hands out on first use (see the module docstring).
_RECORDS = frozenset({"Usage", "Check", "Verdict", "Attempt", "PreviousAttempt", "TaskReport"})


__getattr__ = moved_names(__name__, "seqrun.records", _RECORDS)
