"""GitHub Actions job summary: a Markdown section for ``$GITHUB_STEP_SUMMARY``.

When the variable names a file (GitHub sets it in every step), the run's
outcome is appended to it at session finish, in one write and never
truncating what earlier steps wrote there: a heading with the outcome, a table
of counts, a table of the failed and halted tasks with their reasons, and the
totals (tokens, cost, duration). Nothing happens when the variable is unset,
or for ``--collect-only``. ``-p no:ghsummary`` turns it off.

Titles, reasons and paths come from tasks files and agents: control
characters are removed and Markdown/HTML is escaped, so a task cannot inject
links, images or table cells into the page.

This module is the plugin's light part (the variable, the limits,
registration); the writer is :mod:`seqrun.reports.ghsummarywriter`, imported
when a run registers it: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import os
from pathlib import Path

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names

ENV = "GITHUB_STEP_SUMMARY"
#: Rows of the failed/halted table; the rest are counted, not listed.
MAX_ROWS = 100
MAX_REASON = 300


@hookimpl
def seqrun_configure(config: Config) -> None:
    path = os.environ.get(ENV)
    if path and not config.option.collectonly:
        from seqrun.reports.ghsummarywriter import GithubSummary

        config.pluginmanager.register(GithubSummary(config, Path(path)), "ghsummary-writer")


#: The writer's names, importable from here as before (see the module docstring).
_GHSUMMARYWRITER = frozenset({"md", "GithubSummary", "append", "render_summary"})


__getattr__ = moved_names(__name__, "seqrun.reports.ghsummarywriter", _GHSUMMARYWRITER)
