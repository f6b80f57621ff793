"""``seqrun --status``: the morning view of ``SEQUENTIAL_STATE.json``, running nothing.

For each spec the PATHs name (collected as a run collects them: PATH,
PATH::ID, ``-k``; default ``.kiro/specs``) it shows every collected task in
file order — tasks no run has reached yet too (``not run``) — with its last
outcome and kind, attempts, reason, duration, tokens and cost, and the log
of its last attempt; then a summary line (counts by outcome, tokens, cost),
when the last run started and ended, and whether a run is going on now.

Guarantees:

- **Read-only.** It answers in ``seqrun_cmdline_main``, like ``--version``
  and ``--cache-show``, before ``seqrun_configure``: no plugin that locks,
  writes the state, a report or a log is registered, no agent is started and
  no backend CLI is looked for. The state file is read as a run reads it (a
  corrupt one is a usage error, exit 4, and is left as it is). No file or
  folder is created or written, lock files included — but the report
  ``--html PATH`` names (:mod:`seqrun.reports.html`), when given.
- **Works during a run.** No lock is taken. A run is *going on* when a lock
  of the spec (:mod:`seqrun.lock`: the runtime locks, then the tree lock) is
  held — asked with :func:`seqrun.lock.lock_holder`, a non-blocking probe on
  our own open file, dropped at once — or when the ``--detach`` pid file
  (``<specs root>/.seqrun/detach/<spec>.pid``) names a live seqrun process. A
  ``running`` task record while no run goes on is shown as the next run will
  see it: ``interrupted`` (or ``passed`` when tasks.md has it ticked).
- **Exit status**, as ``--collect-only``'s: 0 when it printed, whatever the
  tasks' outcomes; 4 for a usage error (no tasks file at PATH, a state file
  that cannot be read); 5 when no task was collected (the report is printed
  all the same, and in JSON).

``seqrun --status --json`` prints one JSON object (``status.schema.json``
beside this module is its JSON Schema; every key below is always present,
``null`` where unknown)::

    {
      "schema": "seqrun-status/1",
      "generated_at": "2026-01-31T07:02:11Z",    # UTC, as the state file writes times
      "specs": [{
        "name": "feature",                        # the state record's name
        "nodeid": ".kiro/specs/feature",
        "tasks_file": ".kiro/specs/feature/tasks.md",
        "state_file": ".kiro/specs/SEQUENTIAL_STATE.json",
        "recorded": true,                         # the state file has a record of this spec
        "started_at": "...", "ended_at": "...",   # the last run; ended_at is null while it runs
        "completed_at": null, "halted_at": null, "halted_task": null,
        "run": {"running": false, "pid": null, "detached": false, "pid_file": null,
                "task": null, "attempt": null, "since": null},
        "counts": {"passed": 1, "failed": 1, "not_run": 1},   # outcome -> tasks (non-zero only)
        "tokens": 8862, "cost_usd": 0.0475,       # summed over the recorded attempts
        "tasks": [{
          "id": "2", "nodeid": ".kiro/specs/feature::2", "title": "Second task",
          "checkbox": "pending", "optional": false,
          "outcome": "failed",   # passed failed error halted interrupted rate_limited
                                 # skipped running not_run
          "kind": "no-marker", "attempts": 2,
          "reason": "no TASK_DONE marker in the final message",
          "duration": 0.154, "tokens": 5908, "cost_usd": 0.0317,
          "log": ".kiro/specs/.seqrun/logs/feature/2/2.log",
          "updated_at": "..."
        }]
      }]
    }

Paths are relative to the current folder when under it, else absolute.
``ended_at`` is the last time the run recorded anything (a task, the end);
``run.since`` is when the task in flight started its attempt. A task's
``tokens``/``cost_usd`` sum its recorded attempts (the history, read from
the spec's journal, gives the last 20 per task); the spec's count each agent run once (``--dispatch unit``).

``seqrun --collect-only --json`` prints the same document: the collection
with each task's last outcome, as a CI job planning a matrix wants it
(``--collect-only --matrix``, :mod:`seqrun.reports.matrix`, is the one-line
form GitHub's ``fromJSON()`` reads).

``seqrun --collect-only`` shows the same last outcome after each task of
its tree (``[failed: no-marker, 2 attempts]``), through the
``seqrun_collect_item_note`` hook; ``--co -q`` is unchanged.

The implementation, imported only when one of those is asked for; the
options and hooks are :mod:`seqrun.reports.statusplugin`'s.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.lock import lock_holder, runtime_lock_paths, tree_lock_path
from seqrun.nodes import Spec, Task
from seqrun.paths import safe_name, specs_root
from seqrun.statefile import RUNNING, attempts_of, begin_run, normalized, read_spec_record, state_path
from seqrun.text import oneline, printable

if TYPE_CHECKING:
    from seqrun.main import Session

SCHEMA = "seqrun-status/1"
NOT_RUN = "not_run"
#: Order of the counts in the summary line: failures first, as pytest does.
COUNT_ORDER = ("failed", "error", "halted", "interrupted", "running", "rate_limited", "passed", "skipped",
               NOT_RUN)
#: The longest reason shown on the plain view (the JSON has all of it).
REASON_WIDTH = 160


# -- what the state says ------------------------------------------------------------------


@dataclass(frozen=True)
class TaskStatus:
    """One collected task and its last recorded outcome."""

    id: str
    nodeid: str
    title: str
    checkbox: str
    """What tasks.md says (``pending``, ``in progress``, ``done``)."""
    optional: bool
    outcome: str
    kind: str | None
    attempts: int
    reason: str | None
    duration: float | None
    tokens: int | None
    cost_usd: float | None
    log: str | None
    updated_at: str | None


@dataclass(frozen=True)
class RunStatus:
    """Whether a run of the spec is going on, and what it is doing."""

    running: bool
    pid: int | None = None
    detached: bool = False
    """The ``--detach`` pid file names this live seqrun."""
    pid_file: str | None = None
    """The ``--detach`` pid file, when there is one (stale or not)."""
    task: str | None = None
    attempt: int | None = None
    since: str | None = None


@dataclass(frozen=True)
class SpecStatus:
    name: str
    nodeid: str
    tasks_file: str
    state_file: str
    recorded: bool
    started_at: str | None
    ended_at: str | None
    completed_at: str | None
    halted_at: str | None
    halted_task: str | None
    run: RunStatus
    tasks: tuple[TaskStatus, ...]
    tokens: int | None
    cost_usd: float | None

    @property
    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for task in self.tasks:
            found[task.outcome] = found.get(task.outcome, 0) + 1
        ordered = {k: found.pop(k) for k in COUNT_ORDER if k in found}
        ordered.update(sorted(found.items()))  # outcomes a newer seqrun may add
        return ordered

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "nodeid": self.nodeid, "tasks_file": self.tasks_file,
            "state_file": self.state_file, "recorded": self.recorded,
            "started_at": self.started_at, "ended_at": self.ended_at, "completed_at": self.completed_at,
            "halted_at": self.halted_at, "halted_task": self.halted_task,
            "run": vars(self.run).copy(), "counts": self.counts,
            "tokens": self.tokens, "cost_usd": self.cost_usd,
            "tasks": [vars(task).copy() for task in self.tasks],
        }


def spec_status(spec: Spec, items: Iterable[Task], here: Path) -> SpecStatus:
    """What the state file says of ``spec``'s tasks ``items``, and whether a
    run of it goes on. Reads files only; paths are shown relative to ``here``."""
    import copy

    path = state_path(spec)
    record = read_spec_record(path, spec.name)  # each task with its history
    state: dict[str, Any] = normalized(copy.deepcopy(record) if isinstance(record, dict) else {})
    run = run_status(spec, state, here)
    records = state["tasks"]
    if not run.running and any(_is_dict(e) and e.get("status") == RUNNING for e in records.values()):
        # A killed run left it so: show the tasks as the next run will find them.
        next_run = copy.deepcopy(state)
        begin_run(next_run, spec)
        records = next_run["tasks"]
    tasks = tuple(_task_status(task, records.get(task.id), spec, here) for task in items)
    tokens, cost = _spec_usage(records, {t.id for t in tasks})
    return SpecStatus(
        name=spec.name, nodeid=spec.nodeid, tasks_file=_shown(spec.tasks_file, here),
        state_file=_shown(path, here), recorded=isinstance(record, dict),
        started_at=_text(state.get("started_at")),
        ended_at=None if run.running else _last_activity(records, state),
        completed_at=_text(state.get("completed_at")), halted_at=_text(state.get("halted_at")),
        halted_task=_text(state.get("halted_task")), run=run, tasks=tasks, tokens=tokens, cost_usd=cost,
    )


def _task_status(task: Task, entry: Any, spec: Spec, here: Path) -> TaskStatus:
    common = dict(id=task.id, nodeid=task.nodeid, title=oneline(task.title), checkbox=task.state.value,
                  optional=task.optional)
    if not _is_dict(entry) or not isinstance(entry.get("status"), str):
        return TaskStatus(**common, outcome=NOT_RUN, kind=None, attempts=0, reason=None, duration=None,
                          tokens=None, cost_usd=None, log=None, updated_at=None)
    outcome = entry["status"]
    tokens, cost = _usage(_attempt_usages(entry))
    reason = entry.get("last_error") if outcome not in ("passed", RUNNING) else None
    return TaskStatus(
        **common, outcome=outcome, kind=_text(entry.get("kind")) if outcome != RUNNING else None,
        attempts=attempts_of(entry), reason=_text(reason),
        duration=_number(entry.get("duration")) if outcome != RUNNING else None,
        tokens=tokens, cost_usd=cost, log=_log(entry.get("log"), spec, here),
        updated_at=_text(entry.get("updated_at")),
    )


def _attempt_usages(entry: dict[str, Any]) -> list[Any]:
    """Each recorded attempt's usage; the task's own when no attempt carries one."""
    history = entry.get("history")
    usages = [h.get("usage") for h in history if _is_dict(h)] if isinstance(history, list) else []
    return [u for u in usages if _is_dict(u)] or [entry.get("usage")]


def _spec_usage(tasks: dict[str, Any], shown: set[str]) -> tuple[int | None, float | None]:
    """Tokens and cost of the shown tasks' attempts, each agent run once: in
    ``--dispatch unit`` the members of a unit share its attempts (and logs)."""
    seen: set[Any] = set()
    usages = []
    for task_id in shown:
        entry = tasks.get(task_id)
        if not _is_dict(entry):
            continue
        history = entry.get("history") if isinstance(entry.get("history"), list) else []
        records = [h for h in history if _is_dict(h) and _is_dict(h.get("usage"))]
        if not records:
            usages.append(entry.get("usage"))
            continue
        for h in records:
            key = h.get("log") or (task_id, h.get("attempt"), h.get("run_id"))
            if key not in seen:
                seen.add(key)
                usages.append(h["usage"])
    return _usage(usages)


def _usage(usages: Iterable[Any]) -> tuple[int | None, float | None]:
    tokens: int | None = None
    cost: float | None = None
    for usage in usages:
        if not _is_dict(usage):
            continue
        for key in ("input_tokens", "output_tokens"):
            value = _number(usage.get(key))
            if value is not None:
                tokens = (tokens or 0) + int(value)
        value = _number(usage.get("cost_usd"))
        if value is not None:
            cost = (cost or 0.0) + value
    return tokens, None if cost is None else round(cost, 6)


def _last_activity(records: dict[str, Any], state: dict[str, Any]) -> str | None:
    """The last time the run recorded anything (``ended_at``)."""
    times = [state.get(k) for k in ("completed_at", "halted_at")]
    times += [e.get("updated_at") for e in records.values() if _is_dict(e)]
    times = [t for t in times if isinstance(t, str)]
    started = state.get("started_at")
    return max(times + ([started] if isinstance(started, str) else []), default=None)


# -- whether a run goes on -------------------------------------------------------------------


def run_status(spec: Spec, state: dict[str, Any], here: Path) -> RunStatus:
    """Whether a run of ``spec`` holds its lock, or its ``--detach`` pid file
    names a live seqrun; and the task it runs (its ``running`` record)."""
    root = specs_root(spec)
    holder = None
    for path in (*runtime_lock_paths(spec), tree_lock_path(root, spec.name)):
        holder = lock_holder(path)
        if holder is not None:
            break
    pid_file = root / ".seqrun" / "detach" / f"{safe_name(spec.name)}.pid"
    file_pid = _read_pid(pid_file)
    detached = file_pid is not None and is_live_seqrun(file_pid)
    shown_pid_file = _shown(pid_file, here) if file_pid is not None or pid_file.exists() else None
    if holder is None and not detached:
        return RunStatus(running=False, pid_file=shown_pid_file)
    pid = int(holder) if holder is not None and holder.isdigit() else file_pid if detached else None
    in_flight = next(((task_id, e) for task_id, e in state["tasks"].items()
                      if _is_dict(e) and e.get("status") == RUNNING), None)
    task, attempt, since = None, None, None
    if in_flight is not None:
        task, entry = in_flight
        attempt = attempts_of(entry) or None
        since = _text(entry.get("updated_at"))
    return RunStatus(running=True, pid=pid, detached=detached and pid == file_pid, pid_file=shown_pid_file,
                     task=task, attempt=attempt, since=since)


def _read_pid(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:  # a run writes it atomically; never a FIFO of ours
            text = f.read(64).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_live_seqrun(pid: int) -> bool:
    """``pid`` is a live process whose command line names seqrun: a pid file
    a ``kill -9`` left names a dead process, or one that reused its pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    except OSError:
        return False
    from seqrun.terminal.proctree import read_proc

    info = read_proc(pid)
    if info is not None and info.zombie:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"seqrun" in f.read()
    except OSError:
        return info is None  # no /proc to ask: the signal said it is alive


# -- small helpers ---------------------------------------------------------------------------------


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _shown(path: Path, here: Path) -> str:
    """``path`` relative to ``here`` when under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(here)).as_posix()
    except ValueError:
        return absolute.as_posix()


def _log(stored: Any, spec: Spec, here: Path) -> str | None:
    """A log path as recorded (relative to where that run was started), shown
    from ``here``: logs live under ``<specs root>/.seqrun/logs/``."""
    if not isinstance(stored, str) or not stored:
        return None
    if os.path.isabs(stored):
        return _shown(Path(stored), here)
    parts = Path(stored).parts
    if ".seqrun" in parts:
        tail = parts[parts.index(".seqrun"):]
        return _shown(specs_root(spec).joinpath(*tail), here)
    return stored


# -- the plain view ------------------------------------------------------------------------------


def _local(stamp: str | None, with_date: bool = True) -> str:
    """A state file time (UTC) as local time, for a person."""
    if not stamp:
        return "-"
    try:
        epoch = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - _utc_offset()
    except (ValueError, OverflowError):
        return stamp
    return time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M", time.localtime(epoch))


def _utc_offset() -> float:
    """Seconds ``time.mktime`` adds when given a UTC struct_time."""
    now = time.time()
    return time.mktime(time.gmtime(now)) - now


def run_line(run: RunStatus) -> str:
    if not run.running:
        return "not running" + (f" (stale pid file {run.pid_file})" if run.pid_file else "")
    who = [f"pid {run.pid}" if run.pid is not None else "pid unknown"]
    if run.detached:
        who[0] += ", detached"
    if run.task is not None:
        attempt = f" attempt {run.attempt}" if run.attempt else ""
        who.append(f"task {run.task}{attempt} since {_local(run.since, with_date=False)}")
    else:
        who.append("between tasks")
    return oneline(f"running now ({', '.join(who)})")


def outcome_label(task: TaskStatus) -> str:
    label = task.outcome.replace("_", " ")
    if task.kind and task.kind != task.outcome:
        label += f" [{task.kind}]"
    return label


def summary_line(spec: SpecStatus) -> str:
    counts = ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in spec.counts.items()) or "no tasks"
    usage = []
    if spec.tokens:
        usage.append(f"{spec.tokens:,} tokens")
    if spec.cost_usd:
        usage.append(f"${spec.cost_usd:.2f}")
    return f"{counts}" + (f"; {', '.join(usage)}" if usage else "")


def _money(value: float | None) -> str:
    return f"${value:.2f}" if value is not None else "-"


def _seconds(value: float | None) -> str:
    return f"{value:.1f}s" if value is not None else "-"


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def plain_lines(spec: SpecStatus) -> list[str]:
    lines = [f"== {printable(spec.nodeid)} (spec {printable(spec.name)}) =="]
    lines.append(f"{run_line(spec.run)}; state: {spec.state_file}"
                 + ("" if spec.recorded else " (no record of this spec: never run)"))
    if spec.started_at:
        ended = ("still running" if spec.run.running else f"ended {_local(spec.ended_at)}")
        extra = ""
        if spec.completed_at:
            extra = ", every task done"
        elif spec.halted_at:
            extra = f", halted{f' by task {spec.halted_task}' if spec.halted_task else ''}"
        lines.append(f"last run: started {_local(spec.started_at)}, {ended}{extra}")
    rows = [(printable(t.id), oneline(outcome_label(t)), _attempts(t.attempts) if t.outcome != NOT_RUN else "-",
             _seconds(t.duration), f"{t.tokens:,}" if t.tokens is not None else "-", _money(t.cost_usd),
             t.title + (" (optional)" if t.optional else "")) for t in spec.tasks]
    header = ("ID", "OUTCOME", "ATTEMPTS", "DURATION", "TOKENS", "COST", "TITLE")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row, task in zip((header, *rows), (None, *spec.tasks)):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append(("  " + "  ".join(cells) + "  " + row[-1]).rstrip())
        if task is None:
            continue
        pad = " " * (4 + widths[0])
        if task.reason:
            reason = oneline(task.reason)
            if len(reason) > REASON_WIDTH:
                reason = reason[:REASON_WIDTH - 1] + "…"
            lines.append(f"{pad}reason: {reason}")
        if task.log:
            lines.append(f"{pad}log: {oneline(task.log)}")
    lines.append(f"{printable(spec.name)}: {oneline(summary_line(spec))}")
    return lines


def note_for(task: TaskStatus) -> str:
    """The ``--collect-only`` note: ``[failed: no-marker, 2 attempts]``."""
    if task.outcome == NOT_RUN:
        return "[not run]"
    label = task.outcome.replace("_", " ")
    if task.kind and task.kind != task.outcome:
        label += f": {task.kind}"
    return f"[{label}, {_attempts(task.attempts)}]" if task.attempts else f"[{label}]"


# -- the command ---------------------------------------------------------------------------------


def collect(config: Config) -> Session:
    """The specs and tasks a run would collect, without configuring the
    plugins that a run needs (locks, state writer, reports): only reading."""
    from seqrun.main import Session
    from seqrun.select import Expression, expression_key

    # -k as a run reads it (seqrun.select compiles it in seqrun_configure, which --status skips).
    config.stash[expression_key] = Expression(config.option.keyword) if config.option.keyword else None
    session = Session(config)
    session.perform_collect()
    return session


def show_status(config: Config) -> int:
    import json

    from seqrun.main import ExitCode

    session = collect(config)
    here = config.invocation_dir
    statuses = [spec_status(spec, [i for i in session.items if i.spec is spec], here)
                for spec in session.specs]
    if config.option.status_json:
        document = {"schema": SCHEMA, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "specs": [s.as_json() for s in statuses]}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        shown = [s for s in statuses if s.tasks]
        for i, spec in enumerate(shown):
            if i:
                print()
            print("\n".join(plain_lines(spec)))
        if not session.items:
            print("no tasks collected")
    sys.stdout.flush()
    return ExitCode.OK if session.items else ExitCode.NO_TASKS_COLLECTED


class LastOutcomes:
    """``--collect-only``: each task's last outcome after it in the tree."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.specs: dict[Spec, dict[str, TaskStatus] | None] = {}
        self.warned = False

    def _of(self, spec: Spec) -> dict[str, TaskStatus] | None:
        if spec not in self.specs:
            try:
                status = spec_status(spec, spec.leaves(), self.config.invocation_dir)
            except UsageError as exc:
                if not self.warned:
                    print(f"WARNING last outcomes not shown: {exc}", file=sys.stderr)
                    self.warned = True
                status = None
            self.specs[spec] = {t.id: t for t in status.tasks} if status and status.recorded else None
        return self.specs[spec]

    @hookimpl
    def seqrun_collect_item_note(self, item: Task, config: Config) -> str | None:
        if item.spec is None:
            return None
        tasks = self._of(item.spec)
        task = tasks.get(item.id) if tasks else None
        return note_for(task) if task is not None else None
