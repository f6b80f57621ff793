"""A console that closes under a run does not stop it (``seqrun | head -2``).

seqrun runs as a user runs it, with its stdout (or stderr) a pipe whose
reader goes away after a couple of lines; every task must still run and be
recorded, and the exit status is the tasks'.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import seqrun_env, use_command_agent

TEN = "".join(f"- [ ] {n}. Task number {n}\n" for n in range(1, 11))

#: Says a few lines (-s and -v echo them to stdout), then passes.
AGENT = """\
import sys
for i in range(20):
    print(f"working on {sys.argv[-1]}: step {i}")
print("<promise>TASK_DONE</promise>")
"""


def _ten_tasks(project: Path, make_spec, toml_top: str = "") -> Path:
    folder = make_spec(TEN)
    use_command_agent(project, AGENT, "{prompt_file}", "{task_id}", toml_top=toml_top)
    return folder


def _assert_all_ten_done(project: Path, folder: Path) -> None:
    text = (folder / "tasks.md").read_text()
    assert text == TEN.replace("[ ]", "[x]"), text
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert sorted(state["specs"]["feature"]["completed"], key=int) == [str(n) for n in range(1, 11)]
    progress = (project / ".kiro" / "specs" / "SEQUENTIAL_PROGRESS.md").read_text()
    assert progress.count("## Iteration") == 10


def _run_with_closing_reader(project: Path, stream: str, *args: str) -> tuple[int, list[bytes]]:
    """Run seqrun with ``stream`` ("stdout" or "stderr") a pipe that is closed
    after two lines were read from it (or at once when it says nothing)."""
    other = {"stdout": "stderr", "stderr": "stdout"}[stream]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrun", "--no-tmux", "--delay", "0", "--backend", "command", *args],
        cwd=project, env=seqrun_env(), stdin=subprocess.DEVNULL,
        **{stream: subprocess.PIPE, other: subprocess.DEVNULL},
    )
    pipe = getattr(proc, stream)
    read = [pipe.readline() for _ in range(2)] if stream == "stdout" else []
    pipe.close()
    return proc.wait(timeout=120), read


@pytest.mark.parametrize("flags", [(), ("-v",), ("-s",), ("--color", "yes")],
                         ids=["plain", "verbose", "echo", "rich"])
def test_closing_stdout_after_two_lines_runs_every_task(flags, make_spec, project):
    folder = _ten_tasks(project, make_spec)
    code, read = _run_with_closing_reader(project, "stdout", *flags)
    assert all(read), read  # the reader did get its two lines
    assert code == 0
    _assert_all_ten_done(project, folder)


def test_closing_stdout_keeps_the_tasks_exit_status(make_spec, project):
    folder = make_spec(TEN)
    use_command_agent(project, 'import sys\nprint("nothing done")\nsys.exit(1)\n',
                      "{prompt_file}", "{task_id}")
    code, _ = _run_with_closing_reader(project, "stdout", "--reruns", "0")
    assert code == 1  # the tasks failed: that, not the closed pipe, decides
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert sorted(state["specs"]["feature"]["failed"], key=int) == [str(n) for n in range(1, 11)]
    assert (folder / "tasks.md").read_text() == TEN


@pytest.mark.parametrize("toml_top, flags", [
    ("no_such_key = 1", ()),  # an unknown key in seqrun.toml: a warning before the first task
    ("", ("--max-cost", "100")),  # no cost reported: a warning after the first task
], ids=["before-the-first-task", "after-the-first-task"])
def test_closed_stderr_with_a_warning_runs_every_task(toml_top, flags, make_spec, project):
    folder = _ten_tasks(project, make_spec, toml_top=toml_top)
    code, _ = _run_with_closing_reader(project, "stderr", *flags)
    assert code == 0
    _assert_all_ten_done(project, folder)
