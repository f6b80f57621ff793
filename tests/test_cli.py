"""The command line as a user meets it: exit codes, --collect-only, -k, node ids,
config files, conftest.py plugins, --init."""
from __future__ import annotations

import re
import sys
import textwrap

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import seqrun

SPEC = """\
# Implementation Plan

- [x] 1. Project setup
  - _Requirements: 1.1_

- [ ] 1.1 Create the skeleton
- [ ] 1.2 Add configuration loading
  - [ ] 1.2.1 Read seqrun.toml
- [ ]* 1.3 Property tests for config
- [ ] 11.2 A task whose id starts like 1.2 but is not under it
- [ ] 2. Runner
- [-] 2.1 Dispatch loop
- [ ] 1.20 Also not under 1.2
"""


def ids(stdout: str) -> list[str]:
    return [line.split("::", 1)[1] for line in stdout.splitlines() if "::" in line]


def test_version(run_seqrun):
    result = run_seqrun("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"seqrun {seqrun.__version__}"


def test_collect_only_quiet_lists_leaves_in_file_order(make_spec, run_seqrun):
    make_spec(SPEC)
    result = run_seqrun("--co", "-q")
    assert result.returncode == 0, result.stderr
    # Leaves only (1 and 1.2 and 2 are parents), done and optional included.
    assert ids(result.stdout) == ["1.1", "1.2.1", "1.3", "11.2", "2.1", "1.20"]
    assert result.stdout.splitlines()[0] == ".kiro/specs/feature::1.1"
    assert "6 tasks collected" in result.stdout


def test_collect_only_tree_shows_states(make_spec, run_seqrun):
    make_spec(SPEC)
    result = run_seqrun("--collect-only")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "<Spec feature (.kiro/specs/feature)>"
    assert "  <Task 1 [done] Project setup>" in lines
    assert "    <Task 1.2 [pending] Add configuration loading>" in lines
    assert "      <Task 1.2.1 [pending] Read seqrun.toml>" in lines
    assert "    <Task 1.3 [optional, pending] Property tests for config>" in lines
    assert "    <Task 2.1 [in progress] Dispatch loop>" in lines


def test_k_numeric_id_selects_task_and_descendants_exactly(make_spec, run_seqrun):
    make_spec(SPEC)
    result = run_seqrun("--co", "-q", "-k", "1.2")
    assert result.returncode == 0
    assert ids(result.stdout) == ["1.2.1"]
    assert "5 deselected" in result.stdout
    result = run_seqrun("--co", "-q", "-k", "1")
    assert ids(result.stdout) == ["1.1", "1.2.1", "1.3", "1.20"]


def test_k_words_and_boolean_grammar(make_spec, run_seqrun):
    make_spec(SPEC)
    assert ids(run_seqrun("--co", "-q", "-k", "CONFIG").stdout) == ["1.2.1", "1.3"]
    assert ids(run_seqrun("--co", "-q", "-k", "optional").stdout) == ["1.3"]
    assert ids(run_seqrun("--co", "-q", "-k", "runner and not 1.20").stdout) == ["2.1"]
    # A parent's title matches its children; the spec name matches everything.
    assert ids(run_seqrun("--co", "-q", "-k", "(setup or runner) and not optional").stdout) == [
        "1.1", "1.2.1", "2.1", "1.20"]
    assert len(ids(run_seqrun("--co", "-q", "-k", "feature").stdout)) == 6


def test_bad_k_expression_is_usage_error_with_column(make_spec, run_seqrun):
    make_spec(SPEC)
    result = run_seqrun("--co", "-k", "1.2 and")
    assert result.returncode == 4
    assert "column 8" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nothing_selected_is_exit_5(make_spec, run_seqrun):
    make_spec(SPEC)
    assert run_seqrun("--co", "-k", "nosuchword").returncode == 5
    make_spec("# Tasks\n\nNothing here yet.\n", name="empty")
    assert run_seqrun("--co", ".kiro/specs/empty").returncode == 5


def test_node_id_selects_subtree(make_spec, run_seqrun):
    make_spec(SPEC)
    result = run_seqrun("--co", "-q", ".kiro/specs/feature::1.2")
    assert result.returncode == 0
    assert ids(result.stdout) == ["1.2.1"]
    result = run_seqrun("--co", "-q", ".kiro/specs/feature/tasks.md::2")
    assert ids(result.stdout) == ["2.1"]
    result = run_seqrun("--co", ".kiro/specs/feature::9.9")
    assert result.returncode == 4
    assert "9.9" in result.stderr


def test_spec_alias_and_folder_of_specs(make_spec, run_seqrun):
    make_spec(SPEC)
    make_spec("- [ ] 1. Only task\n", name="other")
    both = run_seqrun("--co", "-q")
    assert [l.split("::")[0] for l in both.stdout.splitlines() if "::" in l].count(".kiro/specs/other") == 1
    one = run_seqrun("--co", "-q", "--spec", ".kiro/specs/other")
    assert one.stdout.splitlines()[0] == ".kiro/specs/other::1"


def test_missing_tasks_file_is_usage_error(project, run_seqrun):
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert result.stderr.startswith("ERROR: no tasks.md")
    result = run_seqrun("--co", "does/not/exist")
    assert result.returncode == 4
    assert "no such file" in result.stderr


def test_binary_tasks_file_is_usage_error(make_spec, run_seqrun):
    make_spec(b"- [ ] 1. x\x00\x01\x02")
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert "not a text file" in result.stderr


def test_bad_option_is_usage_error(make_spec, run_seqrun):
    make_spec(SPEC)
    result = run_seqrun("--no-such-option")
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    result = run_seqrun("--delay", "-3", "--co")
    assert result.returncode == 4
    assert "--delay" in result.stderr


def test_duplicate_ids_warn_with_file_and_line(make_spec, run_seqrun):
    make_spec("- [ ] 1. First\n- [ ] 1. Second list restarts\n")
    result = run_seqrun("--co", "-q")
    assert ids(result.stdout) == ["1", "1~2"]
    assert "tasks.md:2: duplicate task id 1" in result.stderr


def test_config_file_defaults_and_command_line_wins(make_spec, run_seqrun, project):
    make_spec(SPEC)
    (project / "pyproject.toml").write_text('[tool.seqrun]\nkeyword = "runner"\n')
    assert ids(run_seqrun("--co", "-q").stdout) == ["2.1"]
    # 1.20 belongs to task 1 "Project setup" too: nesting comes from ids.
    assert ids(run_seqrun("--co", "-q", "-k", "setup").stdout) == ["1.1", "1.2.1", "1.3", "1.20"]
    (project / "seqrun.toml").write_text('keyword = "1.3"\n')  # seqrun.toml is found first
    assert ids(run_seqrun("--co", "-q").stdout) == ["1.3"]


def test_init_writes_commented_valid_toml_once(project, run_seqrun):
    result = run_seqrun("--init")
    assert result.returncode == 0
    text = (project / "seqrun.toml").read_text()
    assert text.count("\n# ") >= 5
    data = tomllib.loads(text)
    # The documented defaults (README, --help), not other numbers.
    assert data == {"backend": "claude", "model": "", "dispatch": "leaf", "delay": 5.0, "max_iterations": 50,
                    "idle_timeout": 0.0, "reruns": 1, "rate_limit_margin": 30.0, "max_rate_limit_wait": 21600.0,
                    "include_optional": False}
    # Options without a fixed default are shown commented out, with an example.
    for line in ("# timeout = 7200.0", '# verify = "pytest -q"', '# max_runtime = "8h"', "# max_cost = 20.0"):
        assert line in text.splitlines(), line
    again = run_seqrun("--init")
    assert again.returncode == 4
    assert (project / "seqrun.toml").read_text() == text


def test_conftest_in_specs_root_is_a_plugin(make_spec, run_seqrun, project):
    make_spec(SPEC)
    (project / ".kiro" / "specs" / "conftest.py").write_text(textwrap.dedent("""
        from seqrun.hookspec import hookimpl

        @hookimpl
        def seqrun_addoption(parser):
            parser.add_argument("--only-pending", action="store_true")

        @hookimpl
        def seqrun_collection_modifyitems(session, config, items):
            if config.option.only_pending:
                removed = [t for t in items if t.state.value != "pending"]
                items[:] = [t for t in items if t.state.value == "pending"]
                config.hook.seqrun_deselected(items=removed)
            items.reverse()  # always: shows whether the conftest was loaded at all
    """))
    result = run_seqrun("--co", "-q", "--only-pending")
    assert result.returncode == 0, result.stderr
    assert ids(result.stdout) == ["1.20", "11.2", "1.3", "1.2.1", "1.1"]
    assert ids(run_seqrun("--co", "-q").stdout) == ["1.20", "2.1", "11.2", "1.3", "1.2.1", "1.1"]
    # --noconftest: file order, and the conftest's option does not exist.
    plain = run_seqrun("--co", "-q", "--noconftest")
    assert plain.returncode == 0, plain.stderr
    assert ids(plain.stdout) == ["1.1", "1.2.1", "1.3", "11.2", "2.1", "1.20"]
    unknown = run_seqrun("--co", "-q", "--noconftest", "--only-pending")
    assert unknown.returncode == 4 and "--only-pending" in unknown.stderr


def test_p_loads_and_disables_plugins(make_spec, run_seqrun, project):
    make_spec(SPEC)
    plugin_dir = project / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "reverse_order.py").write_text(
        "from seqrun.hookspec import hookimpl\n\n"
        "@hookimpl\n"
        "def seqrun_collection_modifyitems(items):\n"
        "    items.reverse()\n"
    )
    result = run_seqrun("--co", "-q", "-p", "reverse_order", env={"PYTHONPATH": str(plugin_dir)})
    assert ids(result.stdout)[0] == "1.20"
    # Without the select plugin -k is not even an option.
    assert run_seqrun("--co", "-q", "-p", "no:select", "-k", "x").returncode == 4
    assert run_seqrun("--co", "-q", "-p", "no:main").returncode == 4
    missing = run_seqrun("--co", "-p", "no_such_plugin_module")
    assert missing.returncode == 4 and "no_such_plugin_module" in missing.stderr


def test_internal_error_is_exit_3_with_one_line(make_spec, run_seqrun, project):
    make_spec(SPEC)
    (project / ".kiro" / "specs" / "conftest.py").write_text(
        "from seqrun.hookspec import hookimpl\n\n"
        "@hookimpl\n"
        "def seqrun_collection_modifyitems(items):\n"
        "    raise RuntimeError('plugin bug')\n"
    )
    result = run_seqrun("--co")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "INTERNAL ERROR: RuntimeError: plugin bug (run with --debug for the traceback)"]
    debug = run_seqrun("--co", "--debug")
    assert debug.returncode == 3 and "Traceback" in debug.stderr


def test_console_script_is_the_same_program(make_spec, run_seqrun, project):
    import shutil
    import subprocess

    import pytest

    make_spec(SPEC)
    exe = shutil.which("seqrun")
    if exe is None:
        pytest.skip("console script not installed")
    script = subprocess.run([exe, "--co", "-q"], cwd=project, capture_output=True, text=True)
    assert script.returncode == 0
    assert ids(script.stdout) == ids(run_seqrun("--co", "-q").stdout)


def test_lone_file_in_other_layout(project, run_seqrun):
    plans = project / "plans" / "010"
    plans.mkdir(parents=True)
    (plans / "phase_2.md").write_text("- [ ] T001 [P] First\n- [x] T002 Second (depends on T001)\n")
    result = run_seqrun("--co", "-q", "plans/010/phase_2.md")
    assert result.returncode == 0
    assert result.stdout.splitlines()[:2] == ["plans/010/phase_2.md::T001", "plans/010/phase_2.md::T002"]


def test_tasks_file_is_never_written_by_collection(make_spec, run_seqrun):
    folder = make_spec(SPEC.replace("\n", "\r\n").encode())
    before = (folder / "tasks.md").read_bytes()
    result = run_seqrun("--co")
    assert result.returncode == 0, result.stderr
    assert "6 tasks collected" in result.stdout
    assert (folder / "tasks.md").read_bytes() == before
    assert not (folder.parent / "SEQUENTIAL_STATE.json").exists()


def test_help_lists_seed_flags(run_seqrun):
    result = run_seqrun("--help")
    assert result.returncode == 0
    # Whole options: "-k" must not be found inside "--keep-windows".
    options = set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", result.stdout))
    for flag in ("--spec", "--delay", "--max-iterations", "--backend", "--assign-backend",
                 "--tmux-session", "--collect-only", "-k", "--lf", "--junitxml"):
        assert flag in options, flag



def test_entry_point_plugins_are_loaded_unless_disabled(make_spec, run_seqrun, project):
    make_spec(SPEC)
    site = project / "site"
    (site / "seqrun_reverse-1.0.dist-info").mkdir(parents=True)
    (site / "seqrun_reverse-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: seqrun-reverse\nVersion: 1.0\n")
    (site / "seqrun_reverse-1.0.dist-info" / "entry_points.txt").write_text(
        "[seqrun]\nreverse = seqrun_reverse\n")
    (site / "seqrun_reverse.py").write_text(
        "from seqrun.hookspec import hookimpl\n\n"
        "@hookimpl\n"
        "def seqrun_collection_modifyitems(items):\n"
        "    items.reverse()\n")
    env = {"PYTHONPATH": str(site), "SEQRUN_DISABLE_PLUGIN_AUTOLOAD": ""}
    assert ids(run_seqrun("--co", "-q", env=env).stdout)[0] == "1.20"
    assert ids(run_seqrun("--co", "-q", "-p", "no:reverse", env=env).stdout)[0] == "1.1"
    env["SEQRUN_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    assert ids(run_seqrun("--co", "-q", env=env).stdout)[0] == "1.1"


def test_early_parse_without_the_early_parser_answers_as_it_would():
    # Most command lines skip building the early parser (-p, --noconftest):
    # any line it could read differently, or refuse, still goes through it.
    import itertools

    from seqrun.config import UsageError, _early_parser, early_parse

    words = ["--co", "-q", "-p", "x", "-pno:marks", "-p=y", "-qp", "--spec", "--sp=a", "--s", "--noc",
             "--n", "--", "--=x", "-", "--no-tmux", "--p", "--specx", "path"]

    def answer(parse):  # type: ignore[no-untyped-def]
        try:
            ns = parse()
        except UsageError as exc:
            return str(exc)
        return ns.plugins, ns.noconftest

    for n in (1, 2):
        for argv in itertools.product(words, repeat=n):
            assert answer(lambda: early_parse(argv)) == answer(
                lambda: _early_parser().parse_known_args(list(argv))[0]), argv
