"""The detacher behind :mod:`seqrun.detach` (``detacher``): the fork, the
new session, the log and the pid file.

:mod:`seqrun.detach`'s docstring states what it guarantees; this module is
imported when ``--detach`` registers the detacher: ``seqrun --co`` never
loads it. ``Detacher`` stays importable from :mod:`seqrun.detach`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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
