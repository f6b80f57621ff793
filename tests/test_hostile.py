"""Hostile input stays inert: nothing reaches a shell, no file is written outside
the spec's folders and the report paths, seqrun's own output cannot be hijacked."""
from __future__ import annotations

import json
import os

import pytest

HOSTILE_TITLES = [
    "Run $(touch PWNED_SUBST) now",
    "Run `touch PWNED_TICK` now",
    "Quote ' \" ; touch PWNED_SEMI; echo",
    "Escape \x1b]0;OWNED\x07 and \x1b[2J clear",
    "Markup [bold red]x[/] and #(touch PWNED_TMUX) #{pane_pid}",
    "Long " + "y" * 20000,
]


def files_in(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("tmux", [False, True], ids=["pty", "tmux"])
def test_hostile_titles_and_details_are_inert(tmux, make_spec, run_seqrun, project, tmp_path_factory):
    import shutil

    if tmux and shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    lines = [f"- [ ] {i + 1}. {title}" for i, title in enumerate(HOSTILE_TITLES)]
    lines.insert(2, "  - detail with NUL \x00 byte and ../../etc/passwd and $(touch PWNED_DETAIL)")
    make_spec("\n".join(lines) + "\n", name="feat")
    env = {}
    if tmux:
        sock = tmp_path_factory.mktemp("tmux")
        env["TMUX_TMPDIR"] = str(sock)
    before = files_in(project)
    args = ["--backend", "claude", "--delay", "0"] + ([] if tmux else ["--no-tmux"])
    try:
        result = run_seqrun(*args, env=env, fakes=True)
    finally:
        if tmux:
            import subprocess

            from conftest import seqrun_env

            subprocess.run(["tmux", "kill-server"], env=seqrun_env(env), capture_output=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert not [p for p in project.rglob("PWNED*")]
    assert not list(project.parent.rglob("PWNED*"))
    # seqrun's own output carries no escape sequence from a title.
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    new = files_in(project) - before
    assert all(p.startswith(".kiro/specs/") or p == "calls.jsonl" for p in new), sorted(new)


def test_hostile_spec_folder_name(make_spec, run_seqrun, project):
    name = "feat $(touch PWNED) `x` ; 'q' \"d\""
    make_spec("- [ ] 1. Task\n", name=name)
    result = run_seqrun("--backend", "claude", "--delay", "0", "--no-tmux",
                        "--tmux-session", "s$(touch PWNED2)", fakes=True)
    assert result.returncode == 0, result.stderr
    assert not list(project.rglob("PWNED*"))
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert state["spec"] == name
    logs = project / ".kiro" / "specs" / ".seqrun" / "logs"
    assert all(".." not in p.name and "/" not in p.name for p in logs.iterdir())


def test_invalid_utf8_in_tasks_file_runs_and_reports(make_spec, run_seqrun, project):
    folder = make_spec(b"- [ ] 1. Caf\xe9 latin-1 title\n  - detail \xff\xfe\n- [ ] 2. Fine\n")
    result = run_seqrun("--backend", "claude", "--delay", "0", "--no-tmux", "--junitxml", "r.xml",
                        fakes=True)
    assert result.returncode == 0, result.stderr
    assert "invalid UTF-8" in result.stderr
    # Ticking keeps the undecodable bytes exactly.
    assert (folder / "tasks.md").read_bytes() == b"- [x] 1. Caf\xe9 latin-1 title\n  - detail \xff\xfe\n- [x] 2. Fine\n"
    json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert (project / "r.xml").read_text().count("<testcase") == 2


def test_path_traversal_in_report_paths_is_the_users_choice_but_specs_are_contained(make_spec, run_seqrun, project):
    # make_spec(name="..") writes .kiro/specs/../tasks.md, that is .kiro/tasks.md.
    kiro_tasks = make_spec("- [ ] 1. Task\n", name="..") / "tasks.md"
    assert kiro_tasks.resolve() == (project / ".kiro" / "tasks.md").resolve()
    before = files_in(project)
    # The spec is reached through "..", and the report path climbs out of .kiro: the user asked for it there.
    result = run_seqrun("--backend", "claude", "--delay", "0", "--no-tmux", ".kiro/specs/..",
                        "--junitxml", ".kiro/specs/../../report.xml", fakes=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert kiro_tasks.read_text() == "- [x] 1. Task\n"
    assert (project / "report.xml").read_text().count("<testcase") == 1
    # Everything else seqrun wrote stays under the specs root, whatever ".." the spec's path has.
    new = files_in(project) - before
    assert all(p.startswith(".kiro/specs/") or p == "report.xml" for p in new), sorted(new)
    assert (project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").is_file()
    assert not (project / ".kiro" / "SEQUENTIAL_STATE.json").exists()
    assert not (project.parent / "report.xml").exists()
    logs = project / ".kiro" / "specs" / ".seqrun" / "logs"
    assert [p.name for p in logs.iterdir()] and all(".." not in p.name for p in logs.iterdir())

    # A spec folder literally named "..." is a name like any other, and stays inside.
    make_spec("- [ ] 1. Task\n", name="...")
    result = run_seqrun("--backend", "claude", "--delay", "0", "--no-tmux", ".kiro/specs/...", fakes=True)
    assert result.returncode == 0, result.stderr
    assert (project / ".kiro" / "specs" / "..." / "tasks.md").read_text() == "- [x] 1. Task\n"
    assert all(".." not in p.name for p in logs.iterdir())
    assert not (project / ".kiro" / "SEQUENTIAL_STATE.json").exists()


def test_collect_only_quiet_ids_are_printable(make_spec, run_seqrun):
    # --co -q writes its 5,000 ids in one go; a spec folder named with an
    # escape sequence still cannot reach the terminal.
    make_spec("- [ ] 1. One\n- [ ] 2. Two\n", name="feat\x1b]0;OWNED\x07x\x1b[2J")
    result = run_seqrun("--co", "-q")
    assert result.returncode == 0, result.stderr
    listed = result.stdout.splitlines()[:2]
    assert [line.rsplit("::", 1)[1] for line in listed] == ["1", "2"]
    assert not any(c in result.stdout for c in "\x1b\x07"), repr(result.stdout)
