"""The per-task protocol's machinery: what :mod:`seqrun.runner`'s hooks run.

:class:`CallInfo` (one phase's result or exception), :class:`RunState` (the
session's bookkeeping), :class:`AttemptSettings`, the loop over dispatch
units, :func:`runtestprotocol`, the built-in report, setup and agent-run
implementations, the executors (pty or tmux) and the signal handling.

:mod:`seqrun.runner` keeps the plugin's options and hook implementations and
imports this module the first time a run needs it: ``seqrun --co`` never
loads it. Its names stay importable from :mod:`seqrun.runner`.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from seqrun.config import UsageError
from seqrun.nodes import Spec, Task, TaskState, Unit
from seqrun.outcome import Kind, Outcome, Skipped, When
from seqrun.paths import attempt_dir, highest_attempt_on_disk, looks_digested, name_digest, workdir
from seqrun.runner import (
    AttemptInterrupted, BudgetExhausted, RateLimitTooLong, StopRun, done_before_key, runstate, tmux_session_key,
    use_tmux,
)
from seqrun.text import human_seconds

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport, Usage, Verdict
    from seqrun.main import Session
    from seqrun.terminal.view import AgentView, Header

T = TypeVar("T")


@dataclass(frozen=True)
class CallInfo(Generic[T]):
    """The result or the exception of one phase of the protocol."""

    when: When
    result: T | None
    excinfo: BaseException | None
    start: float
    stop: float

    @classmethod
    def from_call(cls, func: Callable[[], T], when: When,
                  reraise: tuple[type[BaseException], ...] = ()) -> CallInfo[T]:
        start = time.time()
        try:
            result: T | None = func()
            excinfo: BaseException | None = None
        except reraise:
            raise
        except BaseException as exc:  # noqa: BLE001 - the boundary: turned into a report
            if isinstance(exc, SystemExit):
                raise
            result, excinfo = None, exc
        return cls(when, result, excinfo, start, time.time())


#: What crosses a setup or teardown boundary instead of becoming an ERROR report.
_RERAISE: tuple[type[BaseException], ...] = (KeyboardInterrupt, UsageError)
#: The call phase also lets the environment's errors through (a full disk
#: while writing the prompt stops the run with its fix), and captures
#: KeyboardInterrupt to report the interrupted attempt before it goes on.
_RERAISE_CALL: tuple[type[BaseException], ...] = (UsageError, OSError)


@dataclass
class RunState:
    """Per-session bookkeeping of the runner (``config.stash[runstate_key]``)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    agent_running: bool = False
    """An agent process runs, or is about to start: a signal cancels it (the
    attempt is recorded interrupted) instead of raising where the code stands."""
    outcomes: dict[Task, Outcome] = field(default_factory=dict)
    executor: Any = None
    by_written_id: dict[Spec, dict[str, Task]] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptSettings:
    """What one task's attempts run with (``seqrun_attempt_settings``)."""

    timeout: float
    """Seconds an agent run may take; 0: no limit."""
    model: str | None
    reruns: int
    """How many times a failed attempt is run again."""


# -- the loop ------------------------------------------------------------------------------


def plan_units(items: list[Task], dispatch: str) -> list[Unit]:
    """Group the selected leaves into dispatch units, in file order."""
    if dispatch == "leaf":
        return [Unit(item) for item in items]
    units: list[Unit] = []
    by_root: dict[Task, Unit] = {}
    for item in items:
        root = item.root
        if root is item:
            units.append(Unit(item))
            continue
        unit = by_root.get(root)
        if unit is None:
            unit = by_root[root] = Unit(root)
            units.append(unit)
        unit.subtasks.append(item)
    return units


def runtestloop(session: Session) -> bool:
    """The built-in ``seqrun_runtestloop``: each dispatch unit through the protocol."""
    config = session.config
    state = runstate(config)
    units = plan_units(session.items, config.option.dispatch)
    try:
        with _signals_cancel(state):
            for index, unit in enumerate(units):
                if session.shouldstop:
                    for rest in units[index:]:
                        _report_not_run(session, rest, session.shouldstop)
                    break
                config.hook.seqrun_runtest_protocol(item=unit, session=session)
    finally:
        if state.executor is not None:
            state.executor.close()
    return True


def runtestprotocol(unit: Unit, session: Session) -> None:
    """setup → call → (makereport → teardown → logreport) for each task of ``unit``."""
    hook = session.config.hook
    hook.seqrun_runtest_logstart(nodeid=unit.task.nodeid, item=unit.task)
    remaining: list[Task] = []
    for task in (unit.task, *unit.subtasks):
        setup: CallInfo[None] = CallInfo.from_call(
            lambda: hook.seqrun_runtest_setup(item=task, unit=unit, session=session), "setup", _RERAISE)
        if setup.excinfo is None:
            if task is not unit.task:
                remaining.append(task)
        elif task is unit.task:
            for member in unit.members:  # the unit's own task: nothing of it runs
                _finish(session, unit, member, setup)
            return
        else:
            # A unit covers its *remaining required* subtasks; the others are
            # reported on their own, as --dispatch leaf would.
            _finish(session, unit, task, setup)
    if unit.subtasks:
        if not remaining:
            return
        unit.subtasks = remaining
    call: CallInfo[Attempt] = CallInfo.from_call(
        lambda: hook.seqrun_runtest_call(item=unit.task, unit=unit, session=session), "call", _RERAISE_CALL)
    interrupted = call.excinfo if isinstance(call.excinfo, KeyboardInterrupt) else None
    if interrupted is not None and (not unit.attempts or unit.attempts[-1].outcome is Outcome.RATE_LIMITED):
        raise interrupted  # a signal while waiting: nothing to hold against the task
    for member in unit.members:
        _finish(session, unit, member, call)
    if interrupted is not None:
        raise interrupted


def _finish(session: Session, unit: Unit, task: Task, call: CallInfo[Any]) -> None:
    """Report one task from a phase's result: makereport → teardown → logreport."""
    hook = session.config.hook
    report: TaskReport = hook.seqrun_runtest_makereport(item=task, unit=unit, call=call, report=None)
    teardown: CallInfo[None] = CallInfo.from_call(
        lambda: hook.seqrun_runtest_teardown(item=task, unit=unit, session=session, report=report),
        "teardown", _RERAISE)
    if teardown.excinfo is not None:
        report = hook.seqrun_runtest_makereport(item=task, unit=unit, call=teardown, report=report)
    sections = unit.sections.pop(task, None)
    if sections:
        report = dataclasses.replace(report, sections=report.sections + tuple(sections))
    _log(session, task, report)


def _log(session: Session, task: Task, report: TaskReport) -> None:
    runstate(session.config).outcomes[task] = report.outcome
    session.config.hook.seqrun_runtest_logreport(report=report)


def _report_not_run(session: Session, unit: Unit, why: str) -> None:
    not_run: CallInfo[None] = CallInfo("setup", None, Skipped(f"not reached: {why}", Kind.NOT_REACHED),
                                       time.time(), time.time())
    for member in unit.members:
        report = session.config.hook.seqrun_runtest_makereport(item=member, unit=unit, call=not_run, report=None)
        _log(session, member, report)


# -- makereport ----------------------------------------------------------------------------------


def makereport(item: Task, unit: Unit, call: CallInfo[Any],
                              report: TaskReport | None) -> TaskReport:
    from seqrun.outcome import TaskReport, Verdict  # the records load with the first report

    exc = call.excinfo
    if call.when == "teardown" and report is not None:
        assert exc is not None
        return dataclasses.replace(report, outcome=Outcome.ERROR, kind=Kind.TEARDOWN_ERROR, when="teardown",
                                   reason=f"teardown failed: {_exc_line(exc)}",
                                   longrepr=_exc_text(exc))
    base = dict(nodeid=item.nodeid, task_id=item.id, title=item.title, when=call.when)
    if isinstance(exc, Skipped):
        return TaskReport(**base, outcome=Outcome.SKIPPED, kind=exc.kind, reason=exc.reason)
    if call.when == "setup":
        return TaskReport(**base, outcome=Outcome.ERROR, kind=Kind.SETUP_ERROR,
                          reason=f"setup failed: {_exc_line(exc)}", longrepr=_exc_text(exc))
    attempts = tuple(unit.attempts)
    if exc is None:
        verdict = call.result.verdict
    elif isinstance(exc, BudgetExhausted) and not attempts:
        return TaskReport(**base, outcome=Outcome.SKIPPED, kind=Kind.NOT_REACHED, reason=f"not reached: {exc}")
    elif isinstance(exc, RateLimitTooLong):
        verdict = Verdict(Outcome.HALTED, str(exc), kind=Kind.RATE_LIMITED)
    elif isinstance(exc, (StopRun, KeyboardInterrupt)) and attempts:
        verdict = attempts[-1].verdict  # stopped between attempts: the last one stands
    else:
        return TaskReport(**base, outcome=Outcome.ERROR, kind=Kind.CALL_ERROR,
                          reason=f"the agent could not be run: {_exc_line(exc)}", longrepr=_exc_text(exc),
                          attempts=attempts)
    last = attempts[-1] if attempts else None
    usage: Usage | None = None
    for attempt in attempts:
        if attempt.usage is not None:
            usage = attempt.usage if usage is None else usage + attempt.usage
    return TaskReport(
        **base, outcome=verdict.outcome, kind=verdict.kind, reason=verdict.reason,
        duration=sum(a.duration for a in attempts), attempts=attempts,
        attempt_number=last.number if last else 0,
        backend=last.backend if last else None, model=last.model if last else None,
        log_path=last.log_path if last else None, usage=usage, final_message=verdict.final_message,
        longrepr=verdict.longrepr, sections=verdict.sections,
        dispatch_id=f"{last.run_id}:{last.nodeid}" if last else None,
    )


def _exc_line(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _exc_text(exc: BaseException | None) -> str:
    import traceback

    if exc is None:
        return ""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# -- setup: what is skipped --------------------------------------------------------------


def check_dependencies(item: Task, session: Session) -> None:
    if item.spec is None:
        return
    state = runstate(session.config)
    by_written = state.by_written_id.get(item.spec)
    if by_written is None:
        # Built once per spec: a lookup per task must not cost O(tasks).
        by_written = {}
        for task in item.spec.iter_tasks():
            by_written.setdefault(task.id, task)
            if task.written_id is not None:
                by_written.setdefault(task.written_id, task)
        state.by_written_id[item.spec] = by_written
    done_before = session.config.stash.get(done_before_key, set())
    for task in (item, *item.ancestors()):
        for dep_id in task.depends:
            dep = by_written.get(dep_id)
            if dep is None:
                continue  # a reference to nothing in this spec (another spec, a phase)
            for leaf in [t for t in dep.iter_tree() if t.is_leaf] or [dep]:
                if leaf.state is TaskState.DONE or (leaf.optional and leaf is not dep):
                    continue
                outcome = state.outcomes.get(leaf)
                if outcome is Outcome.PASSED or leaf.nodeid in done_before:
                    continue
                how = "was not done" if outcome is None else outcome.value
                raise Skipped(f"dependency {dep_id} {how}", Kind.DEPENDENCY)


# -- call: one agent run ---------------------------------------------------------------


def run_attempt(item: Task, unit: Unit, session: Session) -> Attempt:
    """The built-in ``seqrun_runtest_call``: one agent run of ``unit``, recorded."""
    import uuid

    from seqrun.backends.base import AgentCall, LineParser  # with its parsers' imports: not for --co
    from seqrun.backends.registry import backend_for
    from seqrun.terminal.view import Header, verdict_line

    config, opt, hook = session.config, session.config.option, session.config.hook
    state = runstate(config)
    backend = backend_for(session, item)
    folder = attempt_dir(item)
    if not unit.attempts:
        # Numbered over the task's life; never below a file already there
        # (a --fresh state file), so no earlier attempt's log is written over.
        unit.past_attempts = max(unit.past_attempts, highest_attempt_on_disk(folder))
    number = max(unit.past_attempts, unit.attempts[-1].number if unit.attempts else 0) + 1
    previous = unit.last_attempt
    resume = (hook.seqrun_resume_session(item=item, unit=unit, previous=previous, backend=backend, session=session)
              if previous is not None else None)
    prompt = hook.seqrun_build_prompt(task=item, subtasks=unit.subtasks, session=session, unit=unit,
                                      previous=previous, resume_session=resume)
    prompt_path, log_path = folder / f"{number}.prompt.md", folder / f"{number}.log"
    try:
        prompt_path.write_text(prompt, encoding="utf-8")
    except FileNotFoundError:  # the task's first attempt: its folder is made once
        folder.mkdir(parents=True, exist_ok=True)
        prompt_path.write_text(prompt, encoding="utf-8")
    if state.executor is None:  # before the attempt hook: reporters show the tmux session
        state.executor = make_executor(session, item)
    state.agent_running = True
    # Chosen here, not by the executor: the running record holds it before the
    # agent exists, so no instant of the agent's life is unrecorded.
    token = uuid.uuid4().hex
    try:
        try:
            hook.seqrun_runtest_attempt(item=item, unit=unit, attempt=number, log_path=log_path,
                                        backend=backend.name, token=token)
            # Asked after the attempt hook: --max-runtime cuts the time limit to
            # what is left once that hook's work (a --verify-baseline run) is done.
            settings: AttemptSettings = hook.seqrun_attempt_settings(item=item, session=session)
            agent_call = AgentCall(
                prompt=prompt, prompt_file=prompt_path if prompt_path.is_absolute() else prompt_path.resolve(),
                workdir=workdir(config),
                task_id=item.id, model=settings.model,
                options=config.section("backends").get(backend.name, {}), resume_session=resume,
                sandbox=bool(getattr(opt, "is_sandbox", False)),
            )
            invocation = hook.seqrun_backend_invocation(backend=backend, call=agent_call)
            parser = backend.parser()
            if resume is not None and isinstance(parser, LineParser):
                parser.resuming = True  # it watches for the CLI's "no such session"
            view = _view(backend, parser, _watch_session(parser, item, unit, hook, log_path), opt)
            header = Header(spec=item.spec.name if item.spec else "-", task_id=item.id, title=item.title,
                            attempt=number, backend=backend.name, model=settings.model,
                            log_path=str(log_path))
            started = time.time()
            result = state.executor.run(item, invocation, view=view, header=header, log_path=log_path,
                                        timeout=settings.timeout or None, idle_timeout=opt.idle_timeout or None,
                                        cancel=state.cancel, grace=opt.kill_grace, token=token,
                                        on_processes=lambda record: hook.seqrun_runtest_processes(
                                            item=item, unit=unit, processes=record))
        finally:
            state.agent_running = False
        verdict = _verdict_of(result, parser, opt, settings, state.cancel_reason)
        if verdict.outcome is not Outcome.INTERRUPTED:
            verdict = hook.seqrun_decide_verdict(item=item, unit=unit, verdict=verdict, session=session)
            if verdict.passed:
                verdict = hook.seqrun_verify_task(item=item, unit=unit, verdict=verdict, session=session)
    except BaseException as exc:
        # The window waits for a verdict that will not come: say why.
        state.executor.conclude("INTERRUPTED" if isinstance(exc, KeyboardInterrupt)
                                else f"ERROR: no verdict: {_exc_line(exc)}")
        raise
    state.executor.conclude(verdict_line(verdict))  # after verification: the verdict is final
    from seqrun.outcome import Attempt

    attempt = Attempt(
        nodeid=item.nodeid, task_id=item.id, number=number, run_id=session.run_id,
        started_at=started, ended_at=time.time(), backend=backend.name, model=settings.model, verdict=verdict,
        members=tuple(m.id for m in unit.members), prompt_path=str(prompt_path), log_path=str(log_path),
    )
    unit.attempts.append(attempt)
    hook.seqrun_runtest_logattempt(item=item, unit=unit, attempt=attempt)
    if attempt.outcome is Outcome.INTERRUPTED:
        raise AttemptInterrupted(state.cancel_reason or "Ctrl-C")
    return attempt


def _view(backend: Any, parser: Any, feed: Callable[[str], None], opt: argparse.Namespace) -> AgentView:
    """What a person watching sees of this attempt: the console's share (-s,
    -v) now, its window's when the executor opens one."""
    from seqrun.terminal.view import AgentView

    renderer = None
    make = getattr(backend, "renderer", None)
    if make is not None:
        renderer = make()
    console = (sys.stdout.buffer,) if opt.echo_output else ()
    return AgentView(feed, parser, renderer, raw=opt.window_output == "raw", screens=console)


def _watch_session(parser: Any, item: Task, unit: Unit, hook: Any, log_path: Path) -> Callable[[str], None]:
    """The parser's ``feed_line``, telling ``seqrun_runtest_session`` once the
    CLI has named its session."""
    feed = parser.feed_line
    if not isinstance(getattr(type(parser), "session_id", 0), (str, type(None))):
        return feed  # a parser that does not follow sessions
    told = False

    def on_line(line: str) -> None:
        nonlocal told
        feed(line)
        if not told and parser.session_id:
            told = True
            hook.seqrun_runtest_session(item=item, unit=unit, session_id=parser.session_id, log_path=log_path)

    return on_line


def _verdict_of(result: Any, parser: Any, opt: argparse.Namespace, settings: AttemptSettings,
                cancel_reason: str) -> Verdict:
    """The verdict of one agent process: the parser's, unless seqrun (or
    something outside) ended the process first."""
    from seqrun.outcome import Verdict

    verdict: Verdict = parser.finish(result.exit_status)
    cut = dict(final_message=verdict.final_message, usage=verdict.usage, session_id=verdict.session_id)
    if result.interrupted:
        return Verdict(Outcome.INTERRUPTED, f"interrupted ({cancel_reason or 'Ctrl-C'}) while the agent ran; "
                       "agent and its processes ended", kind=Kind.INTERRUPTED, **cut)
    if result.timed_out:
        return Verdict(Outcome.FAILED, f"timeout: no verdict after {human_seconds(settings.timeout)}, "
                       "agent and its processes ended", kind=Kind.TIMEOUT, **cut)
    if result.idle_timed_out:
        return Verdict(Outcome.FAILED, f"idle timeout: no output for {human_seconds(opt.idle_timeout)}, "
                       "agent and its processes ended", kind=Kind.IDLE_TIMEOUT, **cut)
    if result.error and not verdict.passed:
        return Verdict(Outcome.FAILED, result.error, kind=Kind.KILLED, **cut)
    if verdict.outcome is Outcome.RATE_LIMITED and verdict.billing:
        # A quota or billing error: waiting for a reset will not fix it.
        return dataclasses.replace(verdict, outcome=Outcome.FAILED, kind=Kind.QUOTA,
                                   reason=verdict.reason or "quota or billing error")
    return verdict


# -- executors: pty or tmux -------------------------------------------------------------------------


class PtyExecutor:
    """Agents in seqrun's pty; what a person sees is the console's ``-s``."""

    def run(self, task: Task, invocation: Any, *, view: AgentView, header: Header, **kwargs: Any) -> Any:
        from seqrun.terminal import run_in_pty

        try:
            return run_in_pty(invocation, on_line=view.on_line, echo=view if view.showing else None, **kwargs)
        finally:
            view.finish()

    def conclude(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


class TmuxExecutor:
    """Agents in seqrun's pty, each shown in a tmux window that stays open
    (waiting) until :meth:`conclude` gives it the attempt's verdict."""

    def __init__(self, session_name: str, keep_windows: int) -> None:
        from seqrun.terminal import TmuxSession

        self.tmux = TmuxSession(session_name, keep_windows=keep_windows)
        self.window: Any = None
        """The last attempt's window, until its verdict is in."""

    @property
    def name(self) -> str:
        return self.tmux.name

    def run(self, task: Task, invocation: Any, *, view: AgentView, header: Header, **kwargs: Any) -> Any:
        # The attempt number tells attempts (and so runs) of a task apart.
        name = f"task-{task.id}" if header.attempt <= 1 else f"task-{task.id}#{header.attempt}"
        window = self.window = self.tmux.open(name, invocation)
        window.write(header.text().encode("utf-8", "replace"))
        view.add_screen(window)
        try:
            return window.run(on_line=view.on_line, echo=view, **kwargs)
        finally:
            view.finish()
            if window.ended is not None:
                window.write(f"{window.ended}\n".encode("utf-8", "replace"))

    def conclude(self, line: str) -> None:
        window, self.window = self.window, None
        if window is not None:
            window.close(line)

    def close(self) -> None:
        self.conclude("[seqrun] stopped")
        self.tmux.close()  # the last marks and prunes; every window's viewer has its last line


def tmux_session_name(session: Session, task: Task) -> str:
    from seqrun.terminal import sanitize_name

    explicit = session.config.option.tmux_session
    if explicit:
        return sanitize_name(explicit)
    wanted = f"sequential-{task.spec.name if task.spec else 'seqrun'}"
    name = sanitize_name(wanted)
    if name == wanted and not looks_digested(wanted):
        return name  # ``sequential-my-feature``, as the seed script named it
    # Sanitising changed it: a hash of the spec's name keeps two specs (``feat x``
    # and ``feat_x``, ``backend/phase_1.md`` and ``backend_phase_1.md``) apart.
    digest = name_digest(wanted)
    return f"{sanitize_name(wanted, limit=63 - len(digest)).rstrip('_-')}-{digest}"


def make_executor(session: Session, task: Task) -> PtyExecutor | TmuxExecutor:
    if use_tmux(session.config):
        executor = TmuxExecutor(tmux_session_name(session, task), session.config.option.keep_windows)
        session.config.stash[tmux_session_key] = executor.name
        return executor
    return PtyExecutor()


# -- signals --------------------------------------------------------------------------------


class _signals_cancel:
    """While tasks run, the first Ctrl-C/SIGTERM/SIGHUP cancels the running
    agent (its whole process tree is ended, the attempt recorded as
    interrupted) and stops the run; a second one raises at once, still
    cleaning up."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _signals_cancel:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.SIGNALS:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.state.cancel.is_set():
            raise KeyboardInterrupt(f"{name} again")
        self.state.cancel_reason = name
        self.state.cancel.set()
        if not self.state.agent_running:
            raise KeyboardInterrupt(name)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)
