"""The records of a run, as :mod:`seqrun.outcome` describes them: the
backend's :class:`Verdict` (with its :class:`Usage` and verification
:class:`Check` results), each :class:`Attempt`, the :class:`PreviousAttempt`
a later run reads back, and the :class:`TaskReport` of every task.

Import them from :mod:`seqrun.outcome` (``from seqrun.outcome import
TaskReport``): they live here so that importing that module for its enums
(what listing tasks needs) does not build six frozen dataclasses;
:mod:`seqrun.outcome` loads this module on the first use of one of them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from seqrun.outcome import _DEFAULT_KIND, CUT_OFF, Kind, Outcome, When, tail


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
