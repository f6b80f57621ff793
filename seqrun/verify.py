"""``--verify CMD``: seqrun checks the agent's "done" itself.

Agents say a task is done when it is not. After the agent's verdict is
*passed* (and only then: ``seqrun_verify_task``), the verification command
runs in the agent's working directory and the task passes only if it exits 0.

Where the command comes from, the first found wins:

1. a ``_Verify: CMD_`` (or ``**Verify**: CMD``) line of the task, else of its
   nearest parent task that has one; ``_Verify: none_`` (or ``off``) turns verification
   off for that task;
2. ``--verify CMD`` or ``verify = "CMD"`` (or a list of strings) in
   ``[tool.seqrun]``.

``CMD`` is split with :func:`shlex.split` and run without a shell (write
``sh -c '...'`` for pipes and ``&&``); stdin is ``/dev/null``; stdout and
stderr are appended to the attempt's log file and kept (their tail) in the
task report, so the terminal, JUnit XML and the report log show them. The
command also gets ``SEQRUN_TASK_ID``, ``SEQRUN_TASK_TITLE``, ``SEQRUN_SPEC`` and
``SEQRUN_VERIFY_PHASE`` (``baseline`` or ``after``) in its environment.

A test runner that ran no tests has verified nothing: pytest's exit status 5,
and an exit status 0 whose output says only that nothing ran (``no tests
ran``, ``collected 0 items``, ``Ran 0 tests``, ``0 passed``, ``running 0
tests``, ``no test files``…, with no count above zero anywhere), fail too.

``--verify-baseline`` runs the command once more before the agent starts
(the previous task's verification is reused when nothing ran in between) and
tells, in the failure reason, the failures that were there before the task
from the ones it introduced (pytest's ``FAILED <nodeid>`` summary lines; for
other commands, the exit status). It does not change what passes: a task still
passes only if the command exits 0 after it. (For "fail on regressions only",
see ``conftest_examples/regression_tests``.)

``--verify-timeout`` (default 1800 s, 0: none) ends the command and every
process it started. Every failure reason starts with ``verification``, which
JUnit XML reports as ``<failure type="verification">``.

The options and the hook that registers :class:`Verifier` are
:mod:`seqrun.verifyplugin`'s: this module is imported when a run begins.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Mapping, Sequence

from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Check, Kind, Outcome, Verdict
from seqrun.paths import workdir
from seqrun.stash import StashKey
from seqrun.text import printable

if TYPE_CHECKING:
    from seqrun.main import Session

#: Output kept in memory and in the report: the head (where "collected 0
#: items" is) and the tail (where a test runner's summary is).
KEEP_HEAD = 64 * 1024
KEEP_TAIL = 2 * 1024 * 1024
#: What the report (terminal, JUnit, report log) shows of the output.
REPORT_TAIL_LINES = 60
REPORT_TAIL_CHARS = 8000
FIELD = "verify"
NONE_VALUES = frozenset({"none", "off", "-"})

_NO_TESTS = re.compile(
    r"\bno tests ran\b|\bcollected 0 items\b|^Ran 0 tests\b|\bno tests? (?:were )?found\b"
    r"|\bno test files\b|^running 0 tests\b|(?<![\w.,])0 (?:passed|passing)\b|\bTests:\s+0 total\b",
    re.IGNORECASE | re.MULTILINE,
)
_SOME_TESTS = re.compile(
    r"(?<![\w.,])[1-9]\d* (?:passed|passing|failed|failing|errors?)\b|^Ran [1-9]\d* tests?\b"
    r"|^running [1-9]\d* tests?\b|\bTests:\s+.*[1-9]\d* total\b|^ok\s+\S+\s+[\d.]+s\b",
    re.IGNORECASE | re.MULTILINE,
)
_PYTEST = re.compile(r"(?:^|[\s/])py\.?test\b")
#: pytest's short test summary: ``FAILED tests/x.py::test_y - AssertionError``.
_FAILED_ID = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
_DECORATION = re.compile(r"^[=\-_*#\s]+|[=\-_*#\s]+$")


# -- running a command -------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """How one run of a command went."""

    argv: tuple[str, ...]
    exit_status: int | None
    """As a shell reports it (128+N for signal N); None if it never ran to an end."""
    output: str
    """stdout and stderr merged; the middle of very long output is left out."""
    duration: float
    timed_out: bool = False
    error: str | None = None
    """Why it could not start (not found, not executable)."""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and self.error is None


def display(argv: Sequence[str]) -> str:
    """The command as a person would type it."""
    import shlex

    return shlex.join(argv)


def find_executable(program: str, cwd: Path, path: str | None = None) -> str | None:
    """``program`` as the OS will find it: a path (relative to ``cwd``) when it
    has a slash, else a PATH lookup."""
    if os.sep in program or (os.altsep and os.altsep in program):
        candidate = Path(program) if os.path.isabs(program) else cwd / program
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path)


def run_command(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
                timeout: float | None = None, grace: float = 5.0) -> CommandResult:
    """Run ``argv`` (no shell) to its end or ``timeout`` seconds, output captured.

    The command gets a session of its own, so its whole process tree can be
    ended on a timeout or when seqrun is interrupted (Ctrl-C reaches only the
    foreground process group, which the command is not in). Output goes to a
    temporary file, not a pipe: a chatty command never blocks on a full pipe
    and a daemon it leaves behind cannot hold seqrun up.
    """
    import subprocess

    from seqrun.terminal.proctree import TOKEN_VAR, kill_tree

    token = os.urandom(16).hex()
    full_env = {**os.environ, **(env or {}), TOKEN_VAR: token}
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return CommandResult(tuple(argv), None, "", 0.0, error=exc.strerror or str(exc))
        timed_out = False
        try:
            proc.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_tree(proc.pid, grace, token=token)
            proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM: end what we started, then go on stopping
            kill_tree(proc.pid, grace, token=token)
            proc.wait()
            raise
        duration = time.monotonic() - start
        output = _read_kept(out)
    status = proc.returncode
    if status is not None and status < 0:
        status = 128 - status
    return CommandResult(tuple(argv), None if timed_out else status, output, duration, timed_out)


def _read_kept(out: IO[bytes]) -> str:
    size = out.seek(0, os.SEEK_END)
    out.seek(0)
    if size <= KEEP_HEAD + KEEP_TAIL:
        data = out.read()
    else:
        head = out.read(KEEP_HEAD)
        out.seek(size - KEEP_TAIL)
        left_out = size - KEEP_HEAD - KEEP_TAIL
        data = head + f"\n[... {left_out} bytes left out ...]\n".encode() + out.read()
    return data.decode("utf-8", errors="replace")


# -- judging the result ------------------------------------------------------------------


def ran_no_tests(result: CommandResult) -> str | None:
    """Why the command looks like a test run that ran no tests, or None."""
    joined = " ".join(result.argv)
    if result.exit_status == 5 and (_PYTEST.search(joined) or "no tests ran" in result.output):
        return "pytest exit status 5: no tests were collected"
    if result.exit_status == 0:
        found = _NO_TESTS.search(result.output)
        if found and not _SOME_TESTS.search(result.output):
            return f"exit status 0, but its output says {found.group(0).strip()!r}"
    return None


def summary_line(output: str, limit: int = 160) -> str:
    """The last non-empty line, without ``=====`` decoration: a test runner's summary."""
    for line in reversed(output.splitlines()):
        text = _DECORATION.sub("", line).strip()
        if text:
            text = " ".join(text.split())
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""


def failed_ids(output: str) -> list[str]:
    """Test ids from pytest's short summary (``FAILED x::y``, ``ERROR x``), in order."""
    return list(dict.fromkeys(_FAILED_ID.findall(output)))


def judge(result: CommandResult, timeout: float) -> str | None:
    """What is wrong with a verification run (no ``verification failed:``
    prefix), or None when it verified the task."""
    cmd = f"`{display(result.argv)}`"
    if result.error is not None:
        return f"{cmd} could not start: {result.error}"
    if result.timed_out:
        return f"{cmd} timed out after {timeout:g}s (it and its processes were ended)"
    no_tests = ran_no_tests(result)
    if no_tests:
        return f"{cmd} ran no tests ({no_tests})"
    if result.exit_status == 0:
        return None
    summary = summary_line(result.output)
    return f"{cmd} exited {result.exit_status}" + (f" ({summary})" if summary else "")


def compare_with_baseline(after: CommandResult, before: CommandResult) -> str:
    """The failures the task introduced, told apart from the ones it found."""
    if before.ok and not ran_no_tests(before):
        return "it passed before the task: the task broke it"
    if before.error is not None or before.timed_out:
        return "the baseline run before the task did not finish either"
    old, new = failed_ids(before.output), failed_ids(after.output)
    if not old and not new:
        return f"it failed before the task too (exit {before.exit_status})"
    introduced = [t for t in new if t not in old]
    kept = [t for t in new if t in old]
    fixed = [t for t in old if t not in new]
    parts = [f"{len(introduced)} new failure(s)" + (f": {_few(introduced)}" if introduced else "")]
    if kept:
        parts.append(f"{len(kept)} failing before the task too: {_few(kept)}")
    if fixed:
        parts.append(f"{len(fixed)} fixed by the task")
    return "; ".join(parts)


def _few(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _tail(text: str) -> str:
    lines = text.splitlines()[-REPORT_TAIL_LINES:]
    tail = "\n".join(lines)
    return tail[-REPORT_TAIL_CHARS:]


# -- where the command comes from ------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One verification to run for a dispatch: the command, or why it cannot run."""

    argv: tuple[str, ...] | None
    source: str
    problem: str | None = None


def parse_command(value: object, what: str) -> list[str]:
    """A command from the command line, a config file (string or list) or a task line."""
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(a, str) and a for a in value):
            raise ValueError(f"{what} must be a command string or a non-empty list of strings")
        return list(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a command string, got {value!r}")
    text = value.strip()
    if len(text) >= 2 and text.startswith("`") and text.endswith("`"):
        text = text.strip("`").strip()  # `pytest -q` written as inline code in tasks.md
    import shlex

    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{what}: cannot split {value!r}: {exc}") from None
    if not argv:
        raise ValueError(f"{what} is empty")
    return argv


def task_field(task: Task) -> tuple[Task, str] | None:
    """The task's own ``Verify`` line, else its nearest parent's."""
    for node in (task, *task.ancestors()):
        for key, value in node.fields.items():
            if key.strip().casefold() == FIELD:
                return node, value
    return None


# -- the plugin --------------------------------------------------------------------------------


baselines_key = StashKey[dict[tuple[str, ...], CommandResult]]()
log_path_key = StashKey[Path]()
"""The log of the attempt being verified: its verification output is appended there."""


class Verifier:
    """Runs the verification of each attempt the agent called done."""

    def __init__(self, config: Config, default: list[str] | None, source: str) -> None:
        self.config = config
        self.default = tuple(default) if default else None
        self.default_source = source
        self.last: CommandResult | None = None
        """The latest verification, valid as the next task's baseline until an agent runs."""

    # -- planning --------------------------------------------------------------------------

    def plan(self, members: Sequence[Task]) -> list[Planned]:
        """One verification per distinct command of the tasks a dispatch covers."""
        planned: dict[tuple[str, ...] | str, Planned] = {}
        for task in members:
            found = task_field(task)
            if found is None:
                if self.default is not None:
                    planned.setdefault(self.default, Planned(self.default, self.default_source))
                continue
            owner, value = found
            source = f"the Verify line of task {owner.id}"
            if value.strip().strip("`").strip().casefold() in NONE_VALUES:
                continue
            try:
                argv = tuple(parse_command(value, source))
            except ValueError as exc:
                planned.setdefault(source, Planned(None, source, str(exc)))
                continue
            if find_executable(argv[0], self._cwd()) is None:
                planned.setdefault(source, Planned(None, source, f"`{argv[0]}` not found ({source})"))
                continue
            planned.setdefault(argv, Planned(argv, source))
        return list(planned.values())

    def _cwd(self) -> Path:
        return workdir(self.config)

    def _run(self, argv: tuple[str, ...], task: Task, phase: str) -> CommandResult:
        opt = self.config.option
        env = {
            "SEQRUN_TASK_ID": task.id,
            "SEQRUN_TASK_TITLE": task.title,
            "SEQRUN_SPEC": task.spec.name if task.spec is not None else "",
            "SEQRUN_VERIFY_PHASE": phase,
        }
        return run_command(argv, cwd=self._cwd(), env=env, timeout=opt.verify_timeout or None,
                           grace=getattr(opt, "kill_grace", 5.0))

    # -- hooks -------------------------------------------------------------------------------------

    @hookimpl
    def seqrun_runtest_attempt(self, item: Task, unit: Unit, log_path: Path) -> None:
        unit.stash[log_path_key] = log_path
        if not unit.attempts and baselines_key not in unit.stash and self.config.option.verify_baseline:
            results: dict[tuple[str, ...], CommandResult] = {}
            for planned in self.plan(unit.members):
                if planned.argv is None:
                    continue
                if self.last is not None and self.last.argv == planned.argv:
                    results[planned.argv] = self.last  # nothing ran since: same tree
                else:
                    results[planned.argv] = self._run(planned.argv, item, "baseline")
            unit.stash[baselines_key] = results
        self.last = None  # an agent is about to change the work tree

    @hookimpl
    def seqrun_prompt_notes(self, unit: Unit) -> str | None:
        """Tell the agent up front which commands will judge its work."""
        planned = [p for p in self.plan(unit.members) if p.argv is not None]
        if not planned:
            return None
        lines = ["## How your work is checked", "",
                 f"When you say the task is done, seqrun runs in {self._cwd()}:"]
        lines += [f"- `{display(p.argv)}`" for p in planned if p.argv is not None]
        lines += ["", "The task passes only if every one of them exits 0 and reports tests that ran. "
                  "If one fails, its output is sent back to you in a next attempt."]
        return "\n".join(lines)

    @hookimpl
    def seqrun_verify_task(self, item: Task, unit: Unit, verdict: Verdict, session: Session) -> Verdict | None:
        planned = self.plan(unit.members)
        if not planned:
            return None
        baselines = unit.stash.get(baselines_key, {})
        problems: list[str] = []
        sections: list[tuple[str, str]] = []
        explanation: list[str] = []
        checks: list[Check] = []
        for plan in planned:
            if plan.argv is None:
                assert plan.problem is not None
                problems.append(plan.problem)
                continue
            result = self._run(plan.argv, item, "after")
            self.last = result
            before = baselines.get(plan.argv)
            self._append_to_log(unit, result, before)
            problem = judge(result, self.config.option.verify_timeout)
            head = (f"$ {display(plan.argv)}  (from {plan.source}; exit {result.exit_status}, "
                    f"{result.duration:.1f}s)")
            sections.append((f"verification: {display(plan.argv)}", f"{head}\n{_tail(result.output)}"))
            checks.append(Check(display(plan.argv), result.exit_status, problem is None,
                                _tail(printable(result.output)), result.duration))
            if before is not None:
                sections.append((f"verification baseline: {display(plan.argv)}",
                                 f"before the task: exit {before.exit_status}\n{_tail(before.output)}"))
            if problem is None:
                continue
            if before is not None:
                problem = f"{problem}; {compare_with_baseline(result, before)}"
            problems.append(problem)
            explanation.append(f"{problem}\n(from {plan.source}, in {self._cwd()})")
        checked = dataclasses.replace(verdict, checks=verdict.checks + tuple(checks),
                                      sections=verdict.sections + tuple(sections))
        if not problems:
            return checked
        return dataclasses.replace(checked, outcome=Outcome.FAILED, kind=Kind.VERIFICATION_FAILED,
                                   reason="verification failed: " + "; ".join(problems),
                                   longrepr="\n".join(explanation) or checked.longrepr)

    def _append_to_log(self, unit: Unit, result: CommandResult, before: CommandResult | None) -> None:
        log = unit.stash.get(log_path_key, None)
        if not log:
            return
        parts = []
        if before is not None:
            parts.append(_log_block("baseline, before the task", before))
        parts.append(_log_block("after the task", result))
        try:
            with open(log, "ab") as f:
                f.write("".join(parts).encode("utf-8", errors="replace"))
        except OSError:
            pass  # the log is a convenience; the report carries the output too


def _log_block(phase: str, result: CommandResult) -> str:
    status = result.error or ("timed out" if result.timed_out else f"exit {result.exit_status}")
    text = result.output if result.output.endswith("\n") or not result.output else result.output + "\n"
    return (f"\n----- seqrun verification ({phase}): $ {display(result.argv)} -> {status}, "
            f"{result.duration:.1f}s -----\n{text}")


# -- options ---------------------------------------------------------------------------------------
