"""A self-contained HTML report of a run (``--html PATH``, ``html = "…"``).

The implementation, imported only when ``--html`` is given; the option and
the hooks are :mod:`seqrun.reports.htmlplugin`'s.

One file, rendered by Jinja2 from ``templates/report.html.j2`` beside this
module, built from the attempt records — the history (the spec's journal, read
with :func:`seqrun.statefile.read_spec_record`) and the
events of the run (the same dicts the report log writes: ``AttemptReport``,
``RateLimitWait``, ``TaskReport``) — never from terminal output.

Guarantees:

- **Offline.** CSS, JS and the SVG timeline are inline; the page fetches
  nothing (a Content-Security-Policy ``default-src 'none'`` says so to the
  browser). Logs and prompts are linked by paths relative to the report, not
  inlined: only their bounded tails are (:data:`LOG_TAIL`, :data:`PROMPT_HEAD`).
- **Escaped.** Autoescape is on: every title, reason, message and log line is
  text, never markup.
- **Always current.** Written atomically (:func:`seqrun.atomicfile.atomic_write`)
  after each task and when the session finishes, so it can be opened during
  the run. ``seqrun --status --html PATH`` writes it from the state file
  (and the report log named by ``--report-log``, when that file exists)
  without running anything.
- **Of the night.** The summary (agent time, waits, tokens and cost by
  backend) and the timeline cover the run being reported: this run, or with
  ``--status`` the runs of the report log's attempts, else the last run the
  state file records. Each task still lists every attempt the state file
  keeps, earlier runs' too. With ``--git-commit``, a passed task shows its
  commit's diffstat and patch (cut at :data:`PATCH_LIMIT`), each asked of git once.
- **Filters** (failed only, by spec, search) work from ``file://``; they can
  be set from the URL hash: ``#failed``, ``#spec=NAME``, ``#q=TEXT``.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrun.atomicfile import atomic_write
from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Spec, Task
from seqrun.outcome import Attempt, TaskReport
from seqrun.paths import specs_root
from seqrun.statefile import normalized, read_spec_record, state_path
from seqrun.text import read_end

if TYPE_CHECKING:
    from seqrun.main import Session

#: Characters of a log's end shown inline (the whole log is linked).
LOG_TAIL = 2000
#: Characters of a prompt's start shown inline (the whole prompt is linked).
PROMPT_HEAD = 3000
#: Characters of one verification command's output shown inline.
CHECK_TAIL = 2000
#: Characters of a ``--git-commit`` commit's patch shown inline.
PATCH_LIMIT = 20000
#: Gaps between two attempts shorter than this are not drawn as waits.
MIN_GAP = 0.5

#: Outcomes counted as "failed" by the "failed only" filter.
FAILED_OUTCOMES = frozenset({"failed", "error", "halted", "interrupted"})


@dataclass(frozen=True)
class AttemptView:
    """One agent run, as the report shows it."""

    anchor: str
    number: int
    run_id: str | None
    backend: str | None
    model: str | None
    outcome: str
    kind: str
    reason: str | None
    started_at: float | None
    duration: float | None
    usage: dict[str, Any] | None
    final_message: str | None
    checks: tuple[dict[str, Any], ...]
    log_link: str | None
    log_tail: str | None
    prompt_link: str | None
    prompt_head: str | None


@dataclass(frozen=True)
class WaitView:
    """Time the run spent not running an agent: a rate-limit wait or a delay."""

    nodeid: str
    start: float
    seconds: float
    what: str  # "rate-limit" or "delay"
    reason: str


@dataclass(frozen=True)
class GitCommit:
    """The commit ``--git-commit`` made for a task: its diffstat and (bounded) patch."""

    sha: str
    stat: str
    patch: str
    truncated: bool


class GitCommits:
    """``git show`` of the commits a report names, each asked once: the report
    is rebuilt after every task, the commits of the earlier ones do not change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.known: dict[str, GitCommit | None] = {}

    def get(self, sha: str) -> GitCommit | None:
        if sha not in self.known:
            self.known[sha] = self._show(sha)
        return self.known[sha]

    def _show(self, sha: str) -> GitCommit | None:
        from seqrun.gitcommit import GitError, git

        if not sha.isalnum():
            return None
        try:
            stat = git(["show", "--no-color", "--stat", "--format=%H %s", sha], self.root).stdout
            patch = git(["show", "--no-color", "--format=", "--patch", sha], self.root).stdout
        except GitError:
            return None
        return GitCommit(sha=sha, stat=stat.strip(), patch=patch[:PATCH_LIMIT], truncated=len(patch) > PATCH_LIMIT)


def _commit_sha(report: dict[str, Any] | None) -> str | None:
    """The ``git commit`` section :mod:`seqrun.gitcommit` adds to a passed task's report."""
    for section in (report or {}).get("sections") or ():
        if isinstance(section, (list, tuple)) and len(section) == 2 and section[0] == "git commit":
            return str(section[1]).strip() or None
    return None


@dataclass(frozen=True)
class TaskView:
    nodeid: str
    spec: str
    id: str
    title: str
    parent: str | None
    requirements: tuple[str, ...]
    outcome: str
    kind: str | None
    reason: str | None
    attempts: tuple[AttemptView, ...]
    commit: GitCommit | None = None

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


@dataclass(frozen=True)
class Bar:
    """A rectangle of the timeline, in SVG units."""

    lane: int
    x: float
    width: float
    css: str
    label: str
    href: str | None


@dataclass(frozen=True)
class Timeline:
    width: float
    height: float
    lane_height: float
    label_width: float
    lanes: tuple[TaskView, ...]
    bars: tuple[Bar, ...]
    waits: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class RunView:
    """Everything the template shows."""

    specs: tuple[str, ...]
    command: str | None
    started_at: float | None
    ended_at: float | None
    generated_at: float
    source: str
    tasks: tuple[TaskView, ...]
    waits: tuple[WaitView, ...]
    counts: dict[str, int]
    agent_seconds: float
    rate_limit_seconds: float
    delay_seconds: float
    by_backend: dict[str, dict[str, float]] = field(default_factory=dict)
    run_ids: frozenset[str] = frozenset()
    """The runs whose attempts are on the timeline and in the summary."""


# -- reading files, bounded ---------------------------------------------------------------


def _tail(path: Path | None, limit: int) -> str | None:
    if path is None:
        return None
    end = read_end(path, limit)
    if end is None:
        return None
    data, size = end
    text = data.decode("utf-8", "replace")
    return ("…" + text) if size > limit else text


def _head(path: Path | None, limit: int) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    text = data[:limit].decode("utf-8", "replace")
    return (text + "…") if len(data) > limit else text


def _epoch(value: Any) -> float | None:
    import calendar

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
        except (ValueError, OverflowError):
            return None
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# -- building the view --------------------------------------------------------------------


class Locator:
    """Where a recorded path is, and how the report links to it."""

    def __init__(self, report_dir: Path, root: Path) -> None:
        self.report_dir = Path(os.path.abspath(report_dir))
        self.root = root

    def file(self, stored: Any, spec: Spec | None) -> Path | None:
        if not isinstance(stored, str) or not stored:
            return None
        path = Path(stored)
        if path.is_absolute():
            return path
        if ".seqrun" in path.parts and spec is not None:
            return specs_root(spec).joinpath(*path.parts[path.parts.index(".seqrun"):])
        return self.root / path

    def link(self, path: Path | None) -> str | None:
        if path is None:
            return None
        return Path(os.path.relpath(os.path.abspath(path), self.report_dir)).as_posix()


def _attempt_key(record: dict[str, Any]) -> tuple[Any, Any]:
    return record.get("attempt"), record.get("run_id")


def _merge_attempts(history: Iterable[Any], events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The state's history records, each completed by the run's ``AttemptReport``
    of the same attempt (which has the final message and the checks)."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for record in history:
        if isinstance(record, dict) and isinstance(record.get("attempt"), int):
            merged[_attempt_key(record)] = dict(record)
    for event in events:
        key = _attempt_key(event)
        entry = merged.setdefault(key, {})
        entry.update({k: v for k, v in event.items() if v is not None})
        if event.get("log_path"):
            entry["log"] = event["log_path"]
        if event.get("prompt_path"):
            entry["prompt"] = event["prompt_path"]
    return sorted(merged.values(), key=lambda r: (_epoch(r.get("started_at")) or 0.0, r.get("attempt") or 0))


def _attempt_view(task: Task, record: dict[str, Any], locator: Locator, index: int) -> AttemptView:
    log = locator.file(record.get("log"), task.spec)
    prompt = locator.file(record.get("prompt"), task.spec)
    checks = []
    for check in record.get("checks") or ():
        if isinstance(check, dict):
            output = str(check.get("output_tail") or "")
            checks.append({**check, "output_tail": output[-CHECK_TAIL:]})
    usage = record.get("usage") if isinstance(record.get("usage"), dict) else None
    number = record.get("attempt") if isinstance(record.get("attempt"), int) else index + 1
    return AttemptView(
        anchor=f"a-{task.spec.name if task.spec else ''}-{task.id}-{index}", number=number,
        run_id=record.get("run_id"), backend=record.get("backend"), model=record.get("model"),
        outcome=str(record.get("outcome") or "unknown"), kind=str(record.get("kind") or ""),
        reason=record.get("reason"), started_at=_epoch(record.get("started_at")),
        duration=_number(record.get("duration")), usage=usage,
        final_message=record.get("final_message"), checks=tuple(checks),
        log_link=locator.link(log), log_tail=_tail(log, LOG_TAIL),
        prompt_link=locator.link(prompt), prompt_head=_head(prompt, PROMPT_HEAD),
    )


@dataclass
class RunRecords:
    """The events of a run, as the report log writes them (in memory or read back)."""

    argv: list[str] | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    waits: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("$report_type")
        if kind == "SessionStart":
            self.argv = list(event.get("argv") or [])
            self.started_at = _number(event.get("time"))
        elif kind == "AttemptReport":
            self.attempts.append(event)
        elif kind == "TaskReport" and isinstance(event.get("nodeid"), str):
            self.reports[event["nodeid"]] = event
        elif kind == "RateLimitWait":
            self.waits.append(event)
        elif kind == "SessionFinish":
            self.ended_at = _number(event.get("time"))

    @classmethod
    def read(cls, path: Path) -> RunRecords:
        """A report log file's events; a line that is not JSON is skipped
        (the last one may be cut by a crash)."""
        import json

        records = cls()
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    records.add(event)
        return records


def _spec_records(specs: Iterable[Spec]) -> dict[str, dict[str, Any]]:
    """Each spec's state record, read as ``--status`` reads it."""
    import copy

    records: dict[str, dict[str, Any]] = {}
    for spec in specs:
        record = read_spec_record(state_path(spec), spec.name)  # each task with its history
        records[spec.name] = normalized(copy.deepcopy(record) if isinstance(record, dict) else {})
    return records


def build(tasks: Sequence[Task], run: RunRecords, report_path: Path, root: Path, source: str,
          states: dict[str, dict[str, Any]] | None = None, commits: GitCommits | None = None) -> RunView:
    """The view of ``tasks``: their state records (read now unless given),
    completed by the events of ``run`` (and their ``--git-commit`` commits)."""
    commits = commits or GitCommits(root)
    specs = list(dict.fromkeys(t.spec for t in tasks if t.spec is not None))
    states = _spec_records(specs) if states is None else states
    locator = Locator(report_path.parent, root)
    by_node: dict[str, list[dict[str, Any]]] = {}
    for event in run.attempts:
        by_node.setdefault(str(event.get("nodeid")), []).append(event)
    views = []
    for task in tasks:
        spec_name = task.spec.name if task.spec else ""
        entry = states.get(spec_name, {}).get("tasks", {}).get(task.id)
        entry = entry if isinstance(entry, dict) else {}
        history = entry.get("history") if isinstance(entry.get("history"), list) else []
        records = _merge_attempts(history, by_node.get(task.nodeid, ()))
        report = run.reports.get(task.nodeid)
        outcome = (report or {}).get("outcome") or entry.get("status") or "not_run"
        kind = (report or {}).get("kind") or entry.get("kind")
        reason = (report or {}).get("reason") or (entry.get("last_error") if outcome != "passed" else None)
        views.append(TaskView(
            nodeid=task.nodeid, spec=spec_name, id=task.id, title=task.title,
            parent=f"{task.parent.id} {task.parent.title}" if task.parent is not None else None,
            requirements=tuple(task.metadata.requirements), outcome=str(outcome),
            kind=kind, reason=reason,
            attempts=tuple(_attempt_view(task, r, locator, i) for i, r in enumerate(records)),
            commit=commits.get(sha) if (sha := _commit_sha(report)) else None,
        ))
    return _summarize(views, run, specs, source, states)


def _summarize(views: list[TaskView], run: RunRecords, specs: list[Spec], source: str,
               states: dict[str, dict[str, Any]]) -> RunView:
    import shlex

    counts: dict[str, int] = {}
    for view in views:
        counts[view.outcome] = counts.get(view.outcome, 0) + 1
    # The run the report is of: this one (its events), or the last one the state file records.
    every = sorted(((a, v) for v in views for a in v.attempts if a.started_at is not None),
                   key=lambda pair: (pair[0].started_at or 0.0, pair[0].number))
    if run.argv is not None:
        run_ids = frozenset(str(e.get("run_id")) for e in run.attempts)
    else:
        run_ids = frozenset({str(every[-1][0].run_id)} if every else ())
    attempts = [(a, v) for a, v in every if str(a.run_id) in run_ids]
    started = run.started_at
    if started is None or (attempts and (attempts[0][0].started_at or 0.0) < started):
        started = attempts[0][0].started_at if attempts else None
    agent = sum(a.duration or 0.0 for a, _ in attempts)
    by_backend: dict[str, dict[str, float]] = {}
    for a, _ in attempts:
        row = by_backend.setdefault(a.backend or "unknown", {"attempts": 0, "seconds": 0.0,
                                                             "tokens": 0, "cost_usd": 0.0})
        row["attempts"] += 1
        row["seconds"] += a.duration or 0.0
        usage = a.usage or {}
        row["tokens"] += sum(int(_number(usage.get(k)) or 0) for k in ("input_tokens", "output_tokens"))
        row["cost_usd"] += _number(usage.get("cost_usd")) or 0.0
    waits = _waits(attempts, run)
    ends = [(a.started_at or 0.0) + (a.duration or 0.0) for a, _ in attempts]
    ended = run.ended_at if run.ended_at is not None else max(ends, default=None)
    return RunView(
        specs=tuple(s.nodeid for s in specs),
        command=shlex.join(["seqrun", *run.argv]) if run.argv is not None else None,
        started_at=started, ended_at=ended, generated_at=time.time(), source=source,
        tasks=tuple(views), waits=tuple(waits), counts=counts, agent_seconds=agent,
        rate_limit_seconds=sum(w.seconds for w in waits if w.what == "rate-limit"),
        delay_seconds=sum(w.seconds for w in waits if w.what == "delay"),
        by_backend=by_backend, run_ids=run_ids,
    )


def _waits(attempts: list[tuple[AttemptView, TaskView]], run: RunRecords) -> list[WaitView]:
    """The gaps between one attempt's end and the next one's start: a
    rate-limit wait when the earlier attempt was rate limited (or the run
    logged a wait there), a delay otherwise."""
    logged = [(_number(w.get("time")) or 0.0, w) for w in run.waits]
    waits = []
    for (before, _), (after, task) in zip(attempts, attempts[1:]):
        end = (before.started_at or 0.0) + (before.duration or 0.0)
        gap = (after.started_at or 0.0) - end
        if gap < MIN_GAP or before.run_id != after.run_id:
            continue  # two runs apart is not a wait of either
        limited = before.outcome == "rate_limited" or any(end - 1 <= t <= after.started_at for t, _ in logged)
        reason = next((str(w.get("reason") or "") for t, w in logged if end - 1 <= t <= (after.started_at or 0)),
                      before.reason or "") if limited else "--delay between agent runs"
        waits.append(WaitView(nodeid=task.nodeid, start=end, seconds=gap,
                              what="rate-limit" if limited else "delay", reason=reason))
    return waits


# -- the timeline ---------------------------------------------------------------------------


def timeline(run: RunView, width: float = 1000.0) -> Timeline:
    """One lane per task (tasks without an attempt too), one bar per attempt."""
    lanes = run.tasks
    lane_height = 18.0 if len(lanes) <= 40 else 10.0
    label_width = 90.0
    start = run.started_at or 0.0
    ends = [(a.started_at or 0.0) + (a.duration or 0.0) for t in lanes for a in t.attempts
            if a.started_at is not None and str(a.run_id) in run.run_ids]
    end = max([*ends, run.ended_at or 0.0, start + 1.0])
    span = max(end - start, 1.0)
    scale = (width - label_width - 10) / span
    lane_of = {t.nodeid: i for i, t in enumerate(lanes)}
    bars = []
    for i, task in enumerate(lanes):
        for a in task.attempts:
            if a.started_at is None or str(a.run_id) not in run.run_ids:
                continue  # an earlier run's: listed with its task, not on this run's timeline
            label = (f"{task.id} attempt {a.number}: {a.outcome.replace('_', ' ')}"
                     + (f" [{a.kind}]" if a.kind and a.kind != a.outcome else "")
                     + (f" — {a.reason}" if a.reason else "")
                     + (f" ({a.duration:.1f}s)" if a.duration is not None else ""))
            bars.append(Bar(lane=i, x=label_width + (a.started_at - start) * scale,
                            width=max((a.duration or 0.0) * scale, 3.0), css=f"o-{a.outcome}",
                            label=label, href=f"#{a.anchor}"))
    waits = [Bar(lane=lane_of.get(w.nodeid, 0), x=label_width + (w.start - start) * scale,
                 width=max(w.seconds * scale, 2.0), css=f"w-{w.what}",
                 label=f"{w.what.replace('-', ' ')} wait: {w.seconds:.1f}s" + (f" — {w.reason}" if w.reason else ""),
                 href=None) for w in run.waits]
    step = _tick_step(span)
    ticks = tuple((label_width + k * step * scale, _duration(k * step)) for k in range(int(span // step) + 1))
    return Timeline(width=width, height=lane_height * max(len(lanes), 1) + 18, lane_height=lane_height,
                    label_width=label_width, lanes=lanes, bars=tuple(bars), waits=tuple(waits), ticks=ticks)


def _tick_step(span: float) -> float:
    for step in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400):
        if span / step <= 10:
            return float(step)
    return 86400.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _clock(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch is not None else "-"


# -- rendering ------------------------------------------------------------------------------


def render(run: RunView) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("seqrun.reports", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["duration"] = _duration
    env.filters["clock"] = _clock
    template = env.get_template("report.html.j2")
    return template.render(run=run, timeline=timeline(run), failed_outcomes=sorted(FAILED_OUTCOMES))


def write(path: Path, run: RunView) -> None:
    atomic_write(path, render(run).encode("utf-8", "replace"))


# -- the run's report (registered by seqrun.reports.htmlplugin when --html is given) ----------


class HtmlReport:
    """Keeps the run's events and rewrites the report after each task."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.run = RunRecords(argv=list(config.argv))
        self.tasks: list[Task] = []
        self.commits = GitCommits(config.rootpath or config.invocation_dir)

    def write(self) -> None:
        root = self.config.rootpath or self.config.invocation_dir
        write(self.path, build(self.tasks, self.run, self.path, root, source="this run", commits=self.commits))

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        self.run.started_at = time.time()

    @hookimpl
    def seqrun_collection_finish(self, session: Session) -> None:
        self.tasks = list(session.items)

    @hookimpl
    def seqrun_runtest_logattempt(self, attempt: Attempt) -> None:
        from seqrun.reports.reportlog import attempt_to_dict

        self.run.attempts.append(attempt_to_dict(attempt))

    @hookimpl
    def seqrun_rate_limit_wait(self, item: Task, seconds: float, reset_at: float | None, reason: str) -> None:
        self.run.waits.append({"nodeid": item.nodeid, "seconds": seconds, "reason": reason, "time": time.time()})

    @hookimpl(trylast=True)  # after the state file has recorded the task
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        from seqrun.reports.reportlog import report_to_dict

        self.run.reports[report.nodeid] = report_to_dict(report)
        self.write()

    @hookimpl(trylast=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        self.run.ended_at = time.time()
        self.write()

    @hookimpl
    def seqrun_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Config) -> None:
        if getattr(terminalreporter, "verbosity", 0) >= 0:
            terminalreporter.rule(f"generated html report: {self.path}", char="-")
