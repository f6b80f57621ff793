"""The terminal reporter: collection listing, one line per task, the summary.

Before the first agent starts it shows ``seqrun_report_header``'s lines (the
state plugin's ``resuming: 4 done, 1 interrupted (3.1, attempt 2)``). The
summary is pytest's: the FAILURES section (``--tb``, one block per failed,
error or halted task with its last words and the command that reruns it, see
:mod:`seqrun.reports.failures`), the ``-r`` short summary, ``--durations``,
``seqrun_terminal_summary``'s sections, and the counts.

Two ways of writing, chosen once per run (like pytest's ``--color``):

* **plain** — stdout is not a terminal, ``NO_COLOR`` is set, ``TERM=dumb`` or
  ``--color no``: one line per event (``collected N tasks``, ``RUN ...``,
  ``WAIT ...``, ``PASSED  <nodeid> ...``, the ``== ... ==`` rules) and not a
  single escape code. Scripts and the test-suite read this format.
* **rich** — colour is on (a terminal, or ``--color yes``): the same lines,
  coloured, through :mod:`rich`. On a real terminal a transient
  :class:`rich.live.Live` area under them shows the running task (node id,
  title, backend, attempt, elapsed time, why the previous attempt did not
  pass when this one is a rerun, the last line of its output read from
  the tail of its log, the ``tmux attach`` hint — ``switch-client`` when
  seqrun runs inside tmux) and the countdown of a ``--delay`` or
  rate-limit wait. rich's own refresh thread redraws it four
  times a second, so the countdown moves while the runner sleeps.

:mod:`rich` is imported only on the coloured path, the first time something is
written in colour: ``seqrun --co -q`` never pays for it. Nor for the live
area's classes (:mod:`seqrun.reports.live`, imported when the first task
starts) or the FAILURES section's (imported by the summary of a run).

Anything that came from a tasks file or an agent goes through
:func:`printable` first, so a title cannot move the cursor or retitle the
terminal; with rich it is printed as a :class:`rich.text.Text`, never parsed as
markup, so ``[red]x[/red]`` in a title prints as those characters.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pluggy

from seqrun.config import Config, config_warnings_key
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.nodes import Task, TaskKind, TaskState, Unit
from seqrun.text import oneline, printable
from seqrun.outcome import Kind, Outcome
from seqrun.runner import tmux_session_key

if TYPE_CHECKING:
    from seqrun.outcome import Attempt, TaskReport
    from seqrun.main import Session
    from seqrun.reports.live import LiveStatus, LiveView

#: Escape sequences first (so their parameters go with them), then any other
#: C0/C1 control character. Newline is kept: callers decide about lines.

#: outcome -> (category, letter, word, colour): the defaults of
#: ``seqrun_report_teststatus``.
LETTERS = {
    Outcome.PASSED: ("passed", ".", "PASSED", "green"),
    Outcome.FAILED: ("failed", "F", "FAILED", "red"),
    Outcome.ERROR: ("error", "E", "ERROR", "red"),
    Outcome.HALTED: ("halted", "H", "HALTED", "magenta"),
    Outcome.INTERRUPTED: ("interrupted", "!", "INTERRUPTED", "yellow"),
    Outcome.SKIPPED: ("skipped", "s", "SKIPPED", "yellow"),
    Outcome.RATE_LIMITED: ("rate_limited", "R", "RATE-LIMITED", "yellow"),
}
#: ``--tb`` values, most to least (:mod:`seqrun.reports.failures` writes the section).
STYLES = ("long", "short", "line", "no")
DEFAULT_STYLE = "short"
#: Order of the counts in the final line, as pytest puts failures first.
_COUNT_ORDER = ("failed", "error", "halted", "interrupted", "passed", "skipped", "rate_limited", "deselected")
#: ``-r`` letter of each outcome.
_REPORT_CHARS = {Outcome.FAILED: "f", Outcome.ERROR: "E", Outcome.HALTED: "H", Outcome.INTERRUPTED: "f",
                 Outcome.SKIPPED: "s", Outcome.PASSED: "p"}


def usage_totals(reports: Iterable[TaskReport]) -> tuple[int, float]:
    """Total tokens and cost (USD) of the reports that carry usage.

    In ``--dispatch unit`` every member of a unit carries the usage of the one
    agent run they shared: each run (its ``dispatch_id``) is counted once.
    """
    tokens, cost = 0, 0.0
    seen: set[str] = set()
    for report in reports:
        if report.usage is None:
            continue
        if report.dispatch_id:
            if report.dispatch_id in seen:
                continue
            seen.add(report.dispatch_id)
        tokens += report.usage.total_tokens or 0
        cost += report.usage.cost_usd or 0.0
    return tokens, cost


def _usage_suffix(reports: Iterable[TaskReport]) -> str:
    tokens, cost = usage_totals(reports)
    parts = []
    if tokens:
        parts.append(f"{tokens:,} tokens")
    if cost:
        parts.append(f"${cost:.2f}")
    return f" ({', '.join(parts)})" if parts else ""


def format_duration(seconds: float) -> str:
    """``12.3s``, or ``4000.0s (1:06:40)`` past a minute, as pytest writes it."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{seconds:.1f}s ({hours}:{rest // 60:02d}:{rest % 60:02d})"


def _state_label(task: Task) -> str:
    if task.kind is TaskKind.GROUP:
        return "group"
    label = task.state.value
    if task.checklist:
        return f"checklist, {label}"
    return f"optional, {label}" if task.optional else label


def _size(path: Any) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def want_color(mode: str, out: IO[str]) -> bool:
    """``--color``: yes forces colour; auto means a terminal without ``NO_COLOR``."""
    if mode == "yes":
        return True
    if mode == "no":
        return False
    return _isatty(out) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


# -- options and registration -------------------------------------------------


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.getgroup("reporting", order=30, common=True)  # type: ignore[attr-defined]
    group.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    group.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    group.add_argument("-r", dest="reportchars", default="fEH", metavar="CHARS",
                       help="short summary of: f failed, H halted, s skipped, p passed, "
                       "a all but passed, A all (default fEH)")
    group.add_argument("--tb", dest="tb", choices=STYLES, default=DEFAULT_STYLE,
                       help="the FAILURES section: long, short (default: the last lines of the "
                       "agent's final message and of a failed verification), line (one line per "
                       "task) or no")
    group.add_argument("--durations", type=int, default=None, metavar="N",
                       help="show the N slowest tasks (0: all)")
    group.add_argument("--color", choices=("yes", "no", "auto"), default="auto",
                       help="colour the output (default auto: on a terminal without NO_COLOR)")


@hookimpl(trylast=True)
def seqrun_configure(config: Config) -> None:
    reporter = TerminalReporter(config)
    config.pluginmanager.register(reporter, "terminalreporter")


# -- the reporter -----------------------------------------------------------------


class TerminalReporter:
    """Writes everything a person reads on stdout during a run."""

    def __init__(self, config: Config, out: IO[str] | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.verbosity: int = config.option.verbose - config.option.quiet
        self.color = want_color(config.option.color, self.out)
        self.interactive = (self.color and _isatty(self.out)
                            and not getattr(config.option, "echo_output", False))
        """Draw the live area: a coloured real terminal the agent does not echo to (``-s``)."""
        self.reports: list[TaskReport] = []
        self.stats: dict[str, list[TaskReport]] = {}
        self.deselected = 0
        self.total = 0
        self.started = time.monotonic()
        self._status: LiveStatus | None = None
        self._console: Any = None
        self._live: LiveView | None = None

    @hookimpl
    def seqrun_detached(self, session: Session, log_path: Path) -> None:
        # stdout is a log file now: plain text, no live area.
        self.color = want_color(self.config.option.color, self.out)
        self.interactive = False
        self._console = None
        self.line(f"collected {self.total} task{'s' if self.total != 1 else ''}; "
                  f"running in the background as pid {os.getpid()}")

    def live_status(self) -> LiveStatus:
        """What the live area shows, made (and :mod:`seqrun.reports.live`
        imported) the first time a task starts: a listing never needs it."""
        if self._status is None:
            from seqrun.reports.live import LiveStatus

            config = self.config
            self._status = LiveStatus(lambda: config.stash.get(tmux_session_key, None))
        return self._status

    # -- writing ----------------------------------------------------------------

    def rich_console(self) -> Any:
        """The rich console (created, and rich imported, on first use).

        A method, not a property: pluggy looks at every attribute of a plugin
        when it registers it, and that must not import rich."""
        if self._console is None:
            from rich.console import Console

            options: dict[str, Any] = dict(file=self.out, force_terminal=True, no_color=False,
                                           highlight=False, markup=False, emoji=False)
            console = Console(**options)
            if console.color_system is None:  # --color yes with TERM unset or dumb
                console = Console(color_system="standard", **options)
            self._console = console
        return self._console

    @property
    def width(self) -> int:
        return self._console.width if self._console is not None else 80

    def write(self, text: str, color: str | None = None) -> None:
        """Write ``text`` (no newline); ``color`` is a rich style, ignored in plain mode."""
        if self._console is None and not (color and self.color):
            self.out.write(text)
            return
        from rich.text import Text

        self.rich_console().print(Text(text, style=color or ""), end="", soft_wrap=True)

    def line(self, text: str = "", color: str | None = None) -> None:
        """Write one line; while the live area is shown it goes above it."""
        self.write(text + "\n", color)
        self.out.flush()

    def rule(self, title: str, color: str | None = None, char: str = "=") -> None:
        """A separator with a title in the middle: ``==== title ====``."""
        title = f" {title} "
        side = max(2, (self.width - len(title)) // 2)
        self.line(f"{char * side}{title}{char * side}", color)

    # -- the live area ----------------------------------------------------------------

    def _start_live(self) -> None:
        if self.interactive and self._live is None:
            from seqrun.reports.live import LiveView

            self._live = LiveView(self.rich_console(), self.live_status())
            self._live.start()

    def _refresh_live(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    # -- collection -----------------------------------------------------------------

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        if self.verbosity < 0:
            return
        for lines in self.config.hook.seqrun_report_session_header(config=self.config):
            for line in [lines] if isinstance(lines, str) else lines:
                self.line(printable(line))

    @hookimpl
    def seqrun_deselected(self, items: list[Task]) -> None:
        self.deselected += len(items)

    @hookimpl
    def seqrun_collection_finish(self, session: Session) -> None:
        warnings = [w for spec in session.specs for w in spec.warnings]
        warnings += self.config.stash.get(config_warnings_key, [])
        limit = None if self.verbosity > 0 else 10
        for w in warnings[:limit]:
            print(f"WARNING {printable(str(w))}", file=sys.stderr)
        if limit is not None and len(warnings) > limit:
            print(f"WARNING ... and {len(warnings) - limit} more (-v shows all)", file=sys.stderr)
        self.total = len(session.items)
        if self.config.option.collectonly:
            return
        if self.verbosity >= 0:
            n = len(session.items)
            extra = f" / {self.deselected} deselected" if self.deselected else ""
            self.line(f"collected {n} task{'s' if n != 1 else ''}{extra}", "bold")

    @hookimpl
    def seqrun_report_collectionfinish(self, session: Session) -> bool:
        if self.verbosity < 0:
            # One write, not one per task: 5,000 node ids in a few milliseconds.
            listing = "".join([f"{item.nodeid}\n" for item in session.items])
            if not listing.replace("\n", "").isprintable():
                # Maybe a control character (or only a space that is not " "):
                # each id made printable on its own. Else each id is as printable makes it.
                listing = "".join([f"{printable(item.nodeid)}\n" for item in session.items])
            self.write(listing)
        else:
            # The selected tasks and their parents: each path walked once.
            selected: set[Task] = set()
            for item in session.items:
                node: Task | None = item
                while node is not None and node not in selected:
                    selected.add(node)
                    node = node.parent
            for spec in session.specs:
                shown = [t for t in spec.iter_tasks() if t in selected]
                if not shown:
                    continue
                self.line(f"<Spec {printable(spec.name)} ({printable(spec.nodeid)})>")
                for task in shown:
                    depth = sum(1 for _ in task.ancestors()) + 1
                    kind = "Group" if task.kind is TaskKind.GROUP else "Task"
                    notes = self.config.hook.seqrun_collect_item_note(item=task, config=self.config)
                    note = "".join(f" {oneline(n)}" for n in notes if n)
                    self.line(f"{'  ' * depth}<{kind} {printable(task.id)} [{_state_label(task)}] "
                              f"{oneline(task.title)}>{note}")
        n = len(session.items)
        done = sum(1 for t in session.items if t.state is TaskState.DONE)
        optional = sum(1 for t in session.items if t.optional)
        extra = f" / {self.deselected} deselected" if self.deselected else ""
        elapsed = time.monotonic() - self.started
        if self.verbosity < 0:
            self.line()
        self.line(f"{n} task{'s' if n != 1 else ''} collected ({done} done, {optional} optional)"
                  f"{extra} in {elapsed:.2f}s")
        return True

    # -- running ------------------------------------------------------------------------

    @hookimpl(wrapper=True)
    def seqrun_runtestloop(self, session: Session) -> Generator[None, Any, Any]:
        """Show the live area while tasks run; take it down however the loop ends."""
        self.report_header(session)
        self._start_live()
        try:
            return (yield)
        finally:
            self._stop_live()

    @hookimpl
    def seqrun_runtest_logstart(self, nodeid: str, item: Task) -> None:
        self.live_status().upcoming = (printable(nodeid), oneline(item.title))

    def report_header(self, session: Session) -> None:
        """``seqrun_report_header``'s lines (what an earlier run left), before the first agent."""
        if self.verbosity < 0:
            return
        for found in self.config.hook.seqrun_report_header(session=session):
            for text in [found] if isinstance(found, str) else found:
                self.line(oneline(text))

    @hookimpl
    def seqrun_runtest_attempt(self, item: Task, unit: Unit, attempt: int, log_path: Any, backend: str) -> None:
        before = unit.last_attempt
        previous = ""
        if before is not None and before.outcome is not Outcome.PASSED:
            why = f" - {oneline(before.reason)}" if before.reason else ""
            previous = f"previous attempt {before.number}: {before.kind.value}{why}"
        from seqrun.reports.live import Running

        status = self.live_status()
        status.waiting = None
        status.running = Running(
            nodeid=printable(item.nodeid), title=oneline(item.title), backend=printable(backend),
            attempt=attempt, started=time.monotonic(),
            log_path=Path(log_path) if log_path else None, log_start=_size(log_path),
            position=f"[{len(self.reports) + 1}/{self.total}]" if self.total else "",
            previous=previous,
        )
        self._refresh_live()
        if self.verbosity < 0 or (self._live is not None and self.verbosity <= 0):
            return  # the live area shows it
        again = f" (attempt {attempt})" if attempt > 1 else ""
        self.line(f"RUN     {printable(item.nodeid)} {oneline(item.title)[:60]} [{printable(backend)}]{again}")
        if previous and not unit.attempts:
            # An earlier run's attempt: no line of this run said why it failed.
            self.line(f"        {previous}", "yellow")
        tmux = self.config.stash.get(tmux_session_key, None)
        if tmux and self.verbosity > 0:
            from seqrun.terminal.tmux import watch_command

            self.line(f"        watch: {watch_command(tmux)}")
        if self.verbosity > 0:
            self.line(f"        log: {log_path}")

    @hookimpl
    def seqrun_runtest_logattempt(self, item: Task, attempt: Attempt) -> None:
        # Every attempt that did not pass gets its own line, before any retry
        # starts: the morning's reader sees each one, not only the last.
        if self.verbosity < 0 or attempt.outcome is Outcome.PASSED:
            return
        color = LETTERS.get(attempt.outcome, LETTERS[Outcome.FAILED])[3]
        why = f" - {oneline(attempt.reason)}" if attempt.reason else ""
        self.line(f"  attempt {attempt.number} of {printable(item.nodeid)}: {attempt.outcome.value} "
                  f"[{attempt.kind.value}] ({attempt.duration:.1f}s){why}", color)

    @hookimpl
    def seqrun_wait(self, seconds: float, reason: str, kind: str) -> None:
        # The runner sleeps right after this returns: the refresh thread
        # draws the countdown from the deadline.
        from seqrun.reports.live import Waiting

        self.live_status().waiting = Waiting(time.monotonic() + seconds, oneline(reason), kind)
        self._refresh_live()
        if self.verbosity < 0 or seconds < 1:
            return
        if self._live is not None and kind != "rate-limit":
            return  # the countdown is enough; a rate limit is worth a line
        self.line(f"WAIT    {seconds:.0f}s: {oneline(reason)}", "yellow")

    def teststatus(self, report: TaskReport) -> tuple[str, str, str]:
        """``(category, letter, word)``: a plugin's ``seqrun_report_teststatus`` or the default."""
        found = self.config.hook.seqrun_report_teststatus(report=report, config=self.config)
        if found:
            return found
        category, letter, word, _ = LETTERS[report.outcome]
        return category, letter, word

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        status = self.live_status()
        status.running = None
        status.waiting = None
        status.upcoming = None
        self._refresh_live()
        self.reports.append(report)
        category, _, word = self.teststatus(report)
        self.stats.setdefault(category, []).append(report)
        if self.verbosity < 0 and report.outcome is Outcome.SKIPPED:
            return
        if report.kind is Kind.ALREADY_DONE and self.verbosity <= 0:
            return
        color = LETTERS[report.outcome][3]
        runs = len(report.attempts)
        took = (f" ({report.duration:.1f}s{f', {runs} attempts' if runs > 1 else ''})"
                if report.duration else "")
        why = f" - {oneline(report.reason)}" if report.reason else ""
        self.line(f"{word:<7} {printable(report.nodeid)} {oneline(report.title)[:60]}{took}{why}", color)

    # -- summary ---------------------------------------------------------------------------

    @hookimpl
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        self._stop_live()
        if self.config.option.collectonly or not self.reports and exitstatus >= 3:
            return
        self.summary_failures()
        self.short_summary()
        self.durations()
        self.config.hook.seqrun_terminal_summary(terminalreporter=self, exitstatus=exitstatus,
                                                 config=self.config)
        if session.shouldstop and self.verbosity >= 0:
            self.line(f"stopped: {oneline(session.shouldstop)}", "yellow")
        color = "red" if exitstatus not in (0, 5) else "green"
        self.rule(f"{self.summary_stats()} in {format_duration(time.monotonic() - self.started)}"
                  f"{_usage_suffix(self.reports)}", color)

    def summary_stats(self) -> str:
        """``1 failed, 2 passed, 3 deselected``."""
        counts = {category: len(reports) for category, reports in self.stats.items()}
        if self.deselected:
            counts["deselected"] = self.deselected
        order = [c for c in _COUNT_ORDER if c in counts] + [c for c in counts if c not in _COUNT_ORDER]
        return ", ".join(f"{counts[c]} {c}" for c in order) or "no tasks ran"

    def summary_failures(self) -> None:
        """The FAILURES section (``--tb``): a block per failed, halted or error task."""
        from seqrun.reports.failures import failure_block, failure_line, shown_reports

        style = self.config.option.tb
        shown = [r for r in shown_reports(self.reports) if style != "no"]
        if not shown:
            return
        self.rule("FAILURES", "red")
        for report in shown:
            word, color = self.teststatus(report)[2], LETTERS[report.outcome][3]
            if style == "line":
                self.line(failure_line(report, word), color)
                continue
            self.rule(printable(report.nodeid), "red", char="_")
            for line in failure_block(report, word, color, style, self.config.invocation_dir):
                self.line(line.text, line.style or None)

    def short_summary(self) -> None:
        """The ``-r`` section: one line per reported task of the chosen outcomes."""
        chars = self.config.option.reportchars
        if "a" in chars:
            chars += "fEHs"
        if "A" in chars:
            chars += "fEHsp"
        shown = [r for r in self.reports if _REPORT_CHARS.get(r.outcome, "") in chars
                 and r.kind is not Kind.ALREADY_DONE]
        if not shown:
            return
        self.rule("short task summary info", char="=")
        for r in shown:
            log = f" (log: {r.log_path})" if r.log_path and r.outcome is not Outcome.PASSED else ""
            self.write(self.teststatus(r)[2], LETTERS[r.outcome][3])
            self.line(f" {printable(r.nodeid)} - {oneline(r.reason or r.title)}{log}")

    def durations(self) -> None:
        """``--durations N``: the N slowest tasks (agent time), slowest first."""
        n = self.config.option.durations
        if n is None:
            return
        ran = sorted((r for r in self.reports if r.duration), key=lambda r: r.duration, reverse=True)
        self.rule(f"slowest {n or 'all'} durations", char="=")
        for r in ran[: n or None]:
            self.line(f"{r.duration:8.2f}s {printable(r.nodeid)}")


#: The live area's names, importable from here as before (see the module docstring).
_LIVE = frozenset({"Running", "Waiting", "LiveStatus", "LiveView", "last_output_line", "describe_json_line"})


__getattr__ = moved_names(__name__, "seqrun.reports.live", _LIVE)
