"""What seqrun tells a user who starts it somewhere else than the project root,
or mistypes: the project found upwards (as pytest finds its rootdir), the hint
in an empty folder, "did you mean", files that are not task lists, and --help."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, seqrun_env, use_command_agent

#: A command agent that records where it ran (and that it ran at all), then passes.
AGENT = textwrap.dedent("""
    import os, sys
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent-runs.txt"), "a") as f:
        f.write(os.getcwd() + "\\n")
    print("done <promise>TASK_DONE</promise>")
""")

SPEC = """\
- [ ] 1. Setup
  - [ ] 1.1 Skeleton
  - [ ] 1.3 Config
- [ ] 2. Runner
  - [ ] 2.2 Loop
"""

KIRO_REQUIREMENTS = """\
# Requirements Document

## Introduction

A greeting feature.

## Requirements

### Requirement 1

**User Story:** As a user, I want a greeting, so that I feel welcome.

#### Acceptance Criteria

1. WHEN the user opens the page THEN the system SHALL show a greeting
2. IF the user is logged in THEN the system SHALL use their name
3. WHEN the name is empty THEN the system SHALL say "Hello"
"""


def seqrun(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqrun", *args], cwd=cwd, env=seqrun_env(env),
                          text=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def git_init(folder: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ERROR: "), result.stderr
    return lines[0]


# -- finding the project ---------------------------------------------------------------


def test_started_in_a_subfolder_runs_the_projects_spec_in_the_project_root(make_spec, project):
    git_init(project)
    make_spec(SPEC)
    use_command_agent(project, AGENT)
    deep = project / "src" / "deep" / "dir"
    deep.mkdir(parents=True)

    result = seqrun("--no-tmux", "--delay", "0", "--backend", "command", cwd=deep)

    assert result.returncode == 0, result.stdout + result.stderr
    # The header says which project and specs root it uses.
    assert f"rootdir: {project.resolve()}, specs: .kiro/specs" in result.stdout.splitlines()
    tasks = (project / ".kiro" / "specs" / "feature" / "tasks.md").read_text()
    assert tasks.count("- [x]") == 5, tasks
    # Each of the three leaves ran in the project root, not in src/deep/dir.
    assert (project / "agent-runs.txt").read_text().splitlines() == [str(project.resolve())] * 3
    # The state names logs relative to the project root, as a run started there would.
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    log = state["specs"]["feature"]["tasks"]["1.1"]["log"]
    assert log == ".kiro/specs/.seqrun/logs/feature/1.1/1.log"
    assert (project / log).is_file()
    assert not (deep / ".kiro").exists()


def test_the_search_stops_at_the_git_root(tmp_path):
    # A spec above the repository belongs to another project: not used.
    (tmp_path / ".kiro" / "specs" / "outer").mkdir(parents=True)
    (tmp_path / ".kiro" / "specs" / "outer" / "tasks.md").write_text("- [ ] 1. Outer task\n")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / ".git").write_text("gitdir: /elsewhere\n")  # a worktree's or submodule's .git is a file
    result = seqrun("--co", cwd=repo / "src")
    assert result.returncode == 4
    line = one_error_line(result)
    assert "Outer task" not in result.stdout
    assert f"no .kiro/specs in {(repo / 'src').resolve()} or above it (up to the git root)" in line


def test_an_empty_folder_gets_the_hint(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = seqrun(cwd=empty)
    assert result.returncode == 4
    line = one_error_line(result)
    assert "seqrun --demo" in line and "seqrun --init" in line
    assert ".kiro/specs/<feature>/tasks.md" in line
    assert result.stdout == ""


def test_without_git_the_search_goes_up_to_the_root(make_spec, project):
    make_spec(SPEC)
    sub = project / "docs" / "notes"
    sub.mkdir(parents=True)
    result = seqrun("--co", "-q", cwd=sub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ".kiro/specs/feature::1.1"
    # -q keeps the header quiet, as pytest's does.
    assert "rootdir:" not in result.stdout
    # Started inside one spec's folder, as pytest in a test folder: that spec only.
    make_spec("- [ ] 1. Other\n", name="other")
    inside = project / ".kiro" / "specs" / "other"
    result = seqrun("--co", "-q", cwd=inside)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if "::" in line] == [".kiro/specs/other::1"]
    result = seqrun("--co", cwd=inside)
    assert f"rootdir: {project.resolve()}, specs: .kiro/specs/other" in result.stdout.splitlines()


def test_init_in_a_subfolder_writes_the_projects_config(make_spec, project):
    make_spec(SPEC)
    sub = project / "src"
    sub.mkdir()
    result = seqrun("--init", cwd=sub)
    assert result.returncode == 0, result.stderr
    assert (project / "seqrun.toml").is_file() and not (sub / "seqrun.toml").exists()


def test_an_explicit_path_is_relative_to_where_seqrun_started(make_spec, project):
    make_spec(SPEC)
    make_spec("- [ ] 1. Other\n", name="other")
    sub = project / "src"
    sub.mkdir()
    result = seqrun("--co", "-q", "../.kiro/specs/other", cwd=sub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ".kiro/specs/other::1"


# -- mistakes ------------------------------------------------------------------------------


def test_a_mistyped_option_suggests_the_right_one(make_spec, project):
    make_spec(SPEC)
    result = seqrun("--dealy", "5", cwd=project)
    assert result.returncode == 4
    assert one_error_line(result) == "ERROR: unrecognized option --dealy (did you mean --delay?)"
    assert result.stdout == ""
    # The same mistake in the config file: a warning with the suggestion.
    (project / "seqrun.toml").write_text("dealy = 5\n")
    result = seqrun("--co", "-q", cwd=project)
    assert f"{project / 'seqrun.toml'}: unknown option 'dealy' ignored (did you mean delay?)" in result.stderr


def test_a_mistyped_backend_suggests_the_right_one(make_spec, project):
    make_spec(SPEC)
    result = seqrun("--co", "--backend", "cladue", cwd=project)
    assert result.returncode == 4
    assert "unknown backend 'cladue' (did you mean claude?" in one_error_line(result)


def test_a_mistyped_task_id_suggests_the_right_one(make_spec, project):
    make_spec("- [ ] 1. One\n  - [ ] 1.2 Two\n    - [ ] 1.2.1 Three\n")
    result = seqrun("--co", ".kiro/specs/feature::1.21", cwd=project)
    assert result.returncode == 4
    assert one_error_line(result) == (
        "ERROR: not found: .kiro/specs/feature::1.21 (no task with that id; did you mean 1.2.1?)")


@pytest.mark.parametrize("name, text", [
    ("requirements.md", KIRO_REQUIREMENTS),
    ("design.md", "# Design\n\n- [ ] 1. A checklist in a design document\n"),
    ("acceptance.md", KIRO_REQUIREMENTS),  # not by its name: it reads as requirements
    ("notes.md", "# Notes\n\nNothing to do here.\n"),  # no task lines at all
])
def test_a_file_that_is_not_a_task_list_is_a_usage_error(make_spec, project, name, text):
    folder = make_spec(SPEC)
    (folder / name).write_text(text)
    use_command_agent(project, AGENT)
    result = seqrun("--no-tmux", "--backend", "command", f".kiro/specs/feature/{name}", cwd=project)
    assert result.returncode == 4, result.stdout + result.stderr
    line = one_error_line(result)
    assert f".kiro/specs/feature/{name}" in line and "tasks.md" in line
    assert "collected" not in result.stdout
    assert not (project / "agent-runs.txt").exists()


@pytest.mark.parametrize("name, text, ids", [
    ("phase_2.md", "- [ ] 1. Checkbox task\n", ["1"]),
    ("plan.md", "# Plan\n\n### Task 1.1: Heading task\n\nDo it.\n\n### Task 1.2: Next\n", ["1.1", "1.2"]),
    ("seed.md", "# Plan\n\n1. Numbered task\n2. Another one\n", ["1", "2"]),
])
def test_real_task_lists_under_any_name_still_run(make_spec, project, name, text, ids):
    folder = make_spec(SPEC)
    (folder / name).write_text(text)
    result = seqrun("--co", "-q", f".kiro/specs/feature/{name}", cwd=project)
    assert result.returncode == 0, result.stderr
    assert [line.split("::")[1] for line in result.stdout.splitlines() if "::" in line] == ids


def test_k_that_selects_nothing_names_nearby_ids(make_spec, project):
    make_spec(SPEC)
    result = seqrun("--co", "-k", "1.2", cwd=project)
    assert result.returncode == 5
    assert "no task matches -k '1.2'; ids nearby: 1.1, 1.3, 2.2" in result.stderr


def test_a_missing_cli_is_reported_before_anything_is_collected(make_spec, project):
    make_spec(SPEC)
    result = seqrun("--no-tmux", "--backend", "codex", cwd=project,
                    env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 4
    assert one_error_line(result).startswith("ERROR: codex not found on PATH")
    assert result.stdout == ""
    # A PATH that holds no tasks is the first mistake to say: installing the
    # CLI would not make it run.
    (project / ".kiro" / "specs" / "feature" / "requirements.md").write_text(KIRO_REQUIREMENTS)
    result = seqrun("--no-tmux", "--backend", "codex", ".kiro/specs/feature/requirements.md", cwd=project,
                    env={"PATH": os.path.dirname(sys.executable)})
    assert result.returncode == 4
    assert "requirements document, not its task list" in one_error_line(result)


# -- --help ----------------------------------------------------------------------------------


def help_text(*args: str, cwd: Path) -> str:
    result = seqrun(*args, cwd=cwd, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def headings(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Za-z][^:]*:", line)]


def every_option(cwd: Path) -> set[str]:
    """Every option string the parser knows, asked from seqrun itself."""
    code = ("from seqrun.config import build_parser, new_pluginmanager, BUILTIN_PLUGINS, import_plugin\n"
            "pm = new_pluginmanager()\n"
            "[import_plugin(pm, m, n) for n, m in BUILTIN_PLUGINS.items()]\n"
            "print('\\n'.join(s for a in build_parser(pm)._actions for s in a.option_strings))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=seqrun_env(), text=True,
                         capture_output=True, check=True).stdout
    return set(out.split())


def test_help_is_short_general_first_and_each_heading_once(project):
    text = help_text("--help", cwd=project)
    assert len(text.splitlines()) <= 120, len(text.splitlines())
    heads = headings(text)
    assert len(heads) == len(set(heads)), heads
    assert heads[:2] == ["positional arguments", "general"], heads
    general = text.split("\ngeneral:\n", 1)[1].split("\n\n", 1)[0]
    flags = [m.group(1) for m in re.finditer(r"^  (-[-\w]+)", general, re.MULTILINE)]
    assert flags[:4] == ["-k", "--collect-only", "-x", "--maxfail"], flags
    assert "--lf" in flags
    # The options it does not describe are named, so nothing is out of sight.
    for option in ("--notify", "--git-commit", "--junitxml", "--verify", "--tmux-session"):
        assert option in text


def test_help_all_describes_every_option(project):
    text = help_text("--help-all", cwd=project)
    heads = headings(text)
    assert len(heads) == len(set(heads)), heads
    described = set(re.findall(r"(?<![\w-])(--?[A-Za-z][-\w=]*)", text))
    assert every_option(project) - described == set()
    assert "more options" not in text
