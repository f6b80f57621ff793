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

This module is the plugin's light part (its option, the format's constants,
registration); the writer is :mod:`seqrun.reports.reportlogwriter`, imported
when ``--report-log`` registers it: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names


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
    from seqrun.reports.reportlogwriter import ReportLog

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


#: The writer's names, importable from here as before (see the module docstring).
_REPORTLOGWRITER = frozenset({"report_to_dict", "attempt_to_dict", "ReportLog"})


__getattr__ = moved_names(__name__, "seqrun.reports.reportlogwriter", _REPORTLOGWRITER)
