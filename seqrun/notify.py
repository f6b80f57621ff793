"""``--notify CMD``: tell someone when the run halts, when a task fails, and when it ends.

``CMD`` is split with :func:`shlex.split` and run without a shell (write
``sh -c '...'`` for one), in the directory seqrun was started in, with the
outcome in its environment:

``SEQRUN_EVENT``
    ``halt`` (a task asked for a human, or a rate limit is too long to wait
    for), ``failure`` (a task failed, after its reruns), ``finish`` (the run
    is over, whatever happened; once).
``SEQRUN_EXIT_STATUS``
    The exit status seqrun is about to return (``finish`` only; else empty).
``SEQRUN_SPEC``, ``SEQRUN_TASK_ID``, ``SEQRUN_TASK_TITLE``, ``SEQRUN_NODEID``, ``SEQRUN_LOG``
    The task the event is about; for ``finish``, the last task that failed
    or halted (empty when none did), and every spec name, comma-separated.
``SEQRUN_REASON``
    The task's reason; for ``finish``, why the run stopped early (empty when
    it did not).
``SEQRUN_PASSED``, ``SEQRUN_FAILED``, ``SEQRUN_HALTED``, ``SEQRUN_SKIPPED``, ``SEQRUN_SUMMARY``
    The counts so far, and a line such as ``3 passed, 1 failed``.

``--notify-on`` picks the events (default ``halt,failure,finish``). A
notifier is given ``--notify-timeout`` seconds (default 60) before it and its
processes are ended; whatever it does — fail, hang, not exist any more — is a
warning on stderr and never changes the run's outcome. One that cannot be
found when seqrun starts is a usage error.

This module is the plugin's light part (its options, their checks,
registration); the notifier is :mod:`seqrun.notifier`, imported when
``--notify`` registers it: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pluggy

from seqrun.config import Config, UsageError, seconds
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names


EVENTS = ("halt", "failure", "finish")
DEFAULT_NOTIFY_TIMEOUT = 60.0


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("notifications")
    group.add_argument("--notify", default=None, metavar="CMD",
                       help="run CMD (no shell) when the run halts, a task fails, and at the end; "
                       "the outcome is in SEQRUN_* environment variables")
    group.add_argument("--notify-on", default=",".join(EVENTS), metavar="EVENTS",
                       help="which events run --notify: halt, failure, finish (default all three)")
    group.add_argument("--notify-timeout", type=seconds, default=DEFAULT_NOTIFY_TIMEOUT, metavar="SECONDS",
                       help=f"end a notifier after this long (default {DEFAULT_NOTIFY_TIMEOUT:g})")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    if opt.collectonly or opt.notify in (None, "", []):
        return
    from seqrun.verify import find_executable, parse_command  # only with --notify

    try:
        argv = parse_command(opt.notify, "--notify")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    raw = opt.notify_on if isinstance(opt.notify_on, str) else ",".join(map(str, opt.notify_on or ()))
    events = frozenset(e.strip() for e in raw.split(",") if e.strip())
    unknown = sorted(events - set(EVENTS))
    if unknown or not events:
        raise UsageError(f"--notify-on: unknown event(s) {', '.join(unknown) or '(none given)'} "
                         f"(known: {', '.join(EVENTS)})")
    if find_executable(argv[0], Path(config.invocation_dir)) is None:
        raise UsageError(f"--notify: {argv[0]} not found (in {config.invocation_dir} or on PATH)")
    from seqrun.notifier import Notifier

    config.pluginmanager.register(Notifier(config, argv, events), "notifier")


#: The notifier, importable from here as before (see the module docstring).
_NOTIFIER = frozenset({"Notifier"})


__getattr__ = moved_names(__name__, "seqrun.notifier", _NOTIFIER)
