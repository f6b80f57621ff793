"""The per-task protocol, in the shape of pytest's ``runner.py``.

``seqrun_runtestloop`` plans dispatch units — a leaf task (``--dispatch
leaf``, the default) or a parent task with its remaining required subtasks
(``--dispatch unit``, the seed's way) — and runs each through
:func:`runtestprotocol`:

- **setup**: ``seqrun_runtest_setup`` for the unit's task, then for each
  subtask (``Skipped`` skips a task; any other exception is an ERROR report);
- **call**: ``seqrun_runtest_call``, whose built-in implementation here runs
  the agent once and returns the :class:`~seqrun.outcome.Attempt`; retries
  are the wrappers of :mod:`seqrun.reruns`, :mod:`seqrun.ratelimit` and
  :mod:`seqrun.throttle` (``--delay``, ``--max-iterations``);
- **per task**: ``seqrun_runtest_makereport`` → ``seqrun_runtest_teardown``
  → ``seqrun_runtest_logreport``.

Each phase runs inside one :class:`~seqrun.protocol.CallInfo` boundary. Only Ctrl-C/signals
and usage errors cross it: a plugin that raises in setup or teardown makes
that one task an ERROR and the night goes on. The session, not this module,
counts failures and applies ``-x``/``--maxfail`` and halting.

Each attempt is shown (:mod:`seqrun.terminal.view`) in its tmux window (or
with ``-s``): a header, the agent's stream rendered by its backend, and the
attempt's verdict, sent once verification has decided it; a window whose
verdict cannot come says why.

An interruption (Ctrl-C, SIGTERM, SIGHUP) during an agent run records that
attempt ``interrupted`` and reports its tasks INTERRUPTED (not failed: they
run again next time); during a ``--delay`` or a rate-limit wait it reports
nothing against any task.

This module is the plugin: its options, its hook implementations, the
exceptions and stash keys other plugins use. The machinery those hooks run
(:class:`~seqrun.protocol.CallInfo`, the run's state, the executors, the
signal handling) is :mod:`seqrun.protocol`, imported when the first task
runs: ``seqrun --co`` never loads it. Its names stay importable from here.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
from typing import TYPE_CHECKING, Any, Iterator

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.nodes import Task, TaskState, Unit
from seqrun.outcome import Kind, Skipped
from seqrun.paths import workdir
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport, Verdict
    from seqrun.main import Session
    from seqrun.protocol import AttemptSettings, CallInfo, RunState

DEFAULT_TIMEOUT = 7200.0


class StopRun(Exception):
    """Raised inside the call phase by a policy that ends the whole run."""


class BudgetExhausted(StopRun):
    """``--max-iterations`` dispatches were made; the rest is not run."""


class RateLimitTooLong(StopRun):
    """The reset is further away than ``--max-rate-limit-wait``: halt."""


class AttemptInterrupted(KeyboardInterrupt):
    """An agent run was cancelled by Ctrl-C or a signal; its attempt is recorded."""


# Keys are annotated, not subscripted (``StashKey[T]()``): the same key at
# run time, without building a typing alias at every start. RunState itself
# (seqrun.protocol) loads with the first run.
runstate_key: StashKey[RunState] = StashKey()
tmux_session_key: StashKey[str] = StashKey()
done_before_key: StashKey[set[str]] = StashKey()
"""Node ids of tasks an earlier run completed (the state plugin fills it from
the state file; setup skips them)."""


def runstate(config: Config) -> RunState:
    state = config.stash.get(runstate_key, None)
    if state is None:
        from seqrun.protocol import RunState

        state = config.stash.setdefault(runstate_key, RunState())
    return state


# -- options ----------------------------------------------------------------------


def _env_timeout() -> float:
    raw = os.environ.get("CODEX_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    from seqrun.config import MAX_SECONDS

    try:
        value = int(raw) / 1000.0  # the seed's variable is in milliseconds
    except (ValueError, OverflowError):
        value = math.nan
    if not 0 <= value <= MAX_SECONDS:
        raise UsageError(f"CODEX_TIMEOUT must be milliseconds from 0 to {MAX_SECONDS * 1000:.0f} "
                         f"(a year), got {raw!r}")
    return value


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser) -> None:
    from seqrun.config import seconds

    group = parser.getgroup("running", order=10, common=True)  # type: ignore[attr-defined]
    group.add_argument("--dispatch", choices=("leaf", "unit"), default="leaf",
                       help="leaf: one agent run per leaf task (default); unit: one run per "
                       "parent task covering its remaining required subtasks (the seed's way)")
    group.add_argument("--include-optional", action="store_true",
                       help="also run optional tasks (- [ ]*)")
    group.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                       help="end an agent run (and every process it started) after this long "
                       "(default 7200, or CODEX_TIMEOUT in milliseconds)")
    group.add_argument("--idle-timeout", type=seconds, default=0.0, metavar="SECONDS",
                       help="end an agent that prints nothing for this long (0: never)")
    group.add_argument("--workdir", default=None, metavar="DIR",
                       help="the agent's working directory (default: the project root, the folder "
                       "holding .kiro/specs)")
    group.add_argument("-s", "--capture=no", dest="echo_output", action="store_true",
                       help="show the agent's output live on the console (-v does too)")
    group.add_argument("--kill-grace", type=seconds, default=5.0, metavar="SECONDS",
                       help="after SIGTERM, wait this long before SIGKILL")
    tm = parser.add_argument_group("tmux")
    tm.add_argument("--no-tmux", action="store_true",
                    help="run agents in a pty only, without tmux windows (also CODEAGENT_NO_TMUX=1)")
    tm.add_argument("--tmux-session", default=None, metavar="NAME",
                    help="tmux session to create windows in (default sequential-<spec>)")
    tm.add_argument("--keep-windows", type=int, default=20, metavar="N",
                    help="finished task windows kept for inspection (default 20)")
    tm.add_argument("--window-output", choices=("rendered", "raw"), default="rendered",
                    help="what task windows and -s show of the agent's output: rendered (its text, a "
                    "line per tool call, errors; the default) or raw (the CLI's own stream, as in the log)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    if getattr(opt, "verbose", 0) > 0:
        opt.echo_output = True  # -v, like -s, streams the agent's output to the console
    if opt.timeout is None:
        opt.timeout = _env_timeout()


@hookimpl(trylast=True)
def seqrun_attempt_settings(session: Session) -> AttemptSettings:
    from seqrun.protocol import AttemptSettings

    opt = session.config.option
    return AttemptSettings(timeout=opt.timeout, model=opt.model or None, reruns=getattr(opt, "reruns", 0))


@hookimpl
def seqrun_preflight(session: Session) -> None:
    chosen = session.config.option.workdir
    if chosen and not workdir(session.config).is_dir():
        what = "does not exist" if not os.path.exists(chosen) else "is not a directory"
        raise UsageError(f"--workdir {chosen}: {what}")


def use_tmux(config: Config) -> bool:
    if config.option.no_tmux or os.environ.get("CODEAGENT_NO_TMUX") == "1":
        return False
    from seqrun.terminal import tmux_available

    return tmux_available()


# -- the loop ------------------------------------------------------------------------------


@hookimpl(trylast=True)
def seqrun_runtestloop(session: Session) -> bool:
    from seqrun.protocol import runtestloop

    return runtestloop(session)


@hookimpl(trylast=True)
def seqrun_runtest_protocol(item: Unit, session: Session) -> bool:
    from seqrun.protocol import runtestprotocol

    runtestprotocol(item, session)
    return True


@hookimpl(trylast=True)
def seqrun_runtest_makereport(item: Task, unit: Unit, call: CallInfo[Any],
                              report: TaskReport | None) -> TaskReport:
    from seqrun.protocol import makereport

    return makereport(item, unit, call, report)


# -- setup: what is skipped --------------------------------------------------------------


@hookimpl
def seqrun_runtest_setup(item: Task, unit: Unit, session: Session) -> None:
    opt = session.config.option
    if item.state is TaskState.DONE and item.is_leaf:
        raise Skipped("already done ([x] in tasks.md)", Kind.ALREADY_DONE)
    if item.is_leaf and item.nodeid in session.config.stash.get(done_before_key, set()):
        raise Skipped("already done in an earlier run (SEQUENTIAL_STATE.json)", Kind.ALREADY_DONE)
    if item.optional and not opt.include_optional:
        raise Skipped("optional task (use --include-optional to run it)", Kind.OPTIONAL)
    from seqrun.protocol import check_dependencies

    check_dependencies(item, session)


# -- call: one agent run ---------------------------------------------------------------


@contextlib.contextmanager
def retry_policy(unit: Unit, key: StashKey[bool]) -> Iterator[bool]:
    """For a retry wrapper of ``seqrun_runtest_call``: yields True when this
    call is the policy's own (it decides about retries), False when it is a
    re-entry for an attempt the policy asked for (pass it straight through)::

        with retry_policy(unit, my_key) as in_charge:
            attempt = yield
            while in_charge and should_retry(attempt):
                attempt = call_again(unit, session)
            return attempt
    """
    if unit.stash.get(key, False):
        yield False
        return
    unit.stash[key] = True
    try:
        yield True
    finally:
        unit.stash[key] = False


def call_again(unit: Unit, session: Session) -> Attempt:
    """The next attempt, through the whole ``seqrun_runtest_call`` chain: what
    a retry wrapper calls after ``attempt = yield``."""
    attempt: Attempt = session.config.hook.seqrun_runtest_call(item=unit.task, unit=unit, session=session)
    return attempt


@hookimpl(trylast=True)
def seqrun_runtest_call(item: Task, unit: Unit, session: Session) -> Attempt:
    from seqrun.protocol import run_attempt

    return run_attempt(item, unit, session)


@hookimpl(trylast=True)
def seqrun_decide_verdict(verdict: Verdict) -> Verdict:
    return verdict


@hookimpl(trylast=True)
def seqrun_verify_task(verdict: Verdict) -> Verdict:
    return verdict


# -- waiting and signals --------------------------------------------------------------------------------


def sleep_unless_cancelled(config: Config, seconds: float) -> None:
    """Sleep, but wake at once when the run is cancelled (Ctrl-C, SIGTERM)."""
    if runstate(config).cancel.wait(seconds):
        raise KeyboardInterrupt("interrupted while waiting")


#: The machinery's names, importable from here as before (see the module docstring).
_PROTOCOL = frozenset({"CallInfo", "RunState", "AttemptSettings", "plan_units", "runtestprotocol",
                       "PtyExecutor", "TmuxExecutor", "tmux_session_name", "make_executor"})


__getattr__ = moved_names(__name__, "seqrun.protocol", _PROTOCOL)
