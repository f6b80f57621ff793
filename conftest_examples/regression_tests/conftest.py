"""Run the project's tests around every task; fail the task on a regression.

Copy this file to ``.kiro/specs/conftest.py``. Before the agent starts a task
the project's tests run once; after the agent says it is done they run again,
and the task fails if a test fails now that did not fail before. Tests that
were failing already do not count against the task (``--verify`` is stricter:
it wants exit status 0), and a test run that ran no tests fails the task.

The command (default ``python -m pytest -q -rfE -p no:cacheprovider``) can be
set in seqrun.toml or ``[tool.seqrun]``::

    [regression_tests]
    command = ["python", "-m", "pytest", "-q", "-rfE", "tests/unit"]

It must print pytest's short summary (``-rfE``): the ``FAILED <test id>``
lines are how failures are told apart.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.outcome import Kind, Outcome, Verdict
from seqrun.runner import workdir
from seqrun.verify import CommandResult, failed_ids, ran_no_tests, run_command

if TYPE_CHECKING:
    from seqrun.main import Session

DEFAULT_COMMAND = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"]

_config: Config | None = None
_before: dict[int, set[str]] = {}  # id(task) -> tests failing before the agent ran


def _run_tests() -> CommandResult:
    assert _config is not None
    command = _config.section("regression_tests").get("command") or DEFAULT_COMMAND
    return run_command(command, cwd=workdir(_config), timeout=1800)


@hookimpl
def seqrun_configure(config: Config) -> None:
    global _config
    _config = config


@hookimpl
def seqrun_runtest_attempt(item: Task, attempt: int) -> None:
    # Attempt 1 is the first agent run of the task: the baseline is taken once,
    # reruns are measured against it too.
    if attempt == 1:
        _before[id(item)] = set(failed_ids(_run_tests().output))


@hookimpl
def seqrun_verify_task(item: Task, verdict: Verdict, session: Session) -> Verdict | None:
    before = _before.pop(id(item), set())
    after = _run_tests()
    no_tests = ran_no_tests(after)
    if no_tests:
        problem = f"the tests ran no tests ({no_tests})"
    else:
        failing = failed_ids(after.output)
        new = [test for test in failing if test not in before]
        if new:
            problem = f"{len(new)} regression(s): {', '.join(new[:5])}"
        elif not after.ok and not failing:  # a crash, a collection error, a timeout
            problem = f"the tests did not run through (exit {after.exit_status})"
        else:
            return None  # nothing broke that worked before
    # The kind makes it <failure type="verification"> in JUnit XML, and a rerun is told why.
    return Verdict(Outcome.FAILED, f"verification failed: {problem}", verdict.final_message,
                   usage=verdict.usage, kind=Kind.VERIFICATION_FAILED, session_id=verdict.session_id)
