"""JUnit XML reports (``--junitxml PATH``), for GitLab, Jenkins and GitHub actions.

The output conforms to ``junit-10.xsd`` (the schema pytest and Jenkins' xunit
plugin validate against) with the default ``--junit-family xunit2``::

    <testsuites name="seqrun" tests=".." failures=".." errors=".." time="..">
      <testsuite name="<spec name>" tests failures errors skipped time timestamp hostname>
        <properties>
          <property name="backend" value="claude"/>        (every backend used, comma-separated)
          <property name="model" value="..."/>             (when --model is set)
          <property name="attempts" value="3"/>            (agent processes started)
          <property name="input_tokens" value="..."/>      (when the CLI reported tokens)
          <property name="output_tokens" value="..."/>
          <property name="cost_usd" value="..."/>          (when the CLI reported a cost)
          <property name="rate_limit_waits" value="1"/>
          <property name="rate_limit_wait_seconds" value="61.0"/>
        </properties>
        <testcase classname="<spec name>" name="<task id> <title>" time="12.345">
          <failure type="no-marker" message="<reason>">reason, details, final message</failure>
          <system-out>header lines, then the tail of the agent's log</system-out>
        </testcase>
      </testsuite>
    </testsuites>

One ``<testsuite>`` per spec that reported tasks, one ``<testcase>`` per task
report (deselected tasks are not written, as in pytest). Suite figures add up
each *dispatch* once: in ``--dispatch unit`` every subtask carries its parent
run's attempts and usage, which are counted a single time per log file.

Outcomes:

* passed: no child element, or — when earlier attempts of this run failed —
  one ``<flakyFailure type=kind message=reason>`` per failed attempt, with a
  ``<stackTrace>`` (the reason, the final message) and a ``<system-out>``
  (the tail of that attempt's own log), as Maven Surefire and
  pytest-rerunfailures write a test that passed on a rerun;
* failed: ``<failure type=kind message=reason>``, and one ``<rerunFailure>``
  per earlier failed attempt of this run; the type is the report's
  :class:`~seqrun.outcome.Kind` (``no-marker``, ``agent-error``, ``quota``,
  ``timeout``, ``idle-timeout``, ``verification``, ``killed``,
  ``backend-error``), never read from the reason text;
* error (a plugin's setup or teardown raised, or the agent could not be
  started): ``<error type="setup-error|teardown-error|call-error">``;
* interrupted (Ctrl-C or a signal during the agent run): ``<error type="interrupted">``;
* halted: ``<error type="halt" message=reason>``;
* skipped: ``<skipped type=... message=reason>``, the type one of ``optional``,
  ``already-done``, ``dependency``, ``not-reached`` or ``skip``.

Jenkins shows ``flakyFailure``/``rerunFailure``; GitLab and the GitHub report
actions ignore them (they show the test's final result), which is why every
attempt is also listed in ``<system-out>``.

``<system-out>`` of a task that ran starts with ``key: value`` lines
(``task``, ``outcome``, ``reason``, ``backend``, ``model``, ``attempts``,
``rate_limit_waits``, ``tokens``, ``cost_usd``, ``log``) and ends with the
last :data:`TAIL_LINES` lines (at most :data:`TAIL_BYTES` bytes) of the
agent's log.

``--junit-family xunit1`` adds ``file`` (the tasks file, relative to the
folder seqrun was started in) and ``line`` to each ``<testcase>``: GitLab's
"copy failed tests" and GitHub annotation actions read them, but junit-10.xsd
does not allow them, exactly as pytest's ``junit_family=xunit1``.

Nothing an agent prints or a title holds can make the file ill-formed: logs
are read as bytes and decoded with ``errors="replace"``, terminal escape
sequences are removed, characters XML 1.0 forbids (control characters other
than tab/newline/carriage return, lone surrogates, U+FFFE/U+FFFF) are
stripped, and ElementTree escapes the rest (``]]>`` included; no CDATA). The
file is written atomically when the session finishes, creating its folder.

The options and the hooks that register :class:`LogXML` are
:mod:`seqrun.reports.junitxmlplugin`'s: this module is imported only with ``--junitxml``.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrun.atomicfile import atomic_write
from seqrun.config import Config
from seqrun.hookspec import hookimpl
from seqrun.nodes import Spec, Task
from seqrun.outcome import Attempt, Outcome, TaskReport, Usage
from seqrun.text import read_end

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from seqrun.main import Session

TAIL_LINES = 200
TAIL_BYTES = 64 * 1024
MESSAGE_CHARS = 1000
"""Longest ``message`` attribute; the element text holds the rest."""
FINAL_MESSAGE_CHARS = 8000

# Characters XML 1.0 does not allow (https://www.w3.org/TR/xml/#charsets), lone
# surrogates included, are removed. Written as the small class of what is
# forbidden: the negation of the allowed ranges takes 6 ms to compile, at every start.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


def xml_safe(text: str) -> str:
    """``text`` without escape sequences and characters XML 1.0 forbids."""
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _ILLEGAL_XML.sub("", text)


def read_tail(path: str | os.PathLike[str], max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str | None:
    """The last lines of a log file as text, or None when it cannot be read.

    Read as bytes: a cut through a multi-byte character, or bytes that are not
    UTF-8 at all, become U+FFFD instead of an error.
    """
    end = read_end(path, max_bytes)
    if end is None:
        return None
    data, size = end
    if size > max_bytes and b"\n" in data:
        data = data.split(b"\n", 1)[1]  # drop the partial first line
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines[-max_lines:])


def _fmt_time(seconds: float) -> str:
    # junit-10.xsd's SUREFIRE_TIME: digits, at most three decimals, no exponent.
    return f"{max(0.0, seconds):.3f}"


def _timestamp(epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


@dataclass
class _Suite:
    """What one spec's ``<testsuite>`` is built from."""

    name: str
    spec: Spec | None
    reports: list[TaskReport] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None


def _dispatches(reports: list[TaskReport]) -> list[TaskReport]:
    """One report per agent run: subtasks of one ``--dispatch unit`` run share
    its attempts and usage, which must be added up once."""
    seen: set[str] = set()
    unique = []
    for report in reports:
        if report.dispatch_id:
            if report.dispatch_id in seen:
                continue
            seen.add(report.dispatch_id)
        unique.append(report)
    return unique


class LogXML:
    """Collects task reports during the session and writes the XML at its end."""

    def __init__(self, config: Config, path: Path, family: str, suites_name: str) -> None:
        self.config = config
        self.path = path
        self.family = family
        self.suites_name = suites_name
        self.session: Session | None = None
        self.started = time.time()
        self.reports: dict[str, TaskReport] = {}
        self.suite_started: dict[str, float] = {}
        self.suite_finished: dict[str, float] = {}
        self.write_error: str | None = None

    # -- recording ----------------------------------------------------------------

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        self.session = session
        self.started = time.time()

    @hookimpl
    def seqrun_runtest_logstart(self, nodeid: str, item: Task) -> None:
        if item.spec is not None:
            self.suite_started.setdefault(item.spec.nodeid, time.time())

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        # A task reported twice keeps its first place and its last result.
        self.reports[report.nodeid] = report
        self.suite_finished[report.spec_nodeid] = time.time()

    # -- writing --------------------------------------------------------------------

    @hookimpl(tryfirst=True)
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        # tryfirst: written before the terminal summary names the file.
        data = self.to_bytes(session)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data)
        except OSError as exc:
            self.write_error = f"cannot write --junitxml file {self.path}: {exc.strerror or exc}"
            print(f"ERROR: {self.write_error}", file=sys.stderr)

    @hookimpl(trylast=True, specname="seqrun_sessionfinish")
    def fail_if_not_written(self, session: Session, exitstatus: int) -> None:
        # The run must not look green when its report is missing.
        if self.write_error:
            session.exitstatus = max(int(session.exitstatus), 3)

    @hookimpl
    def seqrun_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Config) -> None:
        if getattr(terminalreporter, "verbosity", 0) >= 0 and not self.write_error:
            terminalreporter.rule(f"generated xml file: {self.path}", char="-")

    def suites(self, session: Session | None) -> list[_Suite]:
        specs = {spec.nodeid: spec for spec in (session.specs if session else [])}
        suites: dict[str, _Suite] = {}
        for report in self.reports.values():
            key = report.spec_nodeid
            suite = suites.get(key)
            if suite is None:
                spec = specs.get(key)
                suite = suites[key] = _Suite(spec.name if spec else key, spec)
                suite.started = self.suite_started.get(key)
                suite.finished = self.suite_finished.get(key)
            suite.reports.append(report)
        if not suites:
            # Nothing ran (no tasks, usage error): still a valid, empty report.
            for key, spec in specs.items():
                suites[key] = _Suite(spec.name, spec)
        return list(suites.values())

    def to_bytes(self, session: Session | None) -> bytes:
        import xml.etree.ElementTree as ET  # only when a report is written: startup time
        root = self.build(session)
        ET.indent(root, space="  ")
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

    def build(self, session: Session | None) -> ET.Element:
        import xml.etree.ElementTree as ET  # only when a report is written: startup time
        now = time.time()
        root = ET.Element("testsuites", name=xml_safe(self.suites_name))
        totals = {"tests": 0, "failures": 0, "errors": 0}
        for suite in self.suites(session):
            node = self._suite_node(suite, now)
            root.append(node)
            for key in totals:
                totals[key] += int(node.get(key, "0"))
        for key, value in totals.items():
            root.set(key, str(value))
        root.set("time", _fmt_time(now - self.started))
        return root

    def _suite_node(self, suite: _Suite, now: float) -> ET.Element:
        import xml.etree.ElementTree as ET  # only when a report is written: startup time
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        cases = []
        by_id = suite.spec.by_id() if suite.spec else {}
        for report in suite.reports:
            counts["tests"] += 1
            if report.outcome in (Outcome.HALTED, Outcome.ERROR, Outcome.INTERRUPTED):
                counts["errors"] += 1
            elif report.outcome is Outcome.SKIPPED:
                counts["skipped"] += 1
            elif report.outcome is not Outcome.PASSED:
                counts["failures"] += 1
            cases.append(self._case_node(suite, report, by_id.get(report.task_id)))
        started = suite.started if suite.started is not None else self.started
        finished = suite.finished if suite.finished is not None else now
        node = ET.Element("testsuite", name=xml_safe(suite.name))
        for key, value in counts.items():
            node.set(key, str(value))
        node.set("time", _fmt_time(finished - started))
        node.set("timestamp", _timestamp(started))
        node.set("hostname", xml_safe(os.uname().nodename))
        node.append(self._properties(suite))
        node.extend(cases)
        return node

    def _properties(self, suite: _Suite) -> ET.Element:
        import xml.etree.ElementTree as ET  # only when a report is written: startup time
        runs = _dispatches([r for r in suite.reports if r.dispatched])
        backends = sorted({r.backend for r in runs if r.backend})
        model = self.config.getoption("model") or next((r.model for r in runs if r.model), None)
        usage = Usage()
        for r in runs:
            if r.usage is not None:
                usage = usage + r.usage
        props: list[tuple[str, str]] = [
            ("backend", ",".join(backends) or str(self.config.getoption("backend") or "")),
        ]
        if model:
            props.append(("model", model))
        props.append(("attempts", str(sum(len(r.attempts) for r in runs))))
        if usage.input_tokens is not None:
            props.append(("input_tokens", str(usage.input_tokens)))
        if usage.output_tokens is not None:
            props.append(("output_tokens", str(usage.output_tokens)))
        if usage.cost_usd is not None:
            props.append(("cost_usd", f"{usage.cost_usd:.6f}".rstrip("0").rstrip(".")))
        props.append(("rate_limit_waits", str(sum(r.rate_limit_waits for r in runs))))
        props.append(("rate_limit_wait_seconds", f"{sum(r.rate_limit_wait_seconds for r in runs):.1f}"))
        node = ET.Element("properties")
        for name, value in props:
            ET.SubElement(node, "property", name=name, value=xml_safe(value))
        return node

    def _case_node(self, suite: _Suite, report: TaskReport, task: Task | None) -> ET.Element:
        import xml.etree.ElementTree as ET  # only when a report is written: startup time
        node = ET.Element("testcase", classname=xml_safe(suite.name),
                          name=xml_safe(f"{report.task_id} {report.title}".strip()),
                          time=_fmt_time(report.duration))
        if self.family == "xunit1" and suite.spec is not None:
            node.set("file", xml_safe(_relative(suite.spec.tasks_file, self.config.invocation_dir)))
            if task is not None:
                node.set("line", str(task.line))
        message = xml_safe(report.reason)[:MESSAGE_CHARS]
        if report.outcome is Outcome.SKIPPED:
            ET.SubElement(node, "skipped", type=report.kind.value, message=message)
            return node
        if report.outcome is Outcome.HALTED:
            child = ET.SubElement(node, "error", type="halt", message=message)
            child.text = xml_safe(self._details(report))
        elif report.outcome in (Outcome.ERROR, Outcome.INTERRUPTED):
            child = ET.SubElement(node, "error", type=report.kind.value, message=message)
            child.text = xml_safe(self._details(report))
        elif report.outcome is not Outcome.PASSED:
            child = ET.SubElement(node, "failure", type=report.kind.value, message=message)
            child.text = xml_safe(self._details(report))
        earlier = "flakyFailure" if report.outcome is Outcome.PASSED else "rerunFailure"
        for attempt in report.failed_attempts:
            node.append(self._attempt_node(earlier, attempt))
        out = ET.SubElement(node, "system-out")
        out.text = xml_safe(self._system_out(report))
        return node

    @staticmethod
    def _attempt_node(tag: str, attempt: Attempt) -> ET.Element:
        """A failed attempt before the last one, as Surefire's rerun elements."""
        import xml.etree.ElementTree as ET  # only when a report is written: startup time
        node = ET.Element(tag, type=attempt.kind.value,
                          message=xml_safe(f"attempt {attempt.number}: {attempt.reason}")[:MESSAGE_CHARS])
        trace = [f"attempt {attempt.number} ({attempt.kind.value}, {attempt.duration:.1f}s): {attempt.reason}"]
        if attempt.verdict.longrepr:
            trace.append(attempt.verdict.longrepr)
        if attempt.final_message_tail:
            trace.append(f"----- final message -----\n{attempt.final_message_tail}")
        if attempt.log_path:
            trace.append(f"log: {attempt.log_path}")
        ET.SubElement(node, "stackTrace").text = xml_safe("\n".join(trace))
        tail = read_tail(attempt.log_path) if attempt.log_path else None
        if tail:
            ET.SubElement(node, "system-out").text = xml_safe(tail)
        return node

    @staticmethod
    def _details(report: TaskReport) -> str:
        parts = [report.reason or report.outcome.value]
        if report.longrepr:
            parts.append(report.longrepr)
        for title, text in report.sections:
            parts.append(f"----- {title} -----\n{text}")
        if report.final_message:
            final = report.final_message
            if len(final) > FINAL_MESSAGE_CHARS:
                final = "…" + final[-FINAL_MESSAGE_CHARS:]
            parts.append(f"----- final message -----\n{final}")
        if report.log_path:
            parts.append(f"log: {report.log_path}")
        return "\n".join(parts)

    @staticmethod
    def _system_out(report: TaskReport) -> str:
        lines = [f"task: {report.nodeid}", f"outcome: {report.outcome.value} ({report.kind.value})"]
        if report.reason:
            lines.append(f"reason: {report.reason}")
        if report.backend:
            lines.append(f"backend: {report.backend}")
        if report.model:
            lines.append(f"model: {report.model}")
        lines.append(f"attempts: {len(report.attempts)} in this run, {report.attempt_number} in all")
        for attempt in report.attempts:
            lines.append(f"attempt {attempt.number}: {attempt.outcome.value} ({attempt.kind.value}, "
                         f"{attempt.duration:.1f}s) {attempt.reason}".rstrip())
        if report.rate_limit_waits:
            lines.append(f"rate_limit_waits: {report.rate_limit_waits} "
                         f"({report.rate_limit_wait_seconds:.1f}s)")
        usage = report.usage
        if usage is not None:
            if usage.input_tokens is not None or usage.output_tokens is not None:
                lines.append(f"tokens: input {usage.input_tokens or 0}, output {usage.output_tokens or 0}")
            if usage.cost_usd is not None:
                lines.append(f"cost_usd: {usage.cost_usd:.6f}".rstrip("0").rstrip("."))
        tail = read_tail(report.log_path) if report.log_path else None
        if report.log_path:
            lines.append(f"log: {report.log_path}")
        if tail:
            lines.append(f"----- agent output (last {TAIL_LINES} lines at most) -----")
            lines.append(tail)
        return "\n".join(lines) + "\n"


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
