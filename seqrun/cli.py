"""The ``seqrun`` command's entry point, light enough to answer ``--version`` at once.

``seqrun --version`` (or ``-V``) as the whole command line prints the version
without importing the rest of seqrun: no plugin manager, no plugins, no
config file, as ``git --version`` answers. Any other command line, including
``--version`` together with other options, goes through
:func:`seqrun.main.console_main` exactly as before (plugins loaded, options
checked, config file read).

This module imports nothing at start: what it costs is what ``seqrun
--version`` costs above a bare interpreter.
"""
from __future__ import annotations

import sys

#: The command lines answered without loading seqrun: the version alone.
VERSION_ONLY = (["--version"], ["-V"])


def print_version() -> int:
    """Print ``seqrun <version>``; a console that is gone is silenced as a
    run's is (:mod:`seqrun.console`), never an error."""
    from seqrun import __version__

    stream = sys.stdout
    if stream is None:  # no console at all (pythonw, a closed descriptor)
        return 0
    try:
        stream.write(f"seqrun {__version__}\n")
        stream.flush()
    except (OSError, ValueError) as exc:
        # Rare: pay for the guard only now. A reader that went away is
        # silenced as a run's console is; any other error (a full disk) is
        # reported as a run reports it.
        from seqrun.console import went_away

        try:
            went_away(stream, exc)
        except (OSError, ValueError):
            from seqrun.main import ExitCode, report_internal_error

            report_internal_error(None, exc)
            return ExitCode.INTERNAL_ERROR
    return 0


def console_main() -> int:
    """The ``seqrun`` console script and ``python -m seqrun``."""
    if sys.argv[1:] in VERSION_ONLY:
        return print_version()
    import gc

    # Start-up (seqrun's modules, the plugins, the parser, the config, the
    # collected tasks) only makes objects that live as long as the process:
    # the collector would walk them again and again for nothing (4 ms of a
    # `--co -q` of 5,000 tasks). It is paused here and restarted by
    # seqrun.main.end_startup once the tasks are collected, with what
    # start-up made frozen (never walked again).
    gc.disable()
    from seqrun.main import console_main as run

    return run()
