"""The configuration's life: conftest mistakes are usage errors, config-file
values are checked like options, and plugins are configured only for a run."""
from __future__ import annotations

from pathlib import Path

SPECS = Path(".kiro") / "specs"


def write_conftest(project: Path, text: str) -> Path:
    path = project / SPECS / "conftest.py"
    path.write_text(text, encoding="utf-8")
    return path


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ERROR: "), stderr
    return lines[0]


def test_a_misspelled_hook_is_a_usage_error_naming_the_file(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n")
    path = write_conftest(project, "from seqrun.hookspec import hookimpl\n\n"
                                   "@hookimpl\ndef seqrun_runtest_logrepot(report):\n    pass\n")
    result = run_seqrun("--co")
    assert result.returncode == 4, result.stdout + result.stderr
    line = one_error_line(result.stderr)
    assert str(path) in line and "unknown hook 'seqrun_runtest_logrepot'" in line


def test_an_unmarked_hook_function_is_a_hook_as_in_pytest(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n- [ ] 2. Two\n")
    write_conftest(project, "def seqrun_collection_modifyitems(items):\n    items.reverse()\n")
    result = run_seqrun("--co", "-q")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if "::" in line] == [
        ".kiro/specs/feature::2", ".kiro/specs/feature::1"]


def test_an_unmarked_misspelled_hook_is_a_usage_error(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n")
    write_conftest(project, "def seqrun_colection_modifyitems(items):\n    items.reverse()\n")
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert "unknown hook 'seqrun_colection_modifyitems'" in one_error_line(result.stderr)


def test_a_hook_with_an_argument_the_hook_lacks_is_a_usage_error(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n")
    path = write_conftest(project, "from seqrun.hookspec import hookimpl\n\n"
                                   "@hookimpl\ndef seqrun_runtest_logreport(report, verdict):\n    pass\n")
    result = run_seqrun("--co")
    assert result.returncode == 4, result.stdout + result.stderr
    line = one_error_line(result.stderr)
    assert str(path) in line
    assert "seqrun_runtest_logreport() takes verdict, which the hook does not pass (it passes: report)" in line
    assert "INTERNAL ERROR" not in result.stderr


def test_helpers_in_a_conftest_that_are_not_hooks_are_left_alone(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n")
    write_conftest(project, "from seqrun.paths import seqrun_dir\n\nSEQRUN_TEAM = 'x'\n\n"
                            "def helper():\n    return seqrun_dir\n")
    assert run_seqrun("--co").returncode == 0


def test_config_file_values_are_checked_like_options(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n")
    (project / "seqrun.toml").write_text("max_iterations = 2.5\n")
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert one_error_line(result.stderr).endswith("seqrun.toml: max_iterations must be a whole number >= 0, got 2.5")
    (project / "seqrun.toml").write_text('dispatch = "tree"\n')
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert one_error_line(result.stderr).endswith("seqrun.toml: dispatch must be one of leaf, unit, got 'tree'")


def test_version_configures_no_plugin(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. One\n")
    write_conftest(project, "from pathlib import Path\nfrom seqrun.hookspec import hookimpl\n\n"
                            "@hookimpl\ndef seqrun_configure(config):\n"
                            "    (Path(__file__).parent / 'configured').write_text('yes')\n")
    # A --verify command that does not exist would be a usage error for a run, not for --version.
    (project / "seqrun.toml").write_text('verify = "no-such-command-anywhere"\n')
    result = run_seqrun("--version")
    assert result.returncode == 0 and result.stdout.startswith("seqrun "), result.stderr
    assert not (project / SPECS / "configured").exists()
    result = run_seqrun("--no-tmux")
    assert result.returncode == 4 and "no-such-command-anywhere not found" in result.stderr
    assert (project / SPECS / "configured").read_text() == "yes"
