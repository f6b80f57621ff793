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
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Literal

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


@dataclass(frozen=True)
class Usage:
    """Token and cost figures as the CLI reported them (None: not reported)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int | None:
        parts = [p for p in (self.input_tokens, self.output_tokens) if p is not None]
        return sum(parts) if parts else None

    def __add__(self, other: Usage) -> Usage:
        summed = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            summed[f.name] = b if a is None else a if b is None else a + b
        return Usage(**summed)

    def as_dict(self) -> dict[str, int | float]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Check:
    """One verification command run after the agent said done."""

    command: str
    exit_status: int | None
    passed: bool
    output_tail: str = ""
    """The end of what it printed (bounded, escape codes stripped)."""
    duration: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """A backend's reading of one agent run, as amended by the verdict hooks.

    ``outcome`` is one of PASSED, HALTED, FAILED, RATE_LIMITED (INTERRUPTED
    when seqrun cancelled the run); ``kind`` says which failure (defaults
    from the outcome, and QUOTA for ``billing``). ``reason`` is a one-line
    human explanation. ``reset_at`` is the epoch second the CLI said the limit
    resets (None when it gave none). ``session_id`` is the CLI's own session
    (claude ``session_id``, codex ``thread_id``, gemini ``session_id``,
    opencode ``sessionID``). ``checks`` and ``sections`` are what
    verification ran and printed.
    """

    outcome: Outcome
    reason: str = ""
    final_message: str | None = None
    reset_at: float | None = None
    usage: Usage | None = None
    billing: bool = False
    kind: Kind = None  # type: ignore[assignment]  # filled in from the outcome
    session_id: str | None = None
    checks: tuple[Check, ...] = ()
    sections: tuple[tuple[str, str], ...] = ()
    longrepr: str = ""

    def __post_init__(self) -> None:
        if self.kind is None:
            kind = Kind.QUOTA if self.billing else _DEFAULT_KIND[self.outcome.value]
            object.__setattr__(self, "kind", kind)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


#: How much of an agent's final message an attempt record keeps.
FINAL_MESSAGE_TAIL = 2000


def tail(text: str | None, limit: int = FINAL_MESSAGE_TAIL) -> str:
    """The last ``limit`` characters of ``text`` (with ``…`` when cut)."""
    if not text:
        return ""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


@dataclass(frozen=True)
class Attempt:
    """One agent run for one dispatch, recorded for the task's whole life.

    ``number`` counts the dispatched task's attempts over every seqrun
    invocation; ``run_id`` names the invocation. Times are epoch seconds.
    """

    nodeid: str
    """The dispatched task (a parent task in ``--dispatch unit``)."""
    task_id: str
    number: int
    run_id: str
    started_at: float
    ended_at: float
    backend: str
    verdict: Verdict
    model: str | None = None
    members: tuple[str, ...] = ()
    """Ids of the tasks this run covered (the task itself, or its subtasks)."""
    prompt_path: str | None = None
    log_path: str | None = None

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    @property
    def kind(self) -> Kind:
        return self.verdict.kind

    @property
    def reason(self) -> str:
        return self.verdict.reason

    @property
    def usage(self) -> Usage | None:
        return self.verdict.usage

    @property
    def session_id(self) -> str | None:
        return self.verdict.session_id

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def final_message_tail(self) -> str:
        return tail(self.verdict.final_message)


#: Kinds of an attempt that was cut off before it could finish: the next
#: attempt may continue its session (``--resume auto``).
CUT_OFF = frozenset({Kind.TIMEOUT, Kind.IDLE_TIMEOUT, Kind.RATE_LIMITED, Kind.INTERRUPTED, Kind.KILLED})


@dataclass(frozen=True)
class PreviousAttempt:
    """What the next attempt learns from the last one: from this run's
    :class:`Attempt`, or from the attempt history (``--lf`` the next morning)."""

    number: int
    outcome: Outcome
    kind: Kind
    reason: str = ""
    final_message: str = ""
    """Its tail (:data:`FINAL_MESSAGE_TAIL` characters)."""
    checks: tuple[Check, ...] = ()
    session_id: str | None = None
    backend: str | None = None

    @property
    def cut_off(self) -> bool:
        return self.kind in CUT_OFF

    @classmethod
    def from_attempt(cls, attempt: Attempt) -> PreviousAttempt:
        return cls(attempt.number, attempt.outcome, attempt.kind, attempt.reason, attempt.final_message_tail,
                   attempt.verdict.checks, attempt.session_id, attempt.backend)

    @classmethod
    def from_record(cls, record: dict[str, object]) -> PreviousAttempt | None:
        """From an attempt history record; None when it is not one."""
        try:
            outcome, kind = Outcome(record["outcome"]), Kind(record["kind"])
            number = record["attempt"]
        except (KeyError, ValueError, TypeError):
            return None
        if not isinstance(number, int):
            return None
        checks = []
        for raw in record.get("checks") or ():
            if isinstance(raw, dict) and isinstance(raw.get("command"), str):
                status = raw.get("exit_status")
                checks.append(Check(raw["command"], status if isinstance(status, int) else None,
                                    bool(raw.get("passed")), str(raw.get("output_tail") or "")))
        text = lambda key: value if isinstance(value := record.get(key), str) else ""  # noqa: E731
        return cls(number, outcome, kind, text("reason"), text("final_message"), tuple(checks),
                   text("session_id") or None, text("backend") or None)


@dataclass(frozen=True)
class TaskReport:
    """The result of one task in this session, for every reporter."""

    nodeid: str
    task_id: str
    title: str
    outcome: Outcome
    reason: str = ""
    kind: Kind = None  # type: ignore[assignment]  # filled in from the outcome
    when: When = "call"
    duration: float = 0.0
    attempts: tuple[Attempt, ...] = ()
    """This session's attempts of the agent run that covered the task."""
    attempt_number: int = 0
    """The number of the last attempt over the task's life (0: never run)."""
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0
    backend: str | None = None
    model: str | None = None
    log_path: str | None = None
    usage: Usage | None = None
    final_message: str | None = None
    longrepr: str = ""
    """Longer explanation for failures (verification output, a traceback)."""
    sections: tuple[tuple[str, str], ...] = ()
    dispatch_id: str | None = None
    """Shared by the reports of the tasks one agent run covered (``--dispatch unit``)."""

    def __post_init__(self) -> None:
        if self.kind is None:
            object.__setattr__(self, "kind", _DEFAULT_KIND[self.outcome.value])

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.FAILED, Outcome.ERROR)

    @property
    def skipped(self) -> bool:
        return self.outcome is Outcome.SKIPPED

    @property
    def spec_nodeid(self) -> str:
        return self.nodeid.rsplit("::", 1)[0]

    @property
    def dispatched(self) -> bool:
        """An agent ran for this task in this session."""
        return bool(self.attempts)

    @property
    def failed_attempts(self) -> tuple[Attempt, ...]:
        """This session's attempts that failed before the last one."""
        return tuple(a for a in self.attempts[:-1] if a.outcome is Outcome.FAILED)


class Skipped(Exception):
    """Raised by a ``seqrun_runtest_setup`` implementation to skip a task."""

    def __init__(self, reason: str, kind: Kind = Kind.SKIP) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
