"""Every extension point of seqrun, in one place.

seqrun is a set of plugins on these hooks, the way pytest is: collection
(:mod:`seqrun.kiro`), selection (:mod:`seqrun.select`), the run protocol
(:mod:`seqrun.runner`), the backends (:mod:`seqrun.backends`), and every
reporter (:mod:`seqrun.reports`). A ``conftest.py`` next to the specs, a module
named with ``-p NAME``, or a package registered under the ``seqrun`` entry-point
group implements any of them with :data:`hookimpl`.

Hooks marked *firstresult* stop at the first implementation that returns
something other than None.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from seqrun.backends.base import AgentCall, Backend, Invocation
    from seqrun.config import Config
    from seqrun.main import Session
    from seqrun.nodes import Spec, Task, Unit
    from seqrun.outcome import Attempt, PreviousAttempt, TaskReport, Verdict
    from seqrun.runner import AttemptSettings, CallInfo
    from seqrun.terminal.proctree import TreeRecord

hookspec = pluggy.HookspecMarker("seqrun")
hookimpl = pluggy.HookimplMarker("seqrun")


# -- configuration -----------------------------------------------------------


@hookspec(historic=True)
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    """Add command-line options: ``parser.getgroup(name)`` (or argparse's
    ``parser.add_argument_group(name)``) returns the group of that name, made
    on first use, so plugins adding to ``running`` share one heading. Where a
    group is made it may declare its place in ``--help``:
    ``parser.getgroup("mine", order=60, common=False)`` — lower ``order``
    first (general 0, running 10, agent 20, reporting 30, help 90; none: 50),
    and ``common`` groups are described by ``--help``, the others only named
    there and described by ``--help-all``.

    Options also read from ``[tool.seqrun]`` in pyproject.toml or seqrun.toml:
    an option's ``dest`` is its key there. Called for plugins registered later
    too (historic), so conftest.py files can add options.
    """


@hookspec(historic=True)
def seqrun_configure(config: Config) -> None:
    """Called once the command line and config files are parsed."""


@hookspec(firstresult=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    """Perform the main command-line action and return the exit code.
    ``--version`` and ``--init`` answer here; the default runs a session."""


@hookspec
def seqrun_unconfigure(config: Config) -> None:
    """Called before the process exits."""


# -- session -------------------------------------------------------------------


@hookspec
def seqrun_sessionstart(session: Session) -> None:
    """Called after the session is created, before collection."""


@hookspec
def seqrun_report_session_header(config: Config) -> str | list[str] | None:
    """Lines for the terminal to print when the session starts, before
    collection (not with ``-q``), as pytest prints its ``rootdir:`` line: the
    main plugin's says which project and specs root it uses
    (``rootdir: /path/to/project, specs: .kiro/specs``) when that is not
    simply ``./.kiro/specs`` (always with ``-v``)."""


@hookspec
def seqrun_sessionfinish(session: Session, exitstatus: int) -> None:
    """Called after the run with the exit status the process will return.
    A plugin that could not do its part (write a report) may set
    ``session.exitstatus`` to a higher code."""


# -- collection ----------------------------------------------------------------


@hookspec(firstresult=True)
def seqrun_collect_file(path: Path, config: Config) -> Spec | None:
    """Read one tasks file into a :class:`~seqrun.nodes.Spec`.

    The built-in :mod:`seqrun.kiro` reads Kiro / spec-kit / numbered task
    lists; implement this (with ``tryfirst=True``) to read another format.
    Raise :class:`~seqrun.config.UsageError` for unusable input.
    """


@hookspec
def seqrun_collection_modifyitems(session: Session, config: Config, items: list[Task]) -> None:
    """Filter or re-order the leaf tasks in place, after collection.

    Built-in implementations apply node ids, ``-k`` and the cache's
    ``--lf``/``--ff``. Report what you remove through ``seqrun_deselected``.
    """


@hookspec
def seqrun_deselected(items: list[Task]) -> None:
    """Tasks removed from the run by selection (``-k``, node ids, ``--lf``)."""


@hookspec
def seqrun_collection_finish(session: Session) -> None:
    """Called once selection is done; ``session.items`` is final."""


@hookspec
def seqrun_preflight(session: Session) -> None:
    """The run is about to start its first agent (not called for
    ``--collect-only`` or when nothing was collected): collection is done,
    the specs are locked and their state files read. Raise
    :class:`~seqrun.config.UsageError` for anything that would make the run
    fail later — a working directory that is not one, a dirty tree for
    ``--git-commit`` — so it is one line and exit 4 before any agent starts
    (``--backend``'s CLI is checked earlier, at configure, so that a missing
    one is said before ``collected N tasks``). ``--detach``
    (:mod:`seqrun.detach`, ``trylast``) leaves the terminal after every
    other implementation has passed."""


@hookspec
def seqrun_detached(session: Session, log_path: Path) -> None:
    """``--detach``: this process is now the background run, forked after
    :func:`seqrun_preflight`. Its pid is new, stdin is /dev/null and stdout
    and stderr go to ``log_path``: refresh what depends on them."""


@hookspec(firstresult=True)
def seqrun_report_collectionfinish(session: Session) -> Any:
    """Used by ``--collect-only`` reporters; return non-None to stop others."""


@hookspec
def seqrun_collect_item_note(item: Task, config: Config) -> str | None:
    """A short note shown after ``item`` in the ``--collect-only`` tree (not
    with ``-q``, whose output is only node ids): every implementation's
    non-empty answer, in hook order. The built-in one (:mod:`seqrun.reports.status`)
    gives the task's last outcome from the state file, ``[failed: no-marker, 2 attempts]``;
    :mod:`seqrun.marks` its declared settings, ``[timeout=30m (from 1)]``."""


# -- running -------------------------------------------------------------------
#
# The per-task protocol, in pytest's shape (``runner.runtestprotocol``):
#
#   seqrun_runtest_protocol(item=unit)
#     seqrun_runtest_logstart
#     setup:    seqrun_runtest_setup            (per task; Skipped skips it)
#     call:     seqrun_runtest_call             (once per attempt, see below)
#                 seqrun_runtest_attempt        (the agent is about to start)
#                 seqrun_runtest_processes      (its processes, while it runs)
#                 seqrun_decide_verdict, seqrun_verify_task
#                 seqrun_runtest_logattempt     (the attempt's record)
#     per task: seqrun_runtest_makereport → seqrun_runtest_teardown →
#               seqrun_runtest_logreport
#
# Each phase runs inside a ``CallInfo`` boundary: an exception a plugin raises
# in setup or teardown makes that task an ERROR report and the run goes on.


@hookspec(firstresult=True)
def seqrun_runtestloop(session: Session) -> bool | None:
    """Run every selected task, one at a time: plan the dispatch units and
    call :func:`seqrun_runtest_protocol` for each until ``session.shouldstop``."""


@hookspec(firstresult=True)
def seqrun_runtest_protocol(item: Unit, session: Session) -> bool | None:
    """Run one dispatch unit through setup → call → teardown and report every
    task it covers. ``item.task`` is a leaf task, or in ``--dispatch unit`` a
    parent task whose ``item.subtasks`` all get the run's outcome."""


@hookspec
def seqrun_runtest_logstart(nodeid: str, item: Task) -> None:
    """A dispatch unit is about to run (``item`` is its task)."""


@hookspec
def seqrun_runtest_setup(item: Task, unit: Unit, session: Session) -> None:
    """Before the agent is dispatched: called for the unit's task, then for
    each of its subtasks. Raise :class:`~seqrun.outcome.Skipped` (with a
    :class:`~seqrun.outcome.Kind`) to skip the task; any other exception makes
    it an ERROR report (``setup-error``) and the run goes on."""


@hookspec(firstresult=True)
def seqrun_runtest_call(item: Task, unit: Unit, session: Session) -> Attempt | None:
    """Run the agent once for ``unit`` and return the :class:`~seqrun.outcome.Attempt`.

    The protocol calls this hook once; a retry policy is a ``wrapper=True``
    implementation that, after ``attempt = yield``, calls the hook again for
    the next attempt (``seqrun.runner.call_again``) — so every wrapper sees
    every attempt, and must pass a re-entered call straight through
    (:mod:`seqrun.reruns`, :mod:`seqrun.ratelimit`, :mod:`seqrun.throttle`).
    ``unit.attempts`` holds every attempt of this session so far.
    """


@hookspec
def seqrun_runtest_attempt(item: Task, unit: Unit, attempt: int, log_path: Path, backend: str,
                           token: str) -> None:
    """One agent process is about to start (rerun and rate-limit retries too).
    ``attempt`` is its number over the task's life; ``unit.attempts`` holds
    this session's earlier ones. ``token`` is the ``SEQRUN_TREE_TOKEN`` every
    process of the agent will inherit (unless it scrubs its environment)."""


@hookspec
def seqrun_runtest_processes(item: Task, unit: Unit, processes: TreeRecord) -> None:
    """The running agent's processes, as a later seqrun can find them again
    (:class:`~seqrun.terminal.proctree.TreeRecord`): called once the agent
    started, then whenever processes that left its session appear or end.
    Recorded at once, so a run that follows a ``kill -9`` of seqrun ends the
    survivors before it dispatches anything."""


@hookspec
def seqrun_runtest_session(item: Task, unit: Unit, session_id: str, log_path: Path) -> None:
    """The running agent's CLI named its own session (at most once per
    attempt; ``log_path`` is the attempt's log): recorded at once, so a run
    killed mid-attempt can still be resumed by the next one."""


@hookspec
def seqrun_runtest_logattempt(item: Task, unit: Unit, attempt: Attempt) -> None:
    """One attempt ended (whatever its kind: rate-limited and interrupted
    ones too): record it. Called before any retry starts."""


@hookspec(firstresult=True)
def seqrun_runtest_makereport(item: Task, unit: Unit, call: CallInfo[Any],
                              report: TaskReport | None) -> TaskReport | None:
    """Build the :class:`~seqrun.outcome.TaskReport` of ``item`` from one
    phase's ``call`` (``call.when`` is setup, call or teardown). For a
    teardown that raised, ``report`` is the report it was given. The built-in
    implementation is ``trylast``; wrap it (``wrapper=True``) to amend reports."""


@hookspec
def seqrun_runtest_teardown(item: Task, unit: Unit, session: Session, report: TaskReport) -> None:
    """After the verdict (tick tasks.md, commit, clean up), for every task,
    skipped ones included. Add text to the report with
    ``unit.add_report_section(item, key, text)``; raise to make the task an
    ERROR report (``teardown-error``)."""


@hookspec
def seqrun_runtest_logreport(report: TaskReport) -> None:
    """The final report of one task, whatever its outcome (skips included).
    The session counts failures and applies ``--maxfail`` and halting here."""


@hookspec
def seqrun_wait(seconds: float, reason: str, kind: str) -> None:
    """The run is about to sleep: show a countdown. ``kind`` is ``"delay"``
    (``--delay`` between dispatches) or ``"rate-limit"``."""


@hookspec
def seqrun_rate_limit_wait(item: Task, seconds: float, reset_at: float | None, reason: str) -> None:
    """The run waits for a rate limit to reset before retrying the task."""


@hookspec(firstresult=True)
def seqrun_report_teststatus(report: TaskReport, config: Config) -> tuple[str, str, str] | None:
    """Return ``(category, letter, word)`` for the terminal, as in pytest."""


@hookspec
def seqrun_report_header(session: Session) -> str | list[str] | None:
    """Lines the terminal shows once the run is about to start its first
    agent, under ``collected N tasks`` (as pytest's ``pytest_report_header``,
    but after collection: the specs' state files are read by then). The
    state plugin says what earlier runs left (``resuming: 4 done, 1
    interrupted (3.1, attempt 2)``). Every implementation's lines are shown,
    in hook order; not under ``-q``."""


@hookspec
def seqrun_terminal_summary(terminalreporter: Any, exitstatus: int, config: Config) -> None:
    """Add a section to the terminal summary."""


# -- seqrun's own ----------------------------------------------------------------


@hookspec
def seqrun_register_backends(register: Any) -> None:
    """Register backends: call ``register(BackendClass)`` for each.

    A backend has a ``name``, an ``executable``, ``invocation(call)`` and
    ``parser()``, and a ``renderer()`` if its CLI prints a structured stream
    (see :mod:`seqrun.backends.base`).
    """


@hookspec(firstresult=True)
def seqrun_build_prompt(task: Task, subtasks: list[Task], session: Session, unit: Unit,
                        previous: PreviousAttempt | None, resume_session: str | None) -> str | None:
    """The text sent to the agent for one attempt. Return None to leave it to
    the next implementation (the built-in one uses ``--prompt-template``).

    :param previous: the attempt this one follows (this run's, or the state
        file's last when it did not pass), None on a first attempt.
    :param resume_session: the CLI session this attempt continues, when it
        does (``--resume``): the built-in prompt is then a short continuation.
    """


@hookspec(firstresult=True)
def seqrun_attempt_feedback(task: Task, unit: Unit, previous: PreviousAttempt, session: Session) -> str | None:
    """The "Previous attempt" section of the next attempt's prompt (the
    ``{previous_attempt}`` placeholder): its kind, reason, final message and
    verification output. Return a text to replace it (``""`` for none), or
    wrap the hook to add to it; the built-in implementation is ``trylast``."""


@hookspec
def seqrun_prompt_notes(task: Task, unit: Unit, session: Session) -> str | None:
    """Sections for the prompt's ``{notes}`` (how the work will be checked…);
    every implementation's text is included, in hook order."""


@hookspec(firstresult=True)
def seqrun_resume_session(item: Task, unit: Unit, previous: PreviousAttempt, backend: Backend,
                          session: Session) -> str | None:
    """The CLI session id the next attempt continues, or None for a fresh
    session (``--resume``: :mod:`seqrun.resume`)."""


@hookspec(firstresult=True)
def seqrun_attempt_settings(item: Task, session: Session) -> AttemptSettings | None:
    """The time limit, model and rerun count of ``item``'s attempts. The
    built-in implementation (``trylast``) answers ``--timeout``, ``--model``
    and ``--reruns``; :mod:`seqrun.marks` answers a task's declared
    ``_Timeout:``, ``_Model:`` and ``_Reruns:`` lines."""


@hookspec(firstresult=True)
def seqrun_assign_backend(task: Task, session: Session) -> str | None:
    """The backend name to run this dispatch unit with (``--assign-backend``
    classifies it with an LLM call); None means ``--backend``."""


@hookspec(firstresult=True)
def seqrun_backend_invocation(backend: Backend, call: AgentCall) -> Invocation | None:
    """Override how a backend is invoked (wrap it in a sandbox, add flags)."""


@hookspec(firstresult=True)
def seqrun_decide_verdict(item: Task, unit: Unit, verdict: Verdict, session: Session) -> Verdict | None:
    """The verdict of one attempt, given the backend's (e.g. treat a warning
    as a failure). The built-in implementation (``trylast``) returns
    ``verdict`` unchanged, so the hook's result is always the whole answer."""


@hookspec(firstresult=True)
def seqrun_verify_task(item: Task, unit: Unit, verdict: Verdict, session: Session) -> Verdict | None:
    """Check an attempt the agent called done (``--verify``). Return the
    verdict with what was checked (``checks``, ``sections``), a FAILED one of
    kind ``verification`` to reject it, or None to leave it to the next
    implementation; the built-in one (``trylast``) accepts ``verdict``."""
