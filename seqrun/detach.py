"""``--detach``: start the run in the background, free of the terminal.

The run is started again as a new session (``setsid``: no controlling
terminal, so closing the terminal sends it no SIGHUP), with stdin from
/dev/null and its output appended to ``--detach-log``. This process prints
the background pid and returns at once; the run itself behaves exactly as in
the foreground (state files, tmux windows, reports).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pluggy

from seqrun.config import Config
from seqrun.hookspec import hookimpl


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--detach", action="store_true",
                       help="run in the background, detached from the terminal (like nohup + setsid)")
    group.add_argument("--detach-log", default="seqrun.out", metavar="PATH",
                       help="where a --detach run writes its output (default ./seqrun.out)")


@hookimpl(tryfirst=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    if not config.option.detach:
        return None
    import subprocess  # only with --detach: startup time

    argv = [a for a in config.argv if a != "--detach"]
    log = Path(config.option.detach_log)
    if not log.is_absolute():
        log = config.invocation_dir / log
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seqrun", *argv], cwd=config.invocation_dir,
            stdin=devnull, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "NO_COLOR": os.environ.get("NO_COLOR", "1")},
        )
    print(f"seqrun is running in the background as pid {proc.pid}; output: {log}")
    return 0
