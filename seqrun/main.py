"""The session: collect → select → run → report, and the process exit code."""
from __future__ import annotations

import argparse
import enum
import errno
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pluggy

from seqrun.config import Config, UsageError, parse_config, whole_number
from seqrun.console import guarded_console
from seqrun.hookspec import hookimpl
from seqrun.kiro import TASK_FILE_NAMES
from seqrun.nodes import Spec, Task
from seqrun.outcome import Outcome
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport


class ExitCode(enum.IntEnum):
    OK = 0
    TASKS_FAILED = 1
    """Some task failed, or ``--max-iterations`` ran out first."""
    INTERRUPTED = 2
    """Halted by the agent (``<promise>HALT</promise>``), Ctrl-C or SIGTERM."""
    INTERNAL_ERROR = 3
    USAGE_ERROR = 4
    NO_TASKS_COLLECTED = 5


class Interrupted(KeyboardInterrupt):
    """Raised to stop the run (SIGTERM, SIGHUP, a second Ctrl-C)."""


def new_run_id() -> str:
    """Names one invocation: its UTC start time, and 6 hex digits against a clash."""
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(3).hex()


class Session:
    """One run: the collected specs, the selected items and how it went.

    Registered as a plugin, as pytest's Session is: it counts the failures
    and applies ``-x``/``--maxfail`` and halting in its own
    ``seqrun_runtest_logreport``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.run_id = new_run_id()
        self.specs: list[Spec] = []
        self.items: list[Task] = []
        self.deselected: list[Task] = []
        self.selectors: dict[str, set[str]] = {}
        """Spec node id → task ids named on the command line (``PATH::ID``)."""
        self.testsfailed = 0
        self.halted = False
        self.budget_exhausted = False
        self.shouldstop: str | None = None
        self.exitstatus: int = ExitCode.OK

    # -- collection -----------------------------------------------------------

    def perform_collect(self) -> list[Task]:
        hook = self.config.hook
        for path, task_id, named in self._resolve_args():
            spec = next((s for s in self.specs if s.tasks_file == path), None)
            if spec is None:
                spec = hook.seqrun_collect_file(path=path, config=self.config)
                if spec is None:
                    raise UsageError(f"no plugin could read {path}")
                if named and not spec.roots:
                    # A file named on the command line is meant as a task list: one
                    # without tasks is a mistake (a spec folder may be empty so far).
                    raise UsageError(f"{spec.nodeid} has no tasks (no `- [ ]` lines, `### Task 1:` "
                                     "headings or numbered list); a spec's task list is its tasks.md")
                self.specs.append(spec)
            wanted = self.selectors.setdefault(spec.nodeid, set())
            if task_id is None:
                wanted.add("")  # the whole spec
            elif task_id not in {t.id for t in spec.iter_tasks()}:
                nearby = nearby_ids(task_id, [t.id for t in spec.iter_tasks()])
                hint = f"; did you mean {' or '.join(nearby)}?" if len(nearby) == 1 else (
                    f"; ids nearby: {', '.join(nearby)}" if nearby else "")
                raise UsageError(f"not found: {spec.nodeid}::{task_id} (no task with that id{hint})")
            else:
                wanted.add(task_id)
        items = [leaf for spec in self.specs for leaf in spec.leaves()]
        hook.seqrun_collection_modifyitems(session=self, config=self.config, items=items)
        self.items = items
        hook.seqrun_collection_finish(session=self)
        return items

    def _resolve_args(self) -> list[tuple[Path, str | None, bool]]:
        """(tasks file, task id, whether the file itself was named) per PATH;
        no PATH: the specs root found upwards (:meth:`Config.default_paths`)."""
        if not self.config.args:
            return [(f, None, False) for root in self.config.default_paths() for f in find_task_files(root)]
        resolved = []
        for arg in self.config.args:
            raw, _, task_id = arg.partition("::")
            path = Path(raw)
            if not path.is_absolute():
                path = self.config.invocation_dir / path  # relative to where seqrun was started
            files = find_task_files(path)
            if task_id and len(files) != 1:
                raise UsageError(f"{arg}: PATH::ID needs PATH to be one spec")
            resolved.extend((f, task_id or None, f == path) for f in files)
        return resolved

    # -- results -----------------------------------------------------------------

    @hookimpl(tryfirst=True)
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        # tryfirst: a reporter that reads session.shouldstop sees this report's effect.
        if report.outcome is Outcome.HALTED:
            self.halted = True
            self.shouldstop = self.shouldstop or f"halted by task {report.task_id}: {report.reason}"
        elif report.failed:
            self.testsfailed += 1
            maxfail = self.config.option.maxfail
            if maxfail and self.testsfailed >= maxfail:
                self.shouldstop = self.shouldstop or f"stopping after {self.testsfailed} failure(s)"

    def exit_code(self) -> ExitCode:
        if self.halted:
            return ExitCode.INTERRUPTED
        if self.testsfailed or self.budget_exhausted:
            return ExitCode.TASKS_FAILED
        return ExitCode.OK


def nearby_ids(wanted: str, ids: Sequence[str], n: int = 3) -> list[str]:
    """The task ids closest to ``wanted``: the same digits first (``1.21`` →
    ``1.2.1``), then the most alike."""
    same_digits = [i for i in ids if i.replace(".", "") == wanted.replace(".", "") and i != wanted]
    if same_digits:
        return same_digits[:n]
    import difflib

    scored = [(difflib.SequenceMatcher(None, wanted, i).ratio(), index, i) for index, i in enumerate(ids)]
    # Best first; equally alike ids in file order.
    return [i for score, _, i in sorted(scored, key=lambda s: (-s[0], s[1])) if score >= 0.5][:n]


def find_task_files(path: Path) -> list[Path]:
    """The tasks files a command-line PATH names, or a UsageError saying why none."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise UsageError(f"{path}: not a file or directory")
    for name in TASK_FILE_NAMES:
        if (path / name).is_file():
            return [path / name]
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = [child / name for child in children for name in TASK_FILE_NAMES if (child / name).is_file()]
    if not found:
        raise UsageError(f"no tasks.md in {path} or in its sub-folders")
    return found


# -- the main loop ------------------------------------------------------------------


def _install_signal_handlers() -> Callable[[], None]:
    """SIGTERM and SIGHUP stop the run like Ctrl-C does (exit 2, agent ended)."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread
            pass

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def wrap_session(config: Config, doit: Callable[[Config, Session], int | None]) -> int:
    """Run ``doit`` inside a session: sessionstart/finish, and every failure
    turned into an exit code with a one-line message."""
    session = Session(config)
    config.pluginmanager.register(session, "session")
    restore = _install_signal_handlers()
    try:
        try:
            config.hook.seqrun_sessionstart(session=session)
            exitstatus = int(doit(config, session) or ExitCode.OK)
        except KeyboardInterrupt as exc:
            exitstatus = ExitCode.INTERRUPTED
            session.shouldstop = session.shouldstop or f"interrupted ({exc or 'Ctrl-C'})"
        except BaseException as exc:  # noqa: BLE001 - turned into an exit code below
            exitstatus = _exit_code_for(config, session, exc)
        session.exitstatus = exitstatus
        try:
            config.hook.seqrun_sessionfinish(session=session, exitstatus=exitstatus)
            exitstatus = session.exitstatus  # a plugin may raise it (a report it could not write)
        except KeyboardInterrupt:
            exitstatus = ExitCode.INTERRUPTED
        except BaseException as exc:  # noqa: BLE001
            # Reported once even when the run already failed the same way (a full disk).
            exitstatus = max(exitstatus, _exit_code_for(config, session, exc, quiet_if=exitstatus))
    finally:
        restore()
    return exitstatus


def _exit_code_for(config: Config, session: Session, exc: BaseException, quiet_if: int = -1) -> int:
    """The exit code for an exception that ended the session, with its one line."""
    if isinstance(exc, UsageError):
        print(f"ERROR: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if isinstance(exc, OSError):
        # The environment, not seqrun: a full disk, a read-only folder.
        if quiet_if != ExitCode.USAGE_ERROR:
            print(f"ERROR: {describe_os_error(exc)}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    if isinstance(exc, SystemExit):
        raise exc
    report_internal_error(config, exc)
    return ExitCode.INTERNAL_ERROR


_OS_ERROR_FIXES = {
    errno.ENOSPC: "free some disk space, then run the same command again to resume",
    errno.EDQUOT: "free some disk space, then run the same command again to resume",
    errno.EROFS: "the file system is read-only: run seqrun where it can write",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
}


def describe_os_error(exc: OSError) -> str:
    """One line: what failed, where, and what to do about it."""
    where = f"{exc.filename}: " if exc.filename else ""
    fix = _OS_ERROR_FIXES.get(exc.errno or 0, "")
    return f"{where}{exc.strerror or exc}" + (f" ({fix})" if fix else "")


def report_internal_error(config: Config | None, exc: BaseException) -> None:
    debug = config is not None and (config.getoption("debug") or config.getoption("verbose", 0) > 0)
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"INTERNAL ERROR: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
          file=sys.stderr)


def _main(config: Config, session: Session) -> int:
    session.perform_collect()
    if config.option.collectonly:
        config.hook.seqrun_report_collectionfinish(session=session)
        return ExitCode.OK if session.items else ExitCode.NO_TASKS_COLLECTED
    if not session.items:
        return ExitCode.NO_TASKS_COLLECTED
    config.hook.seqrun_preflight(session=session)
    config.hook.seqrun_runtestloop(session=session)
    return session.exit_code()


@hookimpl(tryfirst=True)
def seqrun_configure(config: Config) -> None:
    # An empty folder hears how to start before anything else (a missing agent CLI).
    if not config.args:
        config.default_paths()


@hookimpl
def seqrun_report_session_header(config: Config) -> list[str]:
    # Said when it is not the obvious ./.kiro/specs, as pytest says its rootdir.
    root = config.rootpath
    if root is None or (root == config.invocation_dir.resolve() and config.getoption("verbose", 0) <= 0):
        return []
    where = f"rootdir: {root}"
    if config.specs_root is not None and not config.args:
        where += f", specs: {config.default_paths()[0].resolve().relative_to(root).as_posix()}"
    return [where]


@hookimpl(trylast=True)
def seqrun_cmdline_main(config: Config) -> int:
    config.do_configure()
    return wrap_session(config, _main)


@hookimpl(tryfirst=True)  # the general options open the help, as in pytest
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.getgroup("general", order=0, common=True)  # type: ignore[attr-defined]
    group.add_argument("--collect-only", "--co", dest="collectonly", action="store_true",
                       help="only collect and list the tasks, run nothing")
    group.add_argument("-x", "--exitfirst", dest="maxfail", action="store_const", const=1, default=0,
                       help="stop after the first failed task")
    group.add_argument("--maxfail", type=whole_number, default=0, metavar="N",
                       help="stop after N failed tasks (0: never)")
    group.add_argument("--spec", action="append", default=[], metavar="PATH",
                       help="alias for a PATH argument (the seed script's flag)")


def main(argv: Sequence[str] | None = None, *, ends_process: bool = False) -> int:
    """Run seqrun with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    ``ends_process``: the caller exits when this returns (the console script).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    config: Config | None = None
    try:
        try:
            config = parse_config(args)
        except BaseException:
            if ends_process:
                end_startup(None)
            raise
        # Start-up lasts until the tasks are collected (seqrun_collection_finish
        # below), or at the latest until the command is done.
        config.stash[startup_paused_key] = ends_process
        try:
            code = config.hook.seqrun_cmdline_main(config=config)
        finally:
            end_startup(config)
            config.ensure_unconfigure()
        if ends_process and config.option.collectonly:
            import gc

            # Listed, and the process ends next: what is left (modules,
            # plugins, the tasks' tree) goes with the process, so the collector
            # need not walk it at exit: 10 ms of a `--co -q` of 50 tasks, 17 ms
            # of one of 5,000. Only after a listing: a run's objects may hold
            # finalizers that must run.
            gc.freeze()
        return int(code)
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001
        report_internal_error(config, exc)
        return ExitCode.INTERNAL_ERROR


#: Whether the cyclic collector is still paused for start-up (the console script).
startup_paused_key = StashKey[bool]()


def end_startup(config: Config | None) -> None:
    """Restart the collector :func:`seqrun.cli.console_main` paused for
    start-up, with what start-up made frozen: the modules, plugins, parser,
    config and the collected tasks' tree live until the process ends, so the
    collector need not walk them in each collection of the run (22,000
    objects for 5,000 tasks; a cycle start-up left as garbage stays: a few
    objects, once). ``config``: the run's, whose stash says whether the
    collector is still paused; None: it is."""
    if config is not None:
        if not config.stash.get(startup_paused_key, False):
            return
        config.stash[startup_paused_key] = False
    import gc

    gc.freeze()
    gc.enable()


@hookimpl(trylast=True)
def seqrun_collection_finish(session: Session) -> None:
    end_startup(session.config)


def console_main() -> int:
    """The ``seqrun`` console script: the process's stdout and stderr are
    guarded (:mod:`seqrun.console`), so a closed console never stops a run."""
    with guarded_console():
        return main(ends_process=True)
