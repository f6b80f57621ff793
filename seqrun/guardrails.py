"""Guardrails for unattended runs: a time budget, a cost budget, a stuck task.

``--max-runtime DURATION`` (``5400``, ``90m``, ``8h``, ``1h30m``)
    A budget for the whole session. No task starts once it is spent, and the
    running agent's time limit (``--timeout``, or a task's ``_Timeout:``) is cut to the time left, so a long task is
    ended (with its processes) when the budget runs out; its failure reason
    says so. The tasks left are reported ``not reached: --max-runtime 8h
    reached`` and the exit status is 1, as for ``--max-iterations``. (A rerun
    that starts after the budget is spent gets one second; a rate-limit wait
    is not cut short.)
``--max-cost USD``
    The sum of the ``cost_usd`` the backends report. The run stops after the
    task that reaches it: ``not reached: --max-cost $5.00 reached ($5.12
    spent)``, exit 1. A backend that reports no cost is warned about once and
    its runs count as free: the budget cannot see them.
``--stuck-after N``
    Stop the run when a task has failed the same way N times in a row: the
    final failure reasons of its last N runs (reruns included in each) are
    the same once numbers are ignored ("timeout after 2h00m" is "timeout
    after #h##m"). The count spans seqrun invocations — the stuck loop is a
    cron job or a shell ``while`` restarting seqrun on a task no agent can do —
    and lives in ``<specs root>/.seqrun/cache/stuck.json`` (``--cache-clear``
    forgets it), updated after each report under a lock from what the file
    holds then (:func:`seqrun.sharedjson.update_json`), so runs of other
    specs under the same root keep their counts. A pass, a halt or another
    failure starts the count again.
    0 (the default) turns it off; 3 suits a loop.

Every stop sets ``session.shouldstop`` to the reason: the terminal prints it
(``stopped: ...``), the tasks not run are reported with it, and
``--notify`` passes it on.

This module is the plugin's light part (its options, their parsing,
registration); the watcher is :mod:`seqrun.guardrailswatch`, imported when
one of the options registers it: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pluggy

from seqrun.config import MAX_SECONDS, Config, UsageError, non_negative, whole_number
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.text import LazyPattern


#: Per specs root: ``{"<spec>::<task id>": {"signature", "count", "reason"}}``.
STUCK_PATH = Path(".seqrun") / "cache" / "stuck.json"
#: The least an agent run gets once the time budget is spent: the runner has
#: no hook to skip a rerun, and a timeout of 0 means "no limit".
MIN_TIMEOUT = 1.0
_DURATION = LazyPattern(r"^\s*(?:(?P<h>\d+(?:\.\d+)?)h)?\s*(?:(?P<m>\d+(?:\.\d+)?)m)?\s*"
                       r"(?:(?P<s>\d+(?:\.\d+)?)s?)?\s*$", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``90s``, ``45m``, ``8h``, ``1h30m`` (or a number)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and (m := _DURATION.match(value)) and any(m.groups()):
        seconds = sum(float(m.group(k) or 0) * f for k, f in (("h", 3600), ("m", 60), ("s", 1)))
    else:
        raise ValueError(f"not a duration: {value!r} (use seconds, or e.g. 45m, 8h, 1h30m)")
    if not 0 <= seconds <= MAX_SECONDS:  # NaN and infinity too
        raise ValueError(f"not a duration from 0 to {MAX_SECONDS:.0f} seconds (a year): {value!r}")
    return seconds


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("guardrails")
    group.add_argument("--max-runtime", default=None, metavar="DURATION",
                       help="time budget of the whole run (seconds, or 45m, 8h, 1h30m): no task starts "
                       "after it, and the running agent is ended when it runs out; exit 1")
    group.add_argument("--max-cost", type=non_negative, default=None, metavar="USD",
                       help="stop after the task that brings the cost the backends report to USD; exit 1")
    group.add_argument("--stuck-after", type=whole_number, default=0, metavar="N",
                       help="stop when a task has failed the same way N runs in a row, counted across "
                       "seqrun invocations (0: off, the default)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    try:
        max_runtime = parse_duration(opt.max_runtime) if opt.max_runtime not in (None, "") else 0.0
    except ValueError as exc:
        raise UsageError(f"--max-runtime: {exc}") from None
    max_cost = opt.max_cost or 0.0
    stuck_after = opt.stuck_after
    if opt.collectonly or not (max_runtime or max_cost or stuck_after):
        return
    from seqrun.guardrailswatch import Guardrails

    config.pluginmanager.register(Guardrails(config, max_runtime, float(max_cost), stuck_after),
                                  "guardrails-watch")


#: The watcher's names, importable from here as before (see the module docstring).
_GUARDRAILSWATCH = frozenset({"usd", "failure_signature", "Guardrails"})


__getattr__ = moved_names(__name__, "seqrun.guardrailswatch", _GUARDRAILSWATCH)
