"""The ``--matrix`` plugin: its option and hook, light to import.

The matrix itself (:mod:`seqrun.reports.matrix`, built on the status
records) is imported only when ``--collect-only --matrix`` asks for it.
"""
from __future__ import annotations

import argparse

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("general")
    group.add_argument("--matrix", action="store_true",
                       help="with --collect-only: print one line of JSON, {\"include\": [one entry per spec "
                       "with tasks to do]}, for a CI matrix (GitHub's fromJSON)")


@hookimpl(tryfirst=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    if not config.getoption("matrix"):
        return None
    if not config.getoption("collectonly"):
        raise UsageError("--matrix goes with --collect-only")
    if config.getoption("status") or config.getoption("status_json"):
        raise UsageError("--matrix prints its own JSON: leave out --status and --json")
    from seqrun.reports.matrix import show_matrix

    return show_matrix(config)
