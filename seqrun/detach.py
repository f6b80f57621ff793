"""``--detach``: check everything, then leave the terminal and run in the background.

The run starts in the foreground as any other: options, the agent CLI on PATH
(checked at configure), collection, the spec locks, the state files and every
``seqrun_preflight`` check (a clean work tree for ``--git-commit``, the
working directory, the files seqrun writes). Whatever is wrong is printed on the terminal, exit 4,
and nothing is left running. Only then does this plugin — the last
``seqrun_preflight`` implementation — fork: the child becomes a new session
(``setsid``: no controlling terminal, so closing the terminal sends it no
SIGHUP), with stdin from /dev/null and stdout/stderr appended to the detach
log, and goes on with the same session: it keeps the locks the foreground
took, so no other seqrun can slip in between. The foreground process prints
the background pid, the log, the pid file and the tmux session to attach
to, and exits 0.

Files, beside the specs (``<specs root>/.seqrun/``, which git ignores):

- ``detach/<spec>.log``: the output, unless ``--detach-log PATH`` says where
  (a path inside the work tree is kept out of ``--git-commit``'s commits);
- ``detach/<spec>.pid``: the background pid while it runs; removed when the
  run ends (a ``kill -9`` leaves it: check the pid is a seqrun before use).

``<spec>`` is the first spec being run (the spec lock makes it unique).

This module is the plugin's light part (its options, registration); the
detacher is :mod:`seqrun.detacher`, imported when ``--detach`` registers it:
``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse

import pluggy

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--detach", action="store_true",
                       help="check everything, then run in the background, detached from the terminal "
                       "(like nohup + setsid)")
    group.add_argument("--detach-log", default=None, metavar="PATH",
                       help="where a --detach run writes its output (default "
                       "<specs root>/.seqrun/detach/<spec>.log)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    if config.option.detach:
        from seqrun.detacher import Detacher

        config.pluginmanager.register(Detacher(config), "detacher")


#: The detacher, importable from here as before (see the module docstring).
_DETACHER = frozenset({"Detacher"})


__getattr__ = moved_names(__name__, "seqrun.detacher", _DETACHER)
