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
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.paths import safe_name, seqrun_dir, specs_root

if TYPE_CHECKING:
    from seqrun.main import Session


class Detacher:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pid_file: Path | None = None

    def _paths(self, session: Session) -> tuple[Path, Path]:
        spec = session.items[0].spec
        assert spec is not None
        folder = seqrun_dir(specs_root(spec)) / "detach"
        folder.mkdir(parents=True, exist_ok=True)
        chosen = self.config.option.detach_log
        if chosen:
            log = Path(chosen)
            log = log if log.is_absolute() else self.config.invocation_dir / log
        else:
            log = folder / f"{safe_name(spec.name)}.log"
        return log, folder / f"{safe_name(spec.name)}.pid"

    @hookimpl(trylast=True)
    def seqrun_preflight(self, session: Session) -> None:
        # trylast: every other check has passed, and printed its error on the terminal if not.
        from seqrun.atomicfile import atomic_write
        from seqrun.runner import tmux_session_name, use_tmux
        from seqrun.terminal.tmux import watch_command

        log, pid_file = self._paths(session)
        log.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # unwritable: exit 4, here
        tmux = tmux_session_name(session, session.items[0]) if use_tmux(self.config) else None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            os.close(out)
            where = f"; attach: {watch_command(tmux)}" if tmux else ""
            print(f"seqrun is running in the background as pid {pid}; output: {log}; "
                  f"pid file: {pid_file}{where}", flush=True)
            # The background process owns the run from here (locks, state, reports).
            os._exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.environ.setdefault("NO_COLOR", "1")
        atomic_write(pid_file, f"{os.getpid()}\n".encode("ascii"))
        self.pid_file = pid_file
        self.config.hook.seqrun_detached(session=session, log_path=log)

    @hookimpl(trylast=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        if self.pid_file is None:
            return
        try:
            if self.pid_file.read_text(encoding="ascii").strip() == str(os.getpid()):
                self.pid_file.unlink()
        except OSError:
            pass  # gone already: nothing to tidy


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
        config.pluginmanager.register(Detacher(config), "detacher")
