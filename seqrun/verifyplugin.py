"""The verification plugin (``--verify``): its options and hook, light to import.

The verification itself (:mod:`seqrun.verify`: running the command, judging
its output) is imported when a run begins, never for ``--co``.
"""
from __future__ import annotations

import argparse

import pluggy

from seqrun.config import Config, UsageError, seconds
from seqrun.hookspec import hookimpl

#: Seconds a verification command may take (``--verify-timeout``).
DEFAULT_VERIFY_TIMEOUT = 1800.0


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("verification")
    group.add_argument("--verify", default=None, metavar="CMD",
                       help="after the agent reports a task done, run CMD in the working directory "
                       "(split like a shell does, run without one); the task passes only if it exits 0. "
                       "A task's own `_Verify: CMD_` line wins")
    group.add_argument("--verify-baseline", action="store_true",
                       help="also run the verification before each task, and report the failures "
                       "that were already there apart from the ones the task introduced")
    group.add_argument("--verify-timeout", type=seconds, default=DEFAULT_VERIFY_TIMEOUT, metavar="SECONDS",
                       help="end a verification command (and its processes) after this long "
                       f"(default {DEFAULT_VERIFY_TIMEOUT:g}; 0: no limit)")
    group.add_argument("--no-verify", action="store_true",
                       help="run no verification at all (neither --verify nor _Verify: lines)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    if opt.collectonly or opt.no_verify:
        return
    from seqrun.paths import workdir
    from seqrun.verify import Verifier, find_executable, parse_command

    default: list[str] | None = None
    source = "--verify"
    if opt.verify not in (None, "", []):
        on_command_line = any(a == "--verify" or a.startswith("--verify=") for a in config.argv)
        if not on_command_line and config.inipath is not None:
            source = f"verify in {config.inipath.name}"
        try:
            default = parse_command(opt.verify, source)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cwd = workdir(config)
        if find_executable(default[0], cwd) is None:
            raise UsageError(f"{source}: {default[0]} not found (in {cwd} or on PATH)")
    config.pluginmanager.register(Verifier(config, default, source), "verifier")
