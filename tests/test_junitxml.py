"""``--junitxml``: what CI servers read from a seqrun run.

Most tests run seqrun for real, with the ``command`` backend pointed at a tiny
agent script whose answer per task id comes from ``plan.json``; the rest drive
:class:`seqrun.reports.junitxml.LogXML` with hand-made reports.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xmlschema
from junitparser import Error, Failure, JUnitXml, Skipped

from seqrun.config import Config, new_pluginmanager
from seqrun.nodes import Spec, Task
from seqrun.outcome import Attempt, Kind, Outcome, TaskReport, Usage, Verdict
from seqrun.reports.junitxml import LogXML, read_tail, xml_safe

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
RUN = ("--backend", "command", "--no-tmux", "--delay", "0", "--reruns", "0")

#: What a hostile agent prints: NUL, escape sequences, a bell, bytes that are
#: not UTF-8, a CDATA terminator and markup.
NASTY = (b"tool: \x00NUL \x1b[31mred\x1b[0m \x1b]0;title\x07 bell\x07 bad\xff\xfe\xc3 "
         b"]]> <script>alert(1)</script> &amp; \x0b\x0c\x1f done?\n")

AGENT = """\
import json, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
task_id = sys.argv[1]
plan = json.loads((here / "plan.json").read_text("utf-8"))
with open(here / "calls.txt", "a", encoding="utf-8") as f:
    f.write(task_id + "\\n")
what = plan.get(task_id, "done")
out = sys.stdout.buffer
out.write(b"working on " + task_id.encode() + b"\\n")
if what == "nasty":
    out.write((here / "nasty.bin").read_bytes())
if what == "exit":
    out.flush()
    sys.exit(3)
if what == "sleep":
    out.flush()
    import time
    time.sleep(60)
final = {"done": "Finished. <promise>TASK_DONE</promise>",
         "halt": "Blocked on credentials. <promise>HALT</promise>"}.get(what, "I could not finish it.")
out.write(b"\\n" + final.encode() + b"\\n")
"""


def use_agent(project: Path, plan: dict[str, str], toml_top: str = "") -> None:
    """Point the ``command`` backend at the scripted agent."""
    (project / "agent.py").write_text(AGENT, encoding="utf-8")
    (project / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    (project / "nasty.bin").write_bytes(NASTY)
    argv = [sys.executable, str(project / "agent.py"), "{task_id}"]
    (project / "seqrun.toml").write_text(f"{toml_top}\n[backends.command]\nargv = {json.dumps(argv)}\n",
                                         encoding="utf-8")


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


MIXED = """\
# Tasks

- [ ] 1. Write the parser
- [ ] 2. Survive nasty output
- [ ]* 3. Optional polish
- [ ] 4. Escape &<>"' in titles
- [ ] 5. Ask for help
- [ ] 6. Never reached
"""


def cases_by_id(suite) -> dict[str, object]:
    return {case.name.split(" ", 1)[0]: case for case in suite}


def test_mixed_run_is_schema_valid_with_counts_names_and_types(make_spec, project, run_seqrun, schema):
    make_spec(MIXED, name="feat")
    use_agent(project, {"1": "done", "2": "nasty", "4": "done", "5": "halt"})
    result = run_seqrun(*RUN, "--junitxml", "reports/nested/junit.xml")
    assert result.returncode == 2, result.stderr  # halted
    path = project / "reports" / "nested" / "junit.xml"
    assert "generated xml file" in result.stdout

    schema.validate(str(path))  # raises with the first schema error
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "feat"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (6, 1, 1, 2)
    assert (xml.tests, xml.failures, xml.errors) == (6, 1, 1)
    cases = cases_by_id(suite)
    assert len(list(suite)) == suite.tests == 6  # pytest issue #3580: tests == testcases
    assert {c.classname for c in suite} == {"feat"}
    assert cases["1"].name == "1 Write the parser"
    assert cases["4"].name == "4 Escape &<>\"' in titles"
    assert cases["1"].result == []

    (failure,) = cases["2"].result
    assert isinstance(failure, Failure)
    assert failure.type == "no-marker"
    assert failure.message == "no TASK_DONE marker in the final message"
    (optional,) = cases["3"].result
    assert isinstance(optional, Skipped) and optional.type == "optional"
    (halt,) = cases["5"].result
    assert isinstance(halt, Error)
    assert halt.type == "halt" and halt.message == "agent asked to halt"
    assert "Blocked on credentials" in halt.text
    (not_reached,) = cases["6"].result
    assert isinstance(not_reached, Skipped) and not_reached.type == "not-reached"
    assert not_reached.message.startswith("not reached")

    out = cases["2"].system_out
    assert "attempts: 1" in out
    assert "]]>" in out and "<script>alert(1)</script>" in out and "&amp;" in out
    assert "\ufffd" in out  # the invalid bytes, decoded with errors="replace"
    for bad in ("\x00", "\x1b", "\x07", "\x0b", "\x0c", "\x1f", "[31m", "title"):
        assert bad not in out
    assert "I could not finish it." in out

    props = {p.name: p.value for p in suite.properties()}
    assert props["backend"] == "command"
    assert props["attempts"] == "4"  # tasks 1, 2, 4, 5 ran once each
    assert props["rate_limit_waits"] == "0"
    assert props["rate_limit_wait_seconds"] == "0.0"


def test_time_attributes_have_at_most_three_decimals(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n- [ ] 2. Two\n", name="feat")
    use_agent(project, {})
    run_seqrun(*RUN, "--junitxml", "junit.xml")
    text = (project / "junit.xml").read_text("utf-8")
    xml = JUnitXml.fromfile(str(project / "junit.xml"))
    (suite,) = list(xml)
    for value in [suite._elem.get("time"), *(c._elem.get("time") for c in suite)]:
        whole, _, decimals = value.partition(".")
        assert whole.isdigit() and len(decimals) == 3, value
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>")


def test_xunit1_adds_file_and_line_for_annotations(make_spec, project, run_seqrun):
    make_spec(MIXED, name="feat")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "--junitxml", "junit.xml", "--junit-family", "xunit1", "-k", "1 or 2 or 4")
    (suite,) = list(JUnitXml.fromfile(str(project / "junit.xml")))
    attrs = {c.name.split(" ", 1)[0]: c._elem.attrib for c in suite}
    assert attrs["1"]["file"] == ".kiro/specs/feat/tasks.md"
    assert (attrs["1"]["line"], attrs["2"]["line"], attrs["4"]["line"]) == ("3", "4", "6")


def test_xunit2_default_has_no_file_or_line(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n", name="feat")
    use_agent(project, {})
    run_seqrun(*RUN, "--junitxml", "junit.xml")
    (suite,) = list(JUnitXml.fromfile(str(project / "junit.xml")))
    (case,) = list(suite)
    assert "file" not in case._elem.attrib and "line" not in case._elem.attrib


def test_duplicate_titles_get_unique_names(make_spec, project, run_seqrun, schema):
    make_spec("- [ ] 1. Do it\n- [ ] 2. Do it\n- [ ] 3. Do it\n", name="feat")
    use_agent(project, {"2": "fail"})
    run_seqrun(*RUN, "--junitxml", "junit.xml")
    schema.validate(str(project / "junit.xml"))
    (suite,) = list(JUnitXml.fromfile(str(project / "junit.xml")))
    assert [c.name for c in suite] == ["1 Do it", "2 Do it", "3 Do it"]


def test_one_testsuite_per_spec_and_deselected_tasks_not_written(make_spec, project, run_seqrun, schema):
    make_spec("- [ ] 1. Alpha one\n- [ ] 2. Alpha two\n", name="alpha")
    make_spec("- [ ] 1. Beta one\n- [ ] 2. Beta two\n", name="beta")
    use_agent(project, {})
    result = run_seqrun(*RUN, "--junitxml", "junit.xml", "-k", "not two")
    assert result.returncode == 0, result.stdout + result.stderr
    schema.validate(str(project / "junit.xml"))
    xml = JUnitXml.fromfile(str(project / "junit.xml"))
    suites = {s.name: [c.name for c in s] for s in xml}
    assert suites == {"alpha": ["1 Alpha one"], "beta": ["1 Beta one"]}
    assert xml.tests == 2


def test_config_file_key_and_bad_family(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n", name="feat")
    use_agent(project, {}, toml_top='junit_xml = "from-config.xml"')
    assert run_seqrun(*RUN).returncode == 0
    assert (project / "from-config.xml").is_file()

    use_agent(project, {}, toml_top='junit_xml = "x.xml"\njunit_family = "xunit3"')
    result = run_seqrun(*RUN)
    assert result.returncode == 4
    assert "seqrun.toml: junit_family must be one of xunit2, xunit1, got 'xunit3'" in result.stderr


def test_suite_name_option_names_the_root(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n", name="feat")
    use_agent(project, {})
    run_seqrun(*RUN, "--junitxml", "junit.xml", "--junit-suite-name", "nightly agents")
    xml = JUnitXml.fromfile(str(project / "junit.xml"))
    assert xml._elem.get("name") == "nightly agents"
    assert [s.name for s in xml] == ["feat"]


def test_nothing_selected_still_writes_a_valid_report(make_spec, project, run_seqrun, schema):
    make_spec("- [ ] 1. One\n", name="feat")
    use_agent(project, {})
    result = run_seqrun(*RUN, "--junitxml", "junit.xml", "-k", "nomatch")
    assert result.returncode == 5
    schema.validate(str(project / "junit.xml"))
    assert JUnitXml.fromfile(str(project / "junit.xml")).tests == 0


def test_non_zero_exit_is_an_error_type_failure(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Crash\n", name="feat")
    use_agent(project, {"1": "exit"})
    run_seqrun(*RUN, "--junitxml", "junit.xml")
    (suite,) = list(JUnitXml.fromfile(str(project / "junit.xml")))
    (case,) = list(suite)
    (failure,) = case.result
    assert failure.type == "agent-error" and failure.message == "exit status 3"


def test_unwritable_path_is_a_usage_error_before_anything_runs(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n", name="feat")
    use_agent(project, {})
    (project / "afile").write_text("")
    result = run_seqrun(*RUN, "--junitxml", "afile/sub/junit.xml")
    assert result.returncode == 4
    assert "--junitxml" in result.stderr
    assert not (project / "calls.txt").exists()


def test_sigterm_mid_task_still_writes_the_report(make_spec, project):
    make_spec("- [ ] 1. Long one\n- [ ] 2. Never started\n", name="feat")
    use_agent(project, {"1": "sleep"})
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "seqrun", *RUN, "--junitxml", "junit.xml"],
                            cwd=project, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (project / "calls.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2
    (suite,) = list(JUnitXml.fromfile(str(project / "junit.xml")))
    (case,) = list(suite)  # task 2 never started: not in the report
    (failure,) = case.result
    assert failure.type == "interrupted"
    assert failure.message == "interrupted (SIGTERM) while the agent ran; agent and its processes ended"
    assert "working on 1" in case.system_out


# -- unit level: hand-made reports ------------------------------------------------------


def make_config(tmp_path: Path, **options: object) -> Config:
    option = argparse.Namespace(model="", backend="claude", **options)
    return Config(new_pluginmanager(), tmp_path, option)


def make_spec_obj(tmp_path: Path) -> Spec:
    spec = Spec(name="feat", tasks_file=tmp_path / "feat" / "tasks.md", nodeid="feat")
    spec.roots = [Task(id=str(i), title=f"Task {i}", line=i + 2, spec=spec) for i in (1, 2, 3)]
    return spec


class FakeSession:
    def __init__(self, specs: list[Spec]) -> None:
        self.specs = specs


def report(task_id: str, outcome: Outcome, **kw: object) -> TaskReport:
    return TaskReport(nodeid=f"feat::{task_id}", task_id=task_id, title=f"Task {task_id}", outcome=outcome, **kw)


def attempts(task_id: str, *verdicts: Verdict, log: str | None = None) -> tuple[Attempt, ...]:
    """This run's attempts of a task, one per verdict."""
    return tuple(Attempt(nodeid=f"feat::{task_id}", task_id=task_id, number=n, run_id="run-1",
                         started_at=1000.0 + n, ended_at=1001.0 + n, backend="codex", verdict=v,
                         log_path=log) for n, v in enumerate(verdicts, 1))


def test_unit_dispatch_figures_counted_once_and_tokens_in_properties(tmp_path, schema):
    log = tmp_path / "unit.log"
    log.write_bytes(b"agent output\n")
    usage = Usage(input_tokens=1000, output_tokens=200, cost_usd=0.25)
    plugin = LogXML(make_config(tmp_path), tmp_path / "j.xml", "xunit2", "seqrun")
    # Two subtasks of one --dispatch unit run: same log, attempts, usage.
    unit_attempts = attempts("0", Verdict(Outcome.FAILED, "no marker", kind=Kind.NO_MARKER),
                             Verdict(Outcome.PASSED), log=str(log))
    for task_id in ("1", "2"):
        plugin.seqrun_runtest_logreport(report=report(
            task_id, Outcome.PASSED, attempts=unit_attempts, attempt_number=2, backend="codex",
            model="gpt-x", log_path=str(log), usage=usage, rate_limit_waits=1, rate_limit_wait_seconds=90.0,
            duration=1.5, dispatch_id="run-1:feat::0"))
    plugin.seqrun_runtest_logreport(report=report("3", Outcome.FAILED, reason="timeout: no verdict after 2h00m",
                                                  kind=Kind.TIMEOUT))
    data = plugin.to_bytes(FakeSession([make_spec_obj(tmp_path)]))
    (tmp_path / "j.xml").write_bytes(data)
    schema.validate(str(tmp_path / "j.xml"))
    (suite,) = list(JUnitXml.fromfile(str(tmp_path / "j.xml")))
    props = {p.name: p.value for p in suite.properties()}
    assert props == {"backend": "codex", "model": "gpt-x", "attempts": "2", "input_tokens": "1000",
                     "output_tokens": "200", "cost_usd": "0.25", "rate_limit_waits": "1",
                     "rate_limit_wait_seconds": "90.0"}
    cases = cases_by_id(suite)
    out = cases["1"].system_out
    assert "attempts: 2 in this run, 2 in all" in out and "tokens: input 1000, output 200" in out
    assert "rate_limit_waits: 1 (90.0s)" in out and "agent output" in out
    assert cases["3"].result[0].type == "timeout"
    assert cases["1"].time == 1.5


def test_report_for_an_unknown_spec_still_lands_in_a_suite(tmp_path, schema):
    plugin = LogXML(make_config(tmp_path), tmp_path / "j.xml", "xunit1", "seqrun")
    plugin.seqrun_runtest_logreport(report=TaskReport(
        nodeid="elsewhere::9", task_id="9", title="Orphan", outcome=Outcome.PASSED))
    (tmp_path / "j.xml").write_bytes(plugin.to_bytes(FakeSession([])))
    (suite,) = list(JUnitXml.fromfile(str(tmp_path / "j.xml")))
    assert suite.name == "elsewhere" and [c.name for c in suite] == ["9 Orphan"]


@pytest.mark.parametrize("outcome, kind, element, expected_type", [
    (Outcome.FAILED, Kind.NO_MARKER, Failure, "no-marker"),
    (Outcome.FAILED, Kind.IDLE_TIMEOUT, Failure, "idle-timeout"),
    (Outcome.FAILED, Kind.VERIFICATION_FAILED, Failure, "verification"),
    (Outcome.FAILED, Kind.QUOTA, Failure, "quota"),
    (Outcome.ERROR, Kind.TEARDOWN_ERROR, Error, "teardown-error"),
    (Outcome.INTERRUPTED, Kind.INTERRUPTED, Error, "interrupted"),
    (Outcome.SKIPPED, Kind.ALREADY_DONE, Skipped, "already-done"),
    (Outcome.SKIPPED, Kind.NOT_REACHED, Skipped, "not-reached"),
])
def test_result_type_is_the_reports_kind_whatever_its_reason_says(tmp_path, schema, outcome, kind, element,
                                                                  expected_type):
    # The reason says something else on purpose: only the kind may decide the type.
    plugin = LogXML(make_config(tmp_path), tmp_path / "j.xml", "xunit2", "seqrun")
    plugin.seqrun_runtest_logreport(report=report("1", outcome, kind=kind, reason="timeout: already done"))
    (tmp_path / "j.xml").write_bytes(plugin.to_bytes(FakeSession([make_spec_obj(tmp_path)])))
    schema.validate(str(tmp_path / "j.xml"))
    (suite,) = list(JUnitXml.fromfile(str(tmp_path / "j.xml")))
    (case,) = list(suite)
    (result,) = case.result
    assert isinstance(result, element) and result.type == expected_type


def test_xml_safe_removes_what_xml_forbids():
    text = "a\x00b\x08c\x0bd\x1fe\x7ff\ud800g\udcffh\ufffei\uffffj\x1b[1mk\x1b[0m\tl\nm\r\nn\ro😀"
    assert xml_safe(text) == "abcde\x7ffghij" + "k\tl\nm\nn\no😀"


def test_read_tail_keeps_the_last_lines_and_bytes(tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"".join(b"line %d\r\n" % i for i in range(1000)))
    tail = read_tail(log)
    lines = tail.split("\n")
    assert len(lines) == 200 and lines[0] == "line 800" and lines[-1] == "line 999"

    big = tmp_path / "big.log"
    big.write_bytes("é".encode() * 50_000 + b"\nlast \xff line\n")  # 100 KB without a newline first
    tail = read_tail(big)
    assert tail == "last \ufffd line"
    assert read_tail(tmp_path / "nope.log") is None
