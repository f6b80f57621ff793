"""Plugins, rich and backends load only when used.

Each test runs seqrun's console entry point in a fresh interpreter, as the
``seqrun`` command does, then lists what that process imported: a user who
never asks for an HTML report, a JUnit file or the codex backend never waits
for them to load. (How long start-up takes is measured in ``bench/``, not
asserted here.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import seqrun_env

#: Runs ``seqrun ARGS`` in-process, then prints the imported modules as the
#: last line of stderr.
PROBE = (
    "import sys\n"
    "sys.argv = ['seqrun', *sys.argv[1:]]\n"
    "from seqrun.cli import console_main\n"
    "code = console_main()\n"
    "import json\n"
    "sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    "raise SystemExit(code)\n"
)

#: What ``--co -q`` must not import: the third-party libraries of the
#: terminal view and the HTML report, the pty, every backend implementation,
#: the report writers, the verifier, the records of a run (verdicts,
#: attempts, task reports: six frozen dataclasses a listing never builds), and
#: the run-time halves of the plugins: the per-task protocol's machinery, the
#: live area, the FAILURES section, the checkbox writer, the rate-limit wait,
#: the prompt's fields, and what an option registers (the assigner, the
#: detacher, the committer, the guardrails' watcher, the notifier, the report
#: log's and the job summary's writers); nor what only a run, a lock, a
#: ``-k``/``-m`` or a task's marks need (the state file and its journal,
#: ``fcntl``, the cache's files, the expression grammar, the declared settings).
HEAVY = (
    "rich", "jinja2", "ptyprocess", "pty", "termios", "subprocess", "xml.etree.ElementTree", "fcntl",
    "seqrun.backends.base", "seqrun.backends.claude", "seqrun.backends.codex",
    "seqrun.backends.gemini", "seqrun.backends.opencode", "seqrun.backends.kiro",
    "seqrun.backends.codeagent_wrapper", "seqrun.backends.command", "seqrun.backends.demo",
    "seqrun.reports.html", "seqrun.reports.junitxml", "seqrun.reports.status",
    "seqrun.reports.matrix", "seqrun.verify", "seqrun.terminal.ptyexec", "seqrun.terminal.tmux",
    "seqrun.records", "seqrun.reports.progress",
    "seqrun.statefile", "seqrun.history", "seqrun.reports.cachefiles", "seqrun.expression",
    "seqrun.declared",
    "seqrun.protocol", "seqrun.reports.live", "seqrun.reports.failures", "seqrun.checkbox", "seqrun.ratewait",
    "seqrun.promptfields", "seqrun.assigner", "seqrun.detacher", "seqrun.gitcommitter", "seqrun.guardrailswatch",
    "seqrun.notifier", "seqrun.reports.reportlogwriter", "seqrun.reports.ghsummarywriter",
)

SPEC = "- [ ] 1. One\n- [ ] 2. Two\n  - [ ] 2.1 Sub\n"


def imported(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=project, capture_output=True,
                            text=True, timeout=120, env=seqrun_env({"SEQRUN_DEMO_DELAY": "0"}),
                            stdin=subprocess.DEVNULL)
    last = result.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("MODULES "), result.stdout + result.stderr
    return result, set(json.loads(last[len("MODULES "):]))


def heavy_in(modules: set[str]) -> list[str]:
    return [m for m in HEAVY if m in modules or any(k.startswith(m + ".") for k in modules)]


def test_collect_only_quiet_loads_no_report_backend_or_terminal_library(make_spec, project):
    make_spec(SPEC)
    result, modules = imported(project, "--co", "-q")
    assert result.returncode == 0, result.stderr
    assert ".kiro/specs/feature::2.1" in result.stdout
    assert heavy_in(modules) == []
    # The plugins are all registered all the same: their light modules are there.
    assert {"seqrun.reports.htmlplugin", "seqrun.reports.junitxmlplugin", "seqrun.verifyplugin",
            "seqrun.backends.registry"} <= modules


def test_version_alone_loads_nothing_of_seqrun_but_the_entry_point(project):
    result, modules = imported(project, "--version")
    assert result.returncode == 0 and result.stdout.startswith("seqrun "), result.stderr
    assert sorted(m for m in modules if m.startswith("seqrun")) == ["seqrun", "seqrun.cli"]
    assert "pluggy" not in modules and "argparse" not in modules


def test_version_with_other_options_goes_through_the_plugins(make_spec, project):
    # Not the whole request: answered as before, after the options are checked.
    make_spec(SPEC)
    result, modules = imported(project, "--version", "--no-such-option")
    assert result.returncode == 4 and "unrecognized option --no-such-option" in result.stderr
    result, modules = imported(project, "--version", "-q")
    assert result.returncode == 0 and result.stdout.startswith("seqrun "), result.stderr
    assert "pluggy" in modules and "seqrun.main" in modules


def test_reports_load_when_their_option_is_used(make_spec, project):
    make_spec(SPEC)
    result, modules = imported(project, "--co", "-q", "--junitxml", "report.xml", "--html", "report.html")
    assert result.returncode == 0, result.stderr
    assert {"seqrun.reports.junitxml", "seqrun.reports.html", "jinja2"} <= modules
    result, modules = imported(project, "--co")  # the tree shows each task's last outcome
    assert result.returncode == 0, result.stderr
    assert "seqrun.reports.status" in modules and "seqrun.reports.html" not in modules


def test_a_run_loads_only_the_backend_it_uses(make_spec, project):
    make_spec(SPEC)
    result, modules = imported(project, "--backend", "demo", "--no-tmux", "--delay", "0", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"seqrun.backends.demo", "seqrun.verify", "seqrun.terminal.ptyexec"} <= modules
    # The demo agent speaks claude's stream: its parser is the one other backend module used.
    others = [m for m in modules if m.startswith("seqrun.backends.")
              and m.split(".")[2] in ("codex", "gemini", "opencode", "kiro", "codeagent_wrapper", "command")]
    assert others == []
    assert "seqrun.reports.html" not in modules and "jinja2" not in modules


def test_what_loads_on_first_use_is_still_importable_where_it_was():
    # Moved out of the plugin modules so a listing does not load them; the
    # names stay importable from the plugins, as before.
    from seqrun import declared, expression, marks, select, statefile
    from seqrun.reports import cache, cachefiles, state

    assert select.Expression is expression.Expression and select.ExpressionError is expression.ExpressionError
    assert marks.Marks is declared.Marks and marks.Declared is declared.Declared
    assert marks.marks_of is declared.marks_of
    assert cache.Cache is cachefiles.Cache and cache.LASTFAILED == "lastfailed.json"
    assert state.STATE_NAME == statefile.STATE_NAME  # the help names the file the plugin writes


def test_marks_and_expressions_load_when_used(make_spec, project):
    make_spec("- [ ] 1. One\n  - _Timeout: 5m_\n- [ ] 2. Two [P]\n")
    result, modules = imported(project, "--co", "-q", "-k", "1", "-m", "P or timeout")
    assert result.returncode == 0, result.stderr
    assert {"seqrun.expression", "seqrun.declared"} <= modules


def test_a_run_has_the_garbage_collector_back_once_its_tasks_are_collected(make_spec, project):
    # Start-up pauses the cyclic collector (seqrun.cli); a night's run must not
    # go on without it: by the first task it is back, start-up's objects frozen.
    make_spec(SPEC)
    (project / ".kiro" / "specs" / "conftest.py").write_text(
        "import gc, json\n"
        "from pathlib import Path\n"
        "def seqrun_runtest_setup(item):\n"
        "    with open(Path(__file__).parent / 'gc.jsonl', 'a') as out:\n"
        "        out.write(json.dumps([item.id, gc.isenabled(), gc.get_freeze_count() > 0]) + '\\n')\n")
    result, _ = imported(project, "--backend", "demo", "--no-tmux", "--delay", "0", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = [json.loads(line) for line in (project / ".kiro" / "specs" / "gc.jsonl").read_text().splitlines()]
    assert [task for task, _, _ in seen] == ["1", "2.1"]
    assert all(enabled and frozen for _, enabled, frozen in seen), seen
