"""The run loop and the per-task protocol: setup → call → verdict → teardown → report.

One dispatch unit at a time: a leaf task (``--dispatch leaf``, the default) or
a parent task with its remaining required subtasks (``--dispatch unit``, the
seed's behaviour). ``seqrun_runtest_call`` runs the agent, retries after a
rate limit (not counted as a rerun, nor against ``--max-iterations``) and
reruns a failed task up to ``--reruns`` times.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, TaskState
from seqrun.outcome import Outcome, Skipped, TaskReport, Usage, Verdict
from seqrun.text import human_seconds

if TYPE_CHECKING:
    from seqrun.main import Session

DEFAULT_TIMEOUT = 7200.0


class BudgetExhausted(Exception):
    """``--max-iterations`` dispatches were made; the rest is not run."""


class RateLimitTooLong(Exception):
    """The reset is further away than ``--max-rate-limit-wait``: halt."""


@dataclass
class Unit:
    """What one agent run covers: ``task`` itself, or its ``subtasks``."""

    task: Task
    subtasks: list[Task]

    @property
    def members(self) -> list[Task]:
        return self.subtasks or [self.task]


@dataclass
class RunState:
    """Per-session bookkeeping of the runner (kept on ``config.stash``)."""

    dispatches: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # id(task) -> outcome
    cancel: threading.Event = field(default_factory=threading.Event)
    current: Task | None = None
    last_dispatch_end: float | None = None
    attempts: dict[int, int] = field(default_factory=dict)
    agent_seconds: dict[int, float] = field(default_factory=dict)
    """Time the agent ran for a task, over all its attempts (no delays, no waits)."""
    rate_limit_waits: dict[int, tuple[int, float]] = field(default_factory=dict)
    logs: dict[int, str] = field(default_factory=dict)
    executor: Any = None
    cancel_reason: str = ""
    current_unit: Unit | None = None
    id_index: dict[int, dict[str, Task]] = field(default_factory=dict)


def runstate(config: Config) -> RunState:
    return config.stash.setdefault("runner", RunState())


# -- options ----------------------------------------------------------------------


def _env_timeout() -> float:
    raw = os.environ.get("CODEX_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        return int(raw) / 1000.0  # the seed's variable is in milliseconds
    except ValueError:
        raise UsageError(f"CODEX_TIMEOUT must be milliseconds, got {raw!r}") from None


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--dispatch", choices=("leaf", "unit"), default="leaf",
                       help="leaf: one agent run per leaf task (default); unit: one run per "
                       "parent task covering its remaining required subtasks (the seed's way)")
    group.add_argument("--include-optional", action="store_true",
                       help="also run optional tasks (- [ ]*)")
    group.add_argument("--delay", type=float, default=5.0, metavar="SECONDS",
                       help="seconds between two dispatches (default 5)")
    group.add_argument("--max-iterations", type=int, default=50, metavar="N",
                       help="most agent dispatches in this run; rate-limited attempts are not "
                       "counted (default 50, 0: no limit)")
    group.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="end an agent run (and every process it started) after this long "
                       "(default 7200, or CODEX_TIMEOUT in milliseconds)")
    group.add_argument("--idle-timeout", type=float, default=0.0, metavar="SECONDS",
                       help="end an agent that prints nothing for this long (0: never)")
    group.add_argument("--reruns", type=int, default=1, metavar="N",
                       help="run a failed task again up to N times (default 1)")
    group.add_argument("--workdir", default=None, metavar="DIR",
                       help="the agent's working directory (default: where seqrun was started)")
    group.add_argument("-s", "--capture=no", dest="echo_output", action="store_true",
                       help="show the agent's output live on the console (-v does too)")
    group.add_argument("--kill-grace", type=float, default=5.0, metavar="SECONDS",
                       help="after SIGTERM, wait this long before SIGKILL")
    rl = parser.add_argument_group("rate limits")
    rl.add_argument("--rate-limit-margin", type=float, default=30.0, metavar="SECONDS",
                    help="seconds added to the reset time the CLI reports (default 30)")
    rl.add_argument("--rate-limit-backoff", type=float, default=60.0, metavar="SECONDS",
                    help="first wait when the CLI gives no reset time; doubles each time (default 60)")
    rl.add_argument("--max-rate-limit-wait", type=float, default=6 * 3600.0, metavar="SECONDS",
                    help="halt instead of waiting longer than this (default 21600 = 6 h)")
    tm = parser.add_argument_group("tmux")
    tm.add_argument("--no-tmux", action="store_true",
                    help="run agents in a pty only, without tmux windows (also CODEAGENT_NO_TMUX=1)")
    tm.add_argument("--tmux-session", default=None, metavar="NAME",
                    help="tmux session to create windows in (default sequential-<spec>)")
    tm.add_argument("--keep-windows", type=int, default=20, metavar="N",
                    help="finished task windows kept for inspection (default 20)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    if getattr(opt, "verbose", 0) > 0:
        opt.echo_output = True  # -v, like -s, streams the agent's output to the console
    if opt.timeout is None:
        opt.timeout = _env_timeout()
    for name in ("delay", "timeout", "idle_timeout", "rate_limit_margin", "rate_limit_backoff",
                 "max_rate_limit_wait", "kill_grace"):
        value = getattr(opt, name)
        if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
            raise UsageError(f"--{name.replace('_', '-')} must be a number >= 0, got {value!r}")
    for name in ("max_iterations", "reruns", "maxfail"):
        value = getattr(opt, name, 0)
        if not isinstance(value, int) or value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a whole number >= 0, got {value!r}")


def use_tmux(config: Config) -> bool:
    if config.option.no_tmux or os.environ.get("CODEAGENT_NO_TMUX") == "1":
        return False
    from seqrun.terminal import tmux_available

    return tmux_available()


# -- the loop ------------------------------------------------------------------------------


def plan_units(items: list[Task], dispatch: str) -> list[Unit]:
    """Group the selected leaves into dispatch units, in file order."""
    if dispatch == "leaf":
        return [Unit(item, []) for item in items]
    units: list[Unit] = []
    by_root: dict[int, Unit] = {}
    for item in items:
        root = item
        for ancestor in item.ancestors():
            root = ancestor
        if root is item:
            units.append(Unit(item, []))
            continue
        unit = by_root.get(id(root))
        if unit is None:
            unit = by_root[id(root)] = Unit(root, [])
            units.append(unit)
        unit.subtasks.append(item)
    return units


@hookimpl(trylast=True)
def seqrun_runtestloop(session: Session) -> bool:
    config = session.config
    state = runstate(config)
    units = plan_units(session.items, config.option.dispatch)
    try:
        with _signals_cancel(state):
            for index, unit in enumerate(units):
                if session.shouldstop:
                    _report_not_run(session, units[index:], session.shouldstop)
                    break
                config.hook.seqrun_runtest_protocol(item=unit, session=session)
    finally:
        if state.executor is not None:
            state.executor.close()
    return True


def _report_not_run(session: Session, units: list[Unit], why: str) -> None:
    for unit in units:
        for member in unit.members:
            _log_report(session, member, Outcome.SKIPPED, f"not reached: {why}")


@hookimpl(trylast=True)
def seqrun_runtest_protocol(item: Unit, session: Session) -> bool:
    config = session.config
    hook = config.hook
    state = runstate(config)
    task = item.task
    hook.seqrun_runtest_logstart(nodeid=task.nodeid, item=task)
    try:
        hook.seqrun_runtest_setup(item=task, session=session)
    except Skipped as skip:
        for member in item.members:
            _log_report(session, member, Outcome.SKIPPED, skip.reason)
        return True
    if item.subtasks:
        # A unit covers its *remaining required* subtasks; the others are
        # reported skipped on their own, as --dispatch leaf would.
        remaining = []
        for member in item.subtasks:
            try:
                hook.seqrun_runtest_setup(item=member, session=session)
                remaining.append(member)
            except Skipped as skip:
                _log_report(session, member, Outcome.SKIPPED, skip.reason)
        if not remaining:
            return True
        item = Unit(task, remaining)
    state.current_unit = item
    state.current = task
    try:
        verdict: Verdict = hook.seqrun_runtest_call(item=task, session=session)
    except BudgetExhausted:
        session.budget_exhausted = True
        session.shouldstop = f"--max-iterations {config.option.max_iterations} reached"
        _report_not_run(session, [item], session.shouldstop)
        return True
    except RateLimitTooLong as exc:
        session.halted = True
        session.shouldstop = str(exc)
        verdict = Verdict(Outcome.HALTED, str(exc))
    except KeyboardInterrupt as exc:
        verdict = Verdict(Outcome.FAILED, f"interrupted ({exc or 'Ctrl-C'})")
        for member in item.members:
            _finish(session, member, verdict, state.agent_seconds.get(id(task), 0.0))
        raise
    finally:
        state.current = None
    verdict = hook.seqrun_decide_verdict(item=task, verdict=verdict, session=session) or verdict
    if verdict.passed:
        verdict = hook.seqrun_verify_task(item=task, verdict=verdict, session=session) or verdict
    for member in item.members:
        _finish(session, member, verdict, state.agent_seconds.get(id(task), 0.0))
    if verdict.outcome is Outcome.HALTED:
        session.halted = True
        session.shouldstop = session.shouldstop or f"halted by task {task.id}: {verdict.reason}"
    elif verdict.outcome is Outcome.FAILED:
        maxfail = config.option.maxfail
        if maxfail and session.testsfailed >= maxfail:
            session.shouldstop = f"stopping after {session.testsfailed} failure(s)"
    return True


def _finish(session: Session, task: Task, verdict: Verdict, duration: float) -> None:
    """Teardown and report one task with the unit's verdict."""
    config = session.config
    report = _make_report(session, task, verdict.outcome, verdict.reason, duration)
    report.usage = verdict.usage
    report.final_message = verdict.final_message
    config.hook.seqrun_runtest_teardown(item=task, session=session, report=report)
    _emit(session, task, report)


def _log_report(session: Session, task: Task, outcome: Outcome, reason: str) -> None:
    _emit(session, task, _make_report(session, task, outcome, reason, 0.0))


def _make_report(session: Session, task: Task, outcome: Outcome, reason: str, duration: float) -> TaskReport:
    state = runstate(session.config)
    dispatched = task if id(task) in state.attempts else _dispatch_root(task, state)
    waits, waited = state.rate_limit_waits.get(id(dispatched), (0, 0.0))
    return TaskReport(
        nodeid=task.nodeid,
        task_id=task.id,
        title=task.title,
        outcome=outcome,
        reason=reason,
        duration=duration,
        attempts=state.attempts.get(id(dispatched), 0),
        rate_limit_waits=waits,
        rate_limit_wait_seconds=waited,
        backend=session.config.stash.get("backend_used", {}).get(id(dispatched)),
        model=session.config.option.model or None,
        log_path=state.logs.get(id(dispatched)),
    )


def _dispatch_root(task: Task, state: RunState) -> Task:
    for ancestor in task.ancestors():
        if id(ancestor) in state.attempts:
            return ancestor
    return task


def _emit(session: Session, task: Task, report: TaskReport) -> None:
    state = runstate(session.config)
    state.outcomes[id(task)] = report.outcome
    if report.outcome is Outcome.FAILED:
        session.testsfailed += 1
    session.config.hook.seqrun_runtest_logreport(report=report)


# -- setup: what is skipped --------------------------------------------------------------


@hookimpl
def seqrun_runtest_setup(item: Task, session: Session) -> None:
    opt = session.config.option
    if item.state is TaskState.DONE and item.is_leaf:
        raise Skipped("already done ([x] in tasks.md)")
    if item.optional and not opt.include_optional:
        raise Skipped("optional task (use --include-optional to run it)")
    _check_dependencies(item, session)


def _check_dependencies(item: Task, session: Session) -> None:
    if item.spec is None:
        return
    state = runstate(session.config)
    by_written = state.id_index.get(id(item.spec))
    if by_written is None:
        # Built once per spec: a lookup per task must not cost O(tasks).
        by_written = {}
        for task in item.spec.iter_tasks():
            by_written.setdefault(task.id, task)
            if task.written_id is not None:
                by_written.setdefault(task.written_id, task)
        state.id_index[id(item.spec)] = by_written
    for task in (item, *item.ancestors()):
        for dep_id in task.depends:
            dep = by_written.get(dep_id)
            if dep is None:
                continue  # a reference to nothing in this spec (another spec, a phase)
            for leaf in [t for t in dep.iter_tree() if t.is_leaf] or [dep]:
                if leaf.state is TaskState.DONE or (leaf.optional and leaf is not dep):
                    continue
                outcome = state.outcomes.get(id(leaf))
                if outcome is Outcome.PASSED:
                    continue
                if session.config.stash.get("done_before", {}).get(leaf.nodeid):
                    continue
                how = "failed" if outcome is Outcome.FAILED else "was not done" if outcome is None else outcome.value
                raise Skipped(f"dependency {dep_id} {how}")


# -- call: dispatch the agent ---------------------------------------------------------------


@hookimpl(trylast=True)
def seqrun_runtest_call(item: Task, session: Session) -> Verdict:
    return Dispatcher(session, item).run()


class Dispatcher:
    """Runs the agent for one unit until a verdict: reruns and rate-limit waits."""

    def __init__(self, session: Session, task: Task) -> None:
        self.session = session
        self.config = session.config
        self.opt = session.config.option
        self.task = task
        self.state = runstate(self.config)

    def run(self) -> Verdict:
        reruns_left = self.opt.reruns
        backoff = self.opt.rate_limit_backoff
        attempt = 0
        usage: Usage | None = None
        while True:
            if self.opt.max_iterations and self.state.dispatches >= self.opt.max_iterations:
                raise BudgetExhausted()
            self._throttle()
            attempt += 1
            self.state.attempts[id(self.task)] = attempt
            self.state.dispatches += 1
            verdict = self._dispatch(attempt)
            if verdict.outcome is Outcome.RATE_LIMITED and not verdict.billing:
                self.state.dispatches -= 1  # a limit is not the agent's try
                backoff = self._wait_for_reset(verdict, backoff)
                continue
            if verdict.outcome is Outcome.RATE_LIMITED:
                verdict = Verdict(Outcome.FAILED, verdict.reason or "quota or billing error",
                                  verdict.final_message, usage=verdict.usage, billing=True)
            usage = verdict.usage if usage is None else (usage + verdict.usage if verdict.usage else usage)
            if (verdict.outcome is Outcome.FAILED and reruns_left > 0 and not verdict.billing
                    and not self.session.shouldstop):
                reruns_left -= 1
                continue
            # The task's usage is every attempt's, not only the last one's.
            return dataclasses.replace(verdict, usage=usage)

    def _throttle(self) -> None:
        last = self.state.last_dispatch_end
        if last is None or not self.opt.delay:
            return
        remaining = self.opt.delay - (time.monotonic() - last)
        if remaining > 0:
            self.config.hook.seqrun_wait(seconds=remaining, reason="delay between dispatches")
            _sleep(remaining, self.state.cancel)

    def _wait_for_reset(self, verdict: Verdict, backoff: float) -> float:
        if verdict.reset_at is not None:
            seconds = max(0.0, verdict.reset_at - time.time()) + self.opt.rate_limit_margin
            next_backoff = self.opt.rate_limit_backoff
        else:
            seconds = backoff
            next_backoff = backoff * 2
        if seconds > self.opt.max_rate_limit_wait:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() + seconds))
            raise RateLimitTooLong(
                f"rate limited ({verdict.reason or 'no reason given'}); the limit resets in "
                f"{human_seconds(seconds)}, beyond --max-rate-limit-wait: rerun the same command after {when}")
        count, total = self.state.rate_limit_waits.get(id(self.task), (0, 0.0))
        self.state.rate_limit_waits[id(self.task)] = (count + 1, total + seconds)
        self.config.hook.seqrun_rate_limit_wait(item=self.task, seconds=seconds,
                                                reset_at=verdict.reset_at, reason=verdict.reason)
        self.config.hook.seqrun_wait(seconds=seconds, reason=f"rate limited: {verdict.reason}")
        _sleep(seconds, self.state.cancel)
        return next_backoff

    def _dispatch(self, attempt: int) -> Verdict:
        from seqrun.backends.base import AgentCall  # with its parsers' imports: not for --co
        from seqrun.backends.registry import backend_for

        backend = backend_for(self.session, self.task)
        self.config.stash.setdefault("backend_used", {})[id(self.task)] = backend.name
        unit = self.state.current_unit
        subtasks = unit.subtasks if unit is not None and unit.task is self.task else []
        prompt = self.config.hook.seqrun_build_prompt(task=self.task, subtasks=subtasks, session=self.session)
        paths = run_paths(self.task, attempt)
        paths.prompt.parent.mkdir(parents=True, exist_ok=True)
        paths.prompt.write_text(prompt, encoding="utf-8")
        call = AgentCall(
            prompt=prompt, prompt_file=paths.prompt.resolve(), workdir=workdir(self.config),
            task_id=self.task.id, model=self.opt.model or None,
            options=self.config.section("backends").get(backend.name, {}),
        )
        invocation = (self.config.hook.seqrun_backend_invocation(backend=backend, call=call)
                      or backend.invocation(call))
        self.state.logs[id(self.task)] = str(paths.log)
        if self.state.executor is None:  # before the attempt hook: reporters show the tmux session
            self.state.executor = make_executor(self.session, self.task)
        self.config.hook.seqrun_runtest_attempt(item=self.task, attempt=attempt, log_path=paths.log,
                                                backend=backend.name)
        parser = backend.parser()
        try:
            result = self._execute(invocation, paths.log, parser.feed_line)
        finally:
            self.state.last_dispatch_end = time.monotonic()
        key = id(self.task)
        self.state.agent_seconds[key] = self.state.agent_seconds.get(key, 0.0) + result.duration
        if result.interrupted:
            raise KeyboardInterrupt(self.state.cancel_reason)
        verdict = parser.finish(result.exit_status)
        if result.timed_out:
            return Verdict(Outcome.FAILED, f"timeout: no verdict after {human_seconds(self.opt.timeout)}, "
                           "agent and its processes ended", verdict.final_message, usage=verdict.usage)
        if result.idle_timed_out:
            return Verdict(Outcome.FAILED, f"idle timeout: no output for {human_seconds(self.opt.idle_timeout)}, "
                           "agent and its processes ended", verdict.final_message, usage=verdict.usage)
        return verdict

    def _execute(self, invocation: Any, log_path: Path, on_line: Callable[[str], None]) -> Any:
        echo = sys.stdout.buffer if self.opt.echo_output else None
        kwargs = dict(log_path=log_path, on_line=on_line, echo=echo,
                      timeout=self.opt.timeout or None, idle_timeout=self.opt.idle_timeout or None,
                      cancel=self.state.cancel, grace=self.opt.kill_grace)
        if self.state.executor is None:
            self.state.executor = make_executor(self.session, self.task)
        return self.state.executor.run(self.task, invocation, **kwargs)


# -- executors: pty or tmux -------------------------------------------------------------------------


class PtyExecutor:
    def run(self, task: Task, invocation: Any, **kwargs: Any) -> Any:
        from seqrun.terminal import run_in_pty

        return run_in_pty(invocation, **kwargs)

    def close(self) -> None:
        pass


class TmuxExecutor:
    def __init__(self, session_name: str, keep_windows: int) -> None:
        from seqrun.terminal import TmuxSession

        self.tmux = TmuxSession(session_name, keep_windows=keep_windows)

    @property
    def name(self) -> str:
        return self.tmux.name

    def run(self, task: Task, invocation: Any, **kwargs: Any) -> Any:
        return self.tmux.run(f"task-{task.id}", invocation, **kwargs)

    def close(self) -> None:
        pass


def tmux_session_name(session: Session, task: Task) -> str:
    from seqrun.terminal import sanitize_name

    explicit = session.config.option.tmux_session
    if explicit:
        return sanitize_name(explicit)
    spec_name = task.spec.name if task.spec else "seqrun"
    return sanitize_name(f"sequential-{spec_name}")


def make_executor(session: Session, task: Task) -> PtyExecutor | TmuxExecutor:
    if use_tmux(session.config):
        executor = TmuxExecutor(tmux_session_name(session, task), session.config.option.keep_windows)
        session.config.stash["tmux_session"] = executor.name
        return executor
    return PtyExecutor()


# -- paths ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPaths:
    log: Path
    prompt: Path


def seqrun_dir(task_or_specs_root: Task | Path) -> Path:
    """``<specs root>/.seqrun``: logs, prompts and the cache live here."""
    if isinstance(task_or_specs_root, Task):
        assert task_or_specs_root.spec is not None
        root = task_or_specs_root.spec.folder.parent
    else:
        root = task_or_specs_root
    folder = root / ".seqrun"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("# written by seqrun: logs, prompts, cache\n*\n")
    return folder


def run_paths(task: Task, attempt: int) -> RunPaths:
    assert task.spec is not None
    safe_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in task.id)
    base = seqrun_dir(task) / "logs" / _safe_name(task.spec.name)
    return RunPaths(base / f"{safe_id}.{attempt}.log", base / f"{safe_id}.{attempt}.prompt.md")


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip(".")
    return cleaned[:100] or "spec"


def workdir(config: Config) -> Path:
    """The agent's working directory (resolved once per run)."""
    cached = config.stash.get("workdir")
    if cached is None:
        chosen = config.option.workdir
        cached = config.stash["workdir"] = (Path(chosen) if chosen else config.invocation_dir).resolve()
    return cached


# -- waiting and signals --------------------------------------------------------------------------------


def _sleep(seconds: float, cancel: threading.Event) -> None:
    """Sleep, but wake at once when the run is cancelled (Ctrl-C, SIGTERM)."""
    if cancel.wait(seconds):
        raise KeyboardInterrupt("interrupted while waiting")


class _signals_cancel:
    """While tasks run, the first Ctrl-C/SIGTERM/SIGHUP cancels the running
    agent (its whole process tree is ended, the task recorded as interrupted)
    and stops the run; a second one raises at once, still cleaning up."""

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
        if self.state.current is None:
            raise KeyboardInterrupt(name)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)

