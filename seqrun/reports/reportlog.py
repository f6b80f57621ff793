"""A machine-readable log of the run (``--report-log PATH``), one JSON object per line.

Each event is written with a single ``write`` and flushed as it happens, so
``tail -f`` shows the run live and a crash loses at most the line being
written. The file is truncated when the run starts. Strings are UTF-8; text
that was not valid Unicode is replaced (``?``), never written as invalid
JSON. Keys may be added in a later version of a schema; none is removed or
changes meaning without a new ``schema`` number.

Every object has these keys:

``$report_type``
    The event name, below.
``schema``
    The version of this format: ``"2"`` (version 1 had one ``Attempt`` event
    per agent start and ``attempts`` as a count).
``time``
    When the event happened, in seconds since the Unix epoch (float).

Events, in the order a run writes them (``REPORT_LOG_SCHEMA`` lists the same
fields, and the tests check both agree):

``SessionStart`` (once)
    ``seqrun_version``, ``argv`` (the command-line arguments, a list),
    ``cwd`` (where seqrun was started), ``started_at`` (ISO 8601, UTC).
``CollectReport`` (once, when selection is done)
    ``specs`` (a list of ``{"name", "nodeid", "tasks_file", "collected"}``),
    ``items`` (number of tasks selected to run), ``nodeids`` (their node ids,
    in run order), ``deselected`` (number of tasks removed by selection).
``TaskStart`` (before each dispatch unit, skipped ones included)
    ``nodeid``, ``task_id``, ``title``.
``AttemptStart`` (each agent process: reruns and rate-limit retries too)
    ``nodeid``, ``attempt`` (numbered over the task's life, across runs),
    ``backend``, ``log_path``.
``AttemptReport`` (each agent process, when it ended)
    ``nodeid``, ``task_id``, ``attempt``, ``run_id``, ``started_at`` and
    ``ended_at`` (epoch seconds), ``duration``, ``backend``, ``model``,
    ``outcome`` (``passed``, ``failed``, ``halted``, ``rate_limited``,
    ``interrupted``), ``kind`` (:class:`seqrun.outcome.Kind`: ``no-marker``,
    ``agent-error``, ``timeout``, ``verification``…), ``reason``,
    ``session_id`` (the CLI's own session, or null), ``usage``,
    ``final_message`` (its last 2,000 characters), ``checks`` (the
    verification commands: ``{"command", "exit_status", "passed",
    "output_tail", "duration"}``), ``members`` (the task ids the run
    covered), ``log_path``, ``prompt_path``.
``RateLimitWait`` (the run sleeps until a rate limit resets)
    ``nodeid``, ``seconds``, ``reset_at`` (epoch seconds the CLI gave, or
    null), ``reason``.
``TaskReport`` (the result of each task)
    every field of :class:`seqrun.outcome.TaskReport`: ``nodeid``,
    ``task_id``, ``title``, ``outcome`` (``passed``, ``failed``, ``error``,
    ``halted``, ``interrupted``, ``skipped``), ``reason``, ``kind``,
    ``when`` (``setup``, ``call`` or ``teardown``: where it was decided),
    ``duration``, ``attempts`` (the numbers of this run's attempts),
    ``attempt_number`` (the last one), ``rate_limit_waits``,
    ``rate_limit_wait_seconds``, ``backend``, ``model``, ``log_path``,
    ``usage`` (``{"input_tokens", "output_tokens", "cached_tokens",
    "reasoning_tokens", "cost_usd"}`` or null), ``final_message``,
    ``longrepr``, ``sections`` (a list of ``[title, text]`` pairs),
    ``dispatch_id`` (shared by the tasks of one ``--dispatch unit`` run).
``SessionFinish`` (once)
    ``exitstatus`` (the process exit code), ``counts`` (outcome → number of
    task reports), ``deselected``, ``duration`` (seconds), ``finished_at``
    (ISO 8601, UTC).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

import seqrun
from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.outcome import Kind, Outcome

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport
    from seqrun.main import Session

SCHEMA_VERSION = "2"

COMMON_FIELDS = ("$report_type", "schema", "time")

#: Event name → the fields each line of that event has (besides COMMON_FIELDS).
REPORT_LOG_SCHEMA: dict[str, tuple[str, ...]] = {
    "SessionStart": ("seqrun_version", "argv", "cwd", "started_at"),
    "CollectReport": ("specs", "items", "nodeids", "deselected"),
    "TaskStart": ("nodeid", "task_id", "title"),
    "AttemptStart": ("nodeid", "attempt", "backend", "log_path"),
    "AttemptReport": ("nodeid", "task_id", "attempt", "run_id", "started_at", "ended_at", "duration",
                      "backend", "model", "outcome", "kind", "reason", "session_id", "usage",
                      "final_message", "checks", "members", "log_path", "prompt_path"),
    "RateLimitWait": ("nodeid", "seconds", "reset_at", "reason"),
    # Every field of TaskReport, in order: spelled out so that registering
    # this plugin does not load the records (tests/test_reportlog.py checks
    # both this list and what a run writes).
    "TaskReport": ("nodeid", "task_id", "title", "outcome", "reason", "kind", "when", "duration", "attempts",
                   "attempt_number", "rate_limit_waits", "rate_limit_wait_seconds", "backend", "model",
                   "log_path", "usage", "final_message", "longrepr", "sections", "dispatch_id"),
    "SessionFinish": ("exitstatus", "counts", "deselected", "duration", "finished_at"),
}


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


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("report log")
    group.add_argument("--report-log", dest="report_log", default=None, metavar="PATH",
                       help="write every event of the run to PATH as JSON lines, as it happens")


@hookimpl
def seqrun_configure(config: Config) -> None:
    raw = config.getoption("report_log")
    if not raw:
        return
    if not isinstance(raw, (str, os.PathLike)):
        raise UsageError(f"report_log must be a path, got {raw!r}")
    path = Path(os.path.expanduser(os.fspath(raw)))
    if not path.is_absolute():
        path = config.invocation_dir / path
    plugin = ReportLog(config, path)
    try:
        plugin.open()
    except OSError as exc:
        raise UsageError(f"cannot write --report-log {raw}: {exc.strerror or exc}") from None
    config.pluginmanager.register(plugin, "reportlog-writer")


@hookimpl
def seqrun_unconfigure(config: Config) -> None:
    plugin = config.pluginmanager.get_plugin("reportlog-writer")
    if plugin is not None:
        plugin.close()
        config.pluginmanager.unregister(plugin)
