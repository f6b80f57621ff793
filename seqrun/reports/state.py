"""The state plugin: what makes a run resumable, written as the run goes.

It reads ``SEQUENTIAL_STATE.json`` (the format and its guarantees are in
:mod:`seqrun.statefile`) before the run, publishes what earlier runs
completed (the runner skips it) and how many attempts each task had (the
count goes on), and writes the file when the run starts, when each agent
starts, when the agent's recorded processes change, after each attempt and
after each task. Each attempt is first appended to the spec's history
journal (``.seqrun/history/<spec>.jsonl``, fsync'd), then gets its
``SEQUENTIAL_PROGRESS.md`` entry (:mod:`seqrun.reports.progress`), then the
state's summary of the task is saved: a kill between two of these loses
nothing. When a run starts, it reads only the journal lines after the
state's checkpoint (the attempts a killed run wrote but did not count) and
writes the progress entries a killed run never wrote; so starting, and each
save, cost the same at the 5,000th attempt as at the 500th. The feedback an
attempt is given (and the session ``--resume`` continues) comes from the
task's newest journal line, read where the summary's ``history_at`` says.
Before the first agent starts it tells the terminal what earlier runs left
of the selected tasks (``seqrun_report_header``: ``resuming: 4 done, 1
interrupted (3.1, attempt 2)``).

Records are keyed by the spec's name, its path relative to the specs root.
A record an earlier seqrun kept under the spec's former name (the file name
without its suffix, ``phase_1`` for ``backend/phase_1.md``) is adopted, and
renamed, only when no other spec can own it (:func:`former_names`);
otherwise it is left as it is and the spec starts empty.

The ``running`` record of a task holds ``processes``: the tree token from
before the agent starts, then the agent's pid, start time, session and
process group, and the processes that left its session. A run that finds a
``running`` record (seqrun was killed) ends what is left of those processes
before anything is dispatched, so two agents never work on the tree at once.

A run stopped while it waited (``--delay``, a rate limit) puts back what a
task's record said before this run marked it running, keeping the attempts it
made: a wait holds nothing against a task.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.nodes import Spec, Task, Unit
from seqrun.outcome import Kind, Outcome
from seqrun.runner import done_before_key

if TYPE_CHECKING:
    from seqrun.reports.progress import ProgressLog, RecordedAttempt
    from seqrun.statefile import AttemptRecord, StateFile
    from seqrun.outcome import Attempt, TaskReport
    from seqrun.main import Session

#: The state file's name (:data:`seqrun.statefile.STATE_NAME`), for the help.
#: Every start builds the help; only a run reads or writes the file, so the
#: plugin imports :mod:`seqrun.statefile` (with the history journal and the
#: file lock) in the hooks of a run, on first use.
STATE_NAME = "SEQUENTIAL_STATE.json"


class StatePlugin:
    """Loads the state before the run, skips what it records as done, and
    writes it (and the progress log) as the run goes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.files: dict[Path, StateFile] = {}
        self.progress: dict[Path, ProgressLog] = {}
        self.spec_of: dict[str, Spec] = {}
        self.started = False
        self._rootpath: Path | None = None
        self._ended: list[Any] = []
        """The process records of killed runs already ended (:meth:`_end_survivors`)."""
        self.before_running: dict[tuple[str, str], dict[str, Any]] = {}
        """(spec, task id) → the record's fields before this run marked it
        running, until its report comes: a run stopped while waiting puts
        them back, so a wait holds nothing against the task."""

    def _session_of(self, log: str) -> str | None:
        """The session id a killed run's attempt left beside its log, if any."""
        from seqrun.statefile import session_file

        path = Path(log)
        if not path.is_absolute():
            path = self._root() / path
        try:
            return session_file(path).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _end_survivors(self, task_id: str, record: Any) -> None:
        """End the processes an agent of a killed seqrun left running: before
        anything is dispatched, so two agents never work on the tree at once."""
        from seqrun.terminal.proctree import TreeRecord, end_survivors

        tree = TreeRecord.from_dict(record)
        if tree is None or tree in self._ended:
            return  # the members of a unit share their agent's record: it is ended once
        self._ended.append(tree)
        ended = end_survivors(tree, self.config.option.kill_grace)
        if ended:
            print(f"seqrun: ended {ended} process(es) that task {task_id} left running "
                  "when an earlier seqrun was killed", file=sys.stderr)

    def _state(self, spec: Spec) -> tuple[StateFile, dict[str, Any]]:
        from seqrun.statefile import state_path

        path = state_path(spec)
        return self.files[path], self.files[path].for_spec(spec.name)

    def assignments(self, spec: Spec) -> dict[str, Any]:
        """The spec's cached ``--assign-backend`` answers (saved with the state)."""
        return self._state(spec)[1]["assignments"]

    def _root(self) -> Path:
        """The project root (where ``.kiro`` is), resolved once."""
        if self._rootpath is None:
            self._rootpath = (self.config.rootpath or self.config.invocation_dir).resolve()
        return self._rootpath

    def _relative(self, path: str | Path | None) -> str | None:
        """A log path as a person reads it: relative to the project root, so
        a run started in a sub-folder records the same paths."""
        if not path:
            return None
        root = self._root()
        text = os.fspath(path)
        prefix = os.fspath(root) + os.sep
        if text.startswith(prefix) and "/../" not in text:
            return text[len(prefix):]  # the usual case, without a resolve() per path
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            return str(path)

    @hookimpl
    def seqrun_collection_finish(self, session: Session) -> None:
        if self.config.option.collectonly:
            return
        # Only a run writes progress files: a listing does not import their module.
        from seqrun.reports.progress import ProgressLog, progress_path_for, recorded_attempts
        from seqrun.statefile import begin_run, state_path

        specs = [s for s in session.specs if any(item.spec is s for item in session.items)]
        self._open_files(specs)
        done_before = self.config.stash.setdefault(done_before_key, set())
        first: dict[Path, str] = {}
        recorded: dict[Path, list[RecordedAttempt]] = {}
        for spec in specs:
            file, state = self._state(spec)
            for task_id in begin_run(state, spec, self._session_of, self._end_survivors, file.journal(spec.name)):
                file.touch(spec.name, task_id)
            completed = set(state["completed"])
            for task in spec.iter_tasks():
                if task.id in completed:
                    done_before.add(task.nodeid)
            self.spec_of[spec.nodeid] = spec
            first.setdefault(state_path(spec), spec.name)
            # Only the journal's lines after the checkpoint can lack their
            # progress entry: every line before it has one.
            recorded.setdefault(state_path(spec), []).extend(
                recorded_attempts(spec.name, file.unaccounted(spec.name)))
        # Written now, not after the first task: an unwritable folder is found
        # before an agent works for an hour, and the record shows the run began.
        for path, name in first.items():
            try:
                self.files[path].save(current=name)
            except OSError as exc:
                raise UsageError(f"cannot write state file {path}: {exc.strerror or exc}") from None
        # The entries a killed run saved in the state but never wrote to the
        # progress file (this run holds the specs' locks: nobody else writes them).
        for path, attempts in recorded.items():
            self.progress[path] = progress = ProgressLog(progress_path_for(path), watch=(a.log for a in attempts))
            progress.recover(attempts, session.run_id)
            for journal in self.files[path].journals.values():
                journal.accounted = journal.size  # counted, and in the progress file: saved from now on
        self.started = True

    def _open_files(self, specs: list[Spec]) -> None:
        from seqrun.statefile import StateFile, state_path

        by_path: dict[Path, list[Spec]] = {}
        for spec in specs:
            by_path.setdefault(state_path(spec), []).append(spec)
        for path, members in by_path.items():
            if path in self.files:
                continue
            names = [spec.name for spec in members]
            former = former_names(path.parent, members)
            if self.config.option.fresh:
                file, backup = StateFile.fresh(path, names, forget=former.values())
                if backup is not None:
                    print(f"--fresh: previous {path.name} kept as {backup}", file=sys.stderr)
            else:
                file = StateFile.load(path)
            try:
                file.claim(names, former)
            except OSError as exc:
                raise UsageError(f"cannot write state file {path}: {exc.strerror or exc}") from None
            for name, kept in file.set_aside:
                if self.config.option.fresh:
                    print(f"--fresh: previous history of {name} kept as {kept}", file=sys.stderr)
                else:
                    print(f"seqrun: history of {name} that no record of {path.name} owned kept as {kept}",
                          file=sys.stderr)
            self.files[path] = file

    @hookimpl
    def seqrun_report_header(self, session: Session) -> list[str]:
        """``resuming: 4 done, 1 failed, 1 interrupted (3.1, attempt 2)``: what
        earlier runs left of the selected tasks, one line per spec that has any."""
        if not self.spec_of:
            return []  # nothing resumed (a listing): the state file is not read
        from seqrun.statefile import INTERRUPTED, attempts_of

        lines = []
        done_before = self.config.stash.get(done_before_key, set())
        for spec in self.spec_of.values():
            _, state = self._state(spec)
            tasks, failed = state["tasks"], set(state["failed"])
            items = [item for item in session.items if item.spec is spec]
            done = sum(1 for item in items if item.nodeid in done_before)
            stopped = [(item.id, attempts_of(tasks.get(item.id))) for item in items
                       if (tasks.get(item.id) or {}).get("status") == INTERRUPTED]
            failures = sum(1 for item in items if item.id in failed)
            if not (done or stopped or failures):
                continue
            parts = [f"{done} done"] if done else []
            if failures:
                parts.append(f"{failures} failed")
            if stopped:
                which = "; ".join(f"{task_id}, attempt {n}" if n else task_id for task_id, n in stopped[:5])
                more = f"; {len(stopped) - 5} more" if len(stopped) > 5 else ""
                parts.append(f"{len(stopped)} interrupted ({which}{more})")
            name = f" {spec.name}" if len(self.spec_of) > 1 else ""
            lines.append(f"resuming{name}: {', '.join(parts)}")
        return lines

    @hookimpl
    def seqrun_runtest_setup(self, item: Task, unit: Unit, session: Session) -> None:
        from seqrun.statefile import attempts_of, last_failed_attempt

        spec = item.spec
        if item is unit.task and spec is not None and spec.nodeid in self.spec_of:
            # Attempts are numbered over the task's life: continue the count.
            file, state = self._state(spec)
            counts = [attempts_of(state["tasks"].get(t.id)) for t in (item, *unit.subtasks)]
            unit.past_attempts = max(unit.past_attempts, *counts)
            unit.previous = unit.previous or last_failed_attempt(
                lambda task_id: file.newest_attempt(spec.name, task_id), (item, *unit.subtasks))

    @hookimpl
    def seqrun_runtest_attempt(self, item: Task, unit: Unit, attempt: int, log_path: Path, backend: str,
                               token: str) -> None:
        """Record the task as running before its agent starts: if seqrun is
        killed now, the next run knows what was in flight, and (by the token
        its processes will inherit) what to end."""
        from seqrun.statefile import RUNNING, utcnow
        from seqrun.terminal.proctree import TreeRecord, boot_id

        spec = item.spec
        if spec is None or spec.nodeid not in self.spec_of:
            return
        file, state = self._state(spec)
        processes = TreeRecord(boot_id=boot_id(), token=token).as_dict()
        for member in unit.members:
            entry = state["tasks"].setdefault(member.id, {})
            self.before_running.setdefault((spec.name, member.id), dict(entry))
            entry.update(status=RUNNING, title=member.title, attempts=attempt, backend=backend,
                         log=self._relative(log_path), updated_at=utcnow(), processes=processes)
            file.touch(spec.name, member.id)
        # Not fsync'd: after a power cut the task simply shows as not started.
        file.save(current=spec.name, durable=False)

    @hookimpl
    def seqrun_runtest_processes(self, item: Task, unit: Unit, processes: Any) -> None:
        """Keep the running record's ``processes`` current: the agent once it
        runs, and any process that leaves its session (the ones a later run
        could not find by session or token). Rare, and not fsync'd."""
        from seqrun.statefile import RUNNING

        spec = item.spec
        if spec is None or spec.nodeid not in self.spec_of:
            return
        file, state = self._state(spec)
        record = processes.as_dict()
        for member in unit.members:
            entry = state["tasks"].get(member.id)
            if entry is not None and entry.get("status") == RUNNING:
                entry["processes"] = record
                file.touch(spec.name, member.id)
        file.save(current=spec.name, durable=False)

    @hookimpl
    def seqrun_runtest_session(self, session_id: str, log_path: Path) -> None:
        """Kept beside the attempt's log (``<attempt>.session``): if seqrun is
        killed now, the next run turns the running record into an interrupted
        attempt that can be resumed. A small file, not a save of the state."""
        from seqrun.statefile import session_file

        try:
            session_file(log_path).write_text(session_id + "\n", encoding="utf-8")
        except OSError:
            pass  # only a resume after a kill -9 needs it

    @hookimpl
    def seqrun_runtest_logattempt(self, item: Task, unit: Unit, attempt: Attempt) -> None:
        from seqrun.statefile import attempts_of, session_file

        spec = item.spec
        if spec is None or spec.nodeid not in self.spec_of:
            return
        file, state = self._state(spec)
        journal = file.journal(spec.name)
        record = self._history_record(attempt)
        members = list(dict.fromkeys(member.id for member in unit.members))
        # First of all, durably: from now on a kill loses nothing of the attempt
        # (the next run counts a line the state does not, and writes its entry).
        at = list(journal.append([(members, record)])[0])
        if attempt.session_id and attempt.log_path:
            # The history holds the session now; the file was for a kill mid-attempt.
            with contextlib.suppress(OSError):
                session_file(Path(attempt.log_path)).unlink()
        for task_id in members:
            entry = state["tasks"].setdefault(task_id, {})
            entry["attempts"] = max(attempts_of(entry), attempt.number)
            entry.pop("processes", None)  # ended with the attempt
            entry["history_at"] = at
            file.touch(spec.name, task_id)
        self.progress[file.path].append(spec.name, item.title, attempt, record["log"])
        journal.accounted = journal.size  # the line is counted and has its entry
        # Before any retry starts: a kill during the wait keeps the count. A
        # passed or halted attempt is the task's last, and its report saves
        # the file a moment later.
        if attempt.outcome not in (Outcome.PASSED, Outcome.HALTED):
            file.save(current=spec.name, durable=False)

    def _history_record(self, attempt: Attempt) -> AttemptRecord:
        from seqrun.statefile import utc

        record: AttemptRecord = {
            "attempt": attempt.number,
            "run_id": attempt.run_id,
            "started_at": utc(attempt.started_at),
            "duration": round(attempt.duration, 3),
            "outcome": attempt.outcome.value,
            "kind": attempt.kind.value,
            "reason": attempt.reason or None,
            "backend": attempt.backend,
            "log": self._relative(attempt.log_path),
            "prompt": self._relative(attempt.prompt_path),
            "session_id": attempt.session_id,
        }
        if attempt.usage is not None:
            record["usage"] = attempt.usage.as_dict()
        if attempt.outcome is not Outcome.PASSED:
            # What the next attempt needs to learn from this one, even in a
            # later run (--lf); readers see it on the newest record only.
            if attempt.final_message_tail:
                record["final_message"] = attempt.final_message_tail
            if attempt.verdict.checks:
                record["checks"] = [dataclasses.asdict(check) for check in attempt.verdict.checks]
        return record

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        from seqrun.statefile import attempts_of, utcnow

        spec = self.spec_of.get(report.spec_nodeid)
        if spec is None:
            return
        file, state = self._state(spec)
        tasks = state["tasks"]
        self.before_running.pop((spec.name, report.task_id), None)
        if report.outcome is Outcome.SKIPPED:
            # Only "not reached" is news; and it must not erase what an
            # earlier run recorded about the task.
            if report.kind is Kind.NOT_REACHED and report.task_id not in tasks:
                tasks[report.task_id] = {"status": report.outcome.value, "title": report.title,
                                         "attempts": 0, "last_error": report.reason,
                                         "kind": report.kind.value, "updated_at": utcnow()}
                file.touch(spec.name, report.task_id)
                file.save(current=spec.name)
            return
        entry = tasks.setdefault(report.task_id, {})
        entry.pop("processes", None)  # an agent that failed to start has none
        entry.update(
            status=report.outcome.value,
            kind=report.kind.value,
            title=report.title,
            attempts=max(attempts_of(entry), report.attempt_number),
            duration=round(report.duration, 3),
            updated_at=utcnow(),
            last_error=None if report.passed else report.reason or None,
            rate_limit_waits=report.rate_limit_waits,
        )
        if report.dispatched:
            entry.update(backend=report.backend, log=self._relative(report.log_path))
        if report.usage is not None:
            entry["usage"] = report.usage.as_dict()
        file.touch(spec.name, report.task_id)
        completed: list[str] = state["completed"]
        failed: list[str] = state["failed"]
        if report.passed:
            if report.task_id not in completed:
                completed.append(report.task_id)
            if report.task_id in failed:
                failed.remove(report.task_id)
        elif report.failed and report.task_id not in failed:
            failed.append(report.task_id)
        if report.outcome is Outcome.HALTED:
            state.update(halted=True, halted_at=utcnow(), halted_task=report.task_id)
        file.save(current=spec.name)

    @hookimpl
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        if not self.started:
            return
        from seqrun.statefile import RUNNING, restore, utcnow

        for spec in self.spec_of.values():
            file, state = self._state(spec)
            for (name, task_id), before in list(self.before_running.items()):
                entry = state["tasks"].get(task_id) if name == spec.name else None
                if entry is not None and entry.get("status") == RUNNING:
                    restore(entry, before)
                    file.touch(spec.name, task_id)
            items = [i for i in session.items if i.spec is spec]
            completed = set(state["completed"])
            if items and all(i.id in completed or i.done or i.optional for i in items):
                state["completed_at"] = utcnow()
            if session.halted and not state.get("halted"):
                state.update(halted=True, halted_at=utcnow())
            file.save(current=spec.name)


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("state")
    group.add_argument("--fresh", action="store_true",
                       help=f"start over: forget this spec's {STATE_NAME} record (a backup is kept)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    config.pluginmanager.register(StatePlugin(config), "state-files")


def former_names(root: Path, specs: list[Spec]) -> dict[str, str]:
    """Spec name → the name an earlier seqrun kept its record under, for the
    specs whose name changed when names became paths (``backend/phase_1.md``,
    once ``phase_1``), and only where the old record can belong to no other
    spec: no other spec of this run, and no other tasks file in ``root``,
    had that name (``frontend/phase_1.md``, ``phase_1/tasks.md``). An
    ambiguous old record is left as it is, for nobody."""
    from seqrun.kiro import TASK_FILE_NAMES, former_spec_name

    former = {spec.name: former_spec_name(spec.tasks_file) for spec in specs}
    wanted = {name: old for name, old in former.items() if old != name}
    if not wanted:
        return {}
    on_disk: dict[str, int] = {}
    try:
        folders = [child for child in root.iterdir() if child.is_dir()]
        for folder in folders:
            for path in folder.iterdir():
                if path.name in TASK_FILE_NAMES or path.stem in wanted.values():
                    old = former_spec_name(path)
                    on_disk[old] = on_disk.get(old, 0) + (path.is_file() and not path.name.startswith("."))
    except OSError:
        return {}  # cannot tell: adopt nothing
    in_run: dict[str, int] = {}
    for old in former.values():
        in_run[old] = in_run.get(old, 0) + 1
    return {name: old for name, old in wanted.items()
            if in_run[old] == 1 and on_disk.get(old, 1) <= 1 and old not in former}
