"""The ``--status`` plugin: its options and hooks, light to import.

What they show (:mod:`seqrun.reports.status`: the state file read into
status records, the lock and the process checks) is imported only when
``--status``, ``--json`` or a ``--collect-only`` tree with last outcomes asks
for it: ``--co -q`` and a run pay nothing for it.
"""
from __future__ import annotations

import argparse

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("general")
    group.add_argument("--status", action="store_true",
                       help="show each task's last outcome, attempts, cost and log from the state file, "
                       "and whether a run is going on; run nothing")
    group.add_argument("--json", dest="status_json", action="store_true",
                       help="with --status or --collect-only: print the specs, tasks and last outcomes "
                       "as JSON (see the README for the shape)")


@hookimpl(tryfirst=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    if config.getoption("matrix", False):
        return None  # seqrun.reports.matrix answers (or says what is wrong)
    if config.getoption("status") or (config.getoption("collectonly") and config.getoption("status_json")):
        from seqrun.reports.status import show_status

        return show_status(config)
    if config.getoption("status_json"):
        raise UsageError("--json goes with --status or --collect-only")
    return None


@hookimpl
def seqrun_configure(config: Config) -> None:
    if config.option.collectonly and config.option.verbose - config.option.quiet >= 0:
        from seqrun.reports.status import LastOutcomes

        config.pluginmanager.register(LastOutcomes(config), "last-outcomes")
