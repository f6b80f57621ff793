"""The writer behind :mod:`seqrun.reports.reportlog` (``reportlog-writer``):
one JSON line per event, as it happens, and the records as JSON objects.

:mod:`seqrun.reports.reportlog`'s docstring states the format
(:data:`~seqrun.reports.reportlog.REPORT_LOG_SCHEMA`); this module is
imported when ``--report-log`` registers the writer (or a report turns
records into JSON): ``seqrun --co`` without the option never loads it. Its
names stay importable from :mod:`seqrun.reports.reportlog`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import seqrun
from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.outcome import Kind, Outcome
from seqrun.reports.reportlog import SCHEMA_VERSION

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport
    from seqrun.main import Session


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def report_to_dict(report: TaskReport) -> dict[str, Any]:
    """Every field of a :class:`TaskReport` as JSON-ready values."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if isinstance(value, (Outcome, Kind)):
            value = value.value
        elif f.name == "attempts":
            value = [attempt.number for attempt in value]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        elif f.name == "sections":
            value = [[str(title), str(text)] for title, text in value]
        data[f.name] = value
    return data


def attempt_to_dict(attempt: Attempt) -> dict[str, Any]:
    """One :class:`Attempt` as the ``AttemptReport`` event's fields."""
    usage = attempt.usage
    return {
        "nodeid": attempt.nodeid, "task_id": attempt.task_id, "attempt": attempt.number,
        "run_id": attempt.run_id, "started_at": attempt.started_at, "ended_at": attempt.ended_at,
        "duration": round(attempt.duration, 3), "backend": attempt.backend, "model": attempt.model,
        "outcome": attempt.outcome.value, "kind": attempt.kind.value, "reason": attempt.reason,
        "session_id": attempt.session_id, "usage": dataclasses.asdict(usage) if usage else None,
        "final_message": attempt.final_message_tail or None,
        "checks": [dataclasses.asdict(check) for check in attempt.verdict.checks],
        "members": list(attempt.members), "log_path": attempt.log_path, "prompt_path": attempt.prompt_path,
    }


class ReportLog:
    """Writes one JSON line per event to an open file."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.fd: int | None = None
        self.started = time.time()
        self.deselected = 0
        self.counts: dict[str, int] = {}

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def write_event(self, report_type: str, **fields: Any) -> None:
        import json

        if self.fd is None:
            return
        data = {"$report_type": report_type, "schema": SCHEMA_VERSION, "time": time.time(), **fields}
        line = json.dumps(data, ensure_ascii=False, default=str) + "\n"
        payload = line.encode("utf-8", errors="replace")  # lone surrogates become "?"
        # One write() per line (O_APPEND); loop only if the kernel wrote less.
        view = memoryview(payload)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    # -- events ---------------------------------------------------------------------

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        self.started = time.time()
        argv = self.config.argv
        self.write_event(
            "SessionStart",
            seqrun_version=seqrun.__version__,
            argv=list(argv),
            cwd=str(self.config.invocation_dir),
            started_at=_utc(self.started),
        )

    @hookimpl
    def seqrun_deselected(self, items: list[Task]) -> None:
        self.deselected += len(items)

    @hookimpl
    def seqrun_collection_finish(self, session: Session) -> None:
        collected: dict[str, int] = {}
        for spec in session.specs:
            collected[spec.nodeid] = len(spec.leaves())
        self.write_event(
            "CollectReport",
            specs=[{"name": s.name, "nodeid": s.nodeid, "tasks_file": str(s.tasks_file),
                    "collected": collected[s.nodeid]} for s in session.specs],
            items=len(session.items),
            nodeids=[item.nodeid for item in session.items],
            deselected=self.deselected,
        )

    @hookimpl
    def seqrun_runtest_logstart(self, nodeid: str, item: Task) -> None:
        self.write_event("TaskStart", nodeid=nodeid, task_id=item.id, title=item.title)

    @hookimpl
    def seqrun_runtest_attempt(self, item: Task, attempt: int, log_path: Path, backend: str) -> None:
        self.write_event("AttemptStart", nodeid=item.nodeid, attempt=attempt, backend=backend,
                         log_path=str(log_path) if log_path is not None else None)

    @hookimpl
    def seqrun_runtest_logattempt(self, attempt: Attempt) -> None:
        self.write_event("AttemptReport", **attempt_to_dict(attempt))

    @hookimpl
    def seqrun_rate_limit_wait(self, item: Task, seconds: float, reset_at: float | None, reason: str) -> None:
        self.write_event("RateLimitWait", nodeid=item.nodeid, seconds=seconds, reset_at=reset_at,
                         reason=reason)

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        self.counts[report.outcome.value] = self.counts.get(report.outcome.value, 0) + 1
        self.write_event("TaskReport", **report_to_dict(report))

    @hookimpl(tryfirst=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        # tryfirst: the last line is written even if a later plugin fails.
        now = time.time()
        self.write_event("SessionFinish", exitstatus=int(exitstatus), counts=dict(self.counts),
                         deselected=self.deselected, duration=round(now - self.started, 3),
                         finished_at=_utc(now))
        self.close()

    @hookimpl
    def seqrun_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Config) -> None:
        if getattr(terminalreporter, "verbosity", 0) >= 0:
            terminalreporter.rule(f"generated report log file: {self.path}", char="-")
