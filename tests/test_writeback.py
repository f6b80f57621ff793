"""tasks.md write-back: ``[-]`` while a task runs, ``[x]`` when it passes, and
not one other byte changed — checked against hand-written bytes. Agents are
scripts run through the ``command`` backend; some edit tasks.md while they run.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from conftest import use_command_agent

from seqrun.nodes import Task
from seqrun.writeback import LineTracker, set_mark

TASKS = Path(".kiro") / "specs" / "feature" / "tasks.md"
DONE = "<promise>TASK_DONE</promise>"

#: An agent: ``task`` is the task id, ``tasks_md`` the path of tasks.md; it
#: finishes by printing ``DONE`` (pass) or anything else (fail).
PRELUDE = f'''
import sys
task = sys.argv[2]
tasks_md = {str(TASKS)!r}
DONE = {DONE!r}
def read():
    return open(tasks_md, "rb").read()
def write(data):
    open(tasks_md, "wb").write(data)
'''


def configure(project: Path, body: str) -> None:
    script = project / "agent.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    (project / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(script))}, '
        '"{prompt_file}", "{task_id}"]\n')


def run(run_seqrun: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> subprocess.CompletedProcess[str]:
    return run_seqrun("--no-tmux", "--delay", "0", "--backend", "command", *args)


PASS = "print(DONE)\n"


# -- exact bytes -------------------------------------------------------------------------------------

CRLF_BEFORE = (
    b"# Tasks\r\n"
    b"\r\n"
    b"- [ ] 1. Caf\xc3\xa9 setup \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\r\n"
    b"\t- _Requirements: 1.1_\r\n"
    b"- [ ] 2. Parent\r\n"
    b"  - [ ]* 2.1 Optional tests\r\n"
    b"  - [ ]\\* 2.2 Escaped optional\r\n"
    b"  - [ ]  2.3\tTabbed  title  \r\n"
    b"\t\t- detail with [ ] brackets\r\n"
    b"- [ ] 3. Last, no final newline"
)

CRLF_AFTER = (
    b"# Tasks\r\n"
    b"\r\n"
    b"- [x] 1. Caf\xc3\xa9 setup \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\r\n"
    b"\t- _Requirements: 1.1_\r\n"
    b"- [x] 2. Parent\r\n"
    b"  - [ ]* 2.1 Optional tests\r\n"
    b"  - [ ]\\* 2.2 Escaped optional\r\n"
    b"  - [x]  2.3\tTabbed  title  \r\n"
    b"\t\t- detail with [ ] brackets\r\n"
    b"- [x] 3. Last, no final newline"
)

CRLF_AFTER_WITH_OPTIONAL = (
    b"# Tasks\r\n"
    b"\r\n"
    b"- [x] 1. Caf\xc3\xa9 setup \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\r\n"
    b"\t- _Requirements: 1.1_\r\n"
    b"- [x] 2. Parent\r\n"
    b"  - [x]* 2.1 Optional tests\r\n"
    b"  - [x]\\* 2.2 Escaped optional\r\n"
    b"  - [x]  2.3\tTabbed  title  \r\n"
    b"\t\t- detail with [ ] brackets\r\n"
    b"- [x] 3. Last, no final newline"
)


@pytest.mark.parametrize("args, expected", [([], CRLF_AFTER),
                                            (["--include-optional"], CRLF_AFTER_WITH_OPTIONAL)],
                         ids=["default", "include-optional"])
def test_crlf_file_changes_only_the_marks(args, expected, make_spec, run_seqrun, project):
    make_spec(CRLF_BEFORE)
    configure(project, PASS)
    result = run(run_seqrun, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_bytes() == expected


def test_no_mark_leaves_every_byte(make_spec, run_seqrun, project):
    make_spec(CRLF_BEFORE)
    configure(project, '''
        # The [-] mark is not there either.
        assert b"[-]" not in read()
        print(DONE)
    ''')
    result = run(run_seqrun, "--no-mark")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_bytes() == CRLF_BEFORE


# -- the running mark ---------------------------------------------------------------------------------------


def test_running_mark_is_visible_to_the_agent_and_reverted_on_failure(make_spec, run_seqrun, project):
    before = b"- [ ] 1. First\r\n- [ ] 2. Second\r\n"
    make_spec(before)
    configure(project, '''
        with open("seen.txt", "ab") as f:
            f.write(read())
        print(DONE if task == "1" else "cannot do it")
    ''')
    result = run(run_seqrun, "--reruns", "1")
    assert result.returncode == 1
    seen = (project / "seen.txt").read_bytes()
    assert seen == (b"- [-] 1. First\r\n- [ ] 2. Second\r\n"   # task 1 running
                    b"- [x] 1. First\r\n- [-] 2. Second\r\n"   # task 2, attempt 1
                    b"- [x] 1. First\r\n- [-] 2. Second\r\n")  # task 2, the rerun: still [-]
    assert (project / TASKS).read_bytes() == b"- [x] 1. First\r\n- [ ] 2. Second\r\n"


def test_a_mark_left_by_a_killed_run_is_not_done(make_spec, run_seqrun, project):
    make_spec("- [-] 1. Interrupted before\n- [-] 2. Also interrupted\n")
    configure(project, 'print(DONE if task == "1" else "no")\n')
    result = run(run_seqrun, "--reruns", "0")
    assert result.returncode == 1
    assert (project / TASKS).read_text() == "- [x] 1. Interrupted before\n- [ ] 2. Also interrupted\n"


def test_a_failed_agent_that_ticks_its_own_task_is_not_believed(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Claims done\n- [ ] 2. Other\n")
    configure(project, '''
        if task == "1":
            write(read().replace(b"[-] 1.", b"[x] 1.").replace(b"Other", b"Other (edited)"))
            print("I ticked it but never said the marker")
        else:
            print(DONE)
    ''')
    result = run(run_seqrun, "--reruns", "0", "-k", "1")
    assert result.returncode == 1
    # Its checkbox follows the verdict; its other edit stays.
    assert (project / TASKS).read_text() == "- [ ] 1. Claims done\n- [ ] 2. Other (edited)\n"


def test_unit_dispatch_marks_the_parent_running(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Parent\n  - [ ] 1.1 Child\n  - [ ] 1.2 Child\n- [ ] 2. Next\n")
    configure(project, '''
        with open("seen.txt", "ab") as f:
            f.write(read())
        print(DONE if task == "1" else "no")
    ''')
    result = run(run_seqrun, "--dispatch", "unit", "--reruns", "0")
    assert result.returncode == 1
    assert (project / "seen.txt").read_text().startswith(
        "- [-] 1. Parent\n  - [ ] 1.1 Child\n  - [ ] 1.2 Child\n- [ ] 2. Next\n"
        "- [x] 1. Parent\n  - [x] 1.1 Child\n  - [x] 1.2 Child\n- [-] 2. Next\n")
    assert (project / TASKS).read_text() == "- [x] 1. Parent\n  - [x] 1.1 Child\n  - [x] 1.2 Child\n- [ ] 2. Next\n"


# -- the agent edits tasks.md -----------------------------------------------------------------------------------


def test_agent_edits_survive_and_the_right_task_is_ticked(make_spec, run_seqrun, project):
    make_spec(
        "# Plan\n"
        "- [ ] 1. One\n"
        "- [ ] 2. Two\n"
        "- [ ] 3. Three\n"
        "- [ ]* 4. Optional, ticked by the agent\n"
    )
    configure(project, '''
        if task == "2":
            data = read()
            # Lines above the task, another task's title, another task's box.
            data = data.replace(b"# Plan\\n", b"# Plan\\n\\nNotes from the agent:\\n- [ ] 3. Three\\n\\n", 1)
            data = data.replace(b"[x] 1. One", b"[x] 1. One (renamed by the agent)")
            data = data.replace(b"[ ]* 4.", b"[x]* 4.")
            write(data)
        print(DONE)
    ''')
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    # The note repeats task 3's line right where task 3 was: the task is
    # still the line it was, now the second of two identical lines.
    assert (project / TASKS).read_text() == (
        "# Plan\n"
        "\n"
        "Notes from the agent:\n"
        "- [ ] 3. Three\n"
        "\n"
        "- [x] 1. One (renamed by the agent)\n"
        "- [x] 2. Two\n"
        "- [x] 3. Three\n"
        "- [x]* 4. Optional, ticked by the agent\n"
    )


def test_identical_task_lines_each_tick_their_own(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Alpha\n  - [ ] Write tests\n- [ ] 2. Beta\n  - [ ] Write tests\n")
    configure(project, '''
        if "~" not in task:  # the first "Write tests" adds lines at the top
            write(b"<!-- a -->\\n<!-- b -->\\n<!-- c -->\\n" + read())
        print(DONE)
    ''')
    result = run(run_seqrun, "-k", "not Beta")  # the second one's parent is not done
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_text() == (
        "<!-- a -->\n<!-- b -->\n<!-- c -->\n"
        "- [x] 1. Alpha\n  - [x] Write tests\n- [ ] 2. Beta\n  - [ ] Write tests\n")
    result = run(run_seqrun, "--fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_text() == (
        "<!-- a -->\n<!-- b -->\n<!-- c -->\n"
        "- [x] 1. Alpha\n  - [x] Write tests\n- [x] 2. Beta\n  - [x] Write tests\n")


def test_identical_lines_in_one_run(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Alpha\n  - [ ] Write tests\n- [ ] 2. Beta\n  - [ ] Write tests\n")
    configure(project, '''
        if "~" not in task:
            write(b"<!-- a -->\\n<!-- b -->\\n<!-- c -->\\n" + read())
        print(DONE)
    ''')
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_text() == (
        "<!-- a -->\n<!-- b -->\n<!-- c -->\n"
        "- [x] 1. Alpha\n  - [x] Write tests\n- [x] 2. Beta\n  - [x] Write tests\n")


def test_agent_deletes_its_own_line(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Vanishing\n- [ ] 2. Stays\n")
    configure(project, '''
        if task == "1":
            write(b"".join(l for l in read().splitlines(True) if b"Vanishing" not in l))
        print(DONE)
    ''')
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / TASKS).read_text() == "- [x] 2. Stays\n"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert f"{TASKS}:1: task 1 not found in the file any more" in warnings[0]
    assert "Traceback" not in result.stderr


def test_agent_deletes_tasks_md(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Takes the file away\n- [ ] 2. Next\n")
    configure(project, '''
        import os
        if task == "1":
            os.remove(tasks_md)
        print(DONE)
    ''')
    result = run(run_seqrun)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (project / TASKS).exists()
    assert "WARNING" in result.stderr and "Traceback" not in result.stderr


def test_agent_converts_the_file_to_crlf(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. First\n- [ ] 2. Second\n")
    configure(project, '''
        if task == "1":
            write(read().replace(b"\\n", b"\\r\\n"))
        print(DONE)
    ''')
    assert run(run_seqrun).returncode == 0
    # Found by content whatever the line ending; the agent's endings stay.
    assert (project / TASKS).read_bytes() == b"- [x] 1. First\r\n- [x] 2. Second\r\n"


def test_symlinked_tasks_md_stays_a_symlink(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. First\n")
    real = project / "real-tasks.md"
    real.write_bytes((folder / "tasks.md").read_bytes())
    (folder / "tasks.md").unlink()
    (folder / "tasks.md").symlink_to(real)
    configure(project, PASS)
    assert run(run_seqrun).returncode == 0
    assert (folder / "tasks.md").is_symlink()
    assert real.read_text() == "- [x] 1. First\n"


# -- the functions themselves -----------------------------------------------------------------------------------


def _task(line: int) -> Task:
    return Task(id=str(line), title="t", line=line)


def test_tracker_follows_identical_lines_through_edits():
    data = b"- [ ] A\n- [ ] B\n- [ ] A\n"
    first, second = _task(1), _task(3)
    tracker = LineTracker(data, [first, second])
    # Lines added above, and a third identical line added below.
    edited = b"x\n" * 10 + data.replace(b"[ ] B", b"[x] B") + b"- [ ] A\n"
    assert tracker.locate(second, edited) == 12
    assert tracker.locate(first, edited) == 10
    # The first one deleted: it is gone, and the second is not taken for it.
    fewer = b"x\n" * 10 + b"- [x] B\n- [ ] A\n- [ ] A\n"
    assert tracker.locate(first, fewer) is None
    assert tracker.locate(second, fewer) == 11


def test_tracker_finds_a_moved_unique_line():
    data = b"- [ ] 1. One\n- [ ] 2. Two\n- [ ] 3. Three\n"
    tasks = [_task(1), _task(2), _task(3)]
    tracker = LineTracker(data, tasks)
    moved = b"- [ ] 3. Three\r\n- [ ] 1. One\r\n- [ ] 2. Two\r\n"
    assert [tracker.locate(t, moved) for t in tasks] == [1, 2, 0]


def test_set_mark_only_from_the_expected_marks(tmp_path):
    path = tmp_path / "tasks.md"
    path.write_bytes(b"- [x] 1. A\n")
    task = _task(1)
    tracker = LineTracker(path.read_bytes(), [task])
    assert set_mark(path, tracker, task, "-", expect=" -") == "kept"
    assert set_mark(path, tracker, task, "x") == "same"
    assert set_mark(path, tracker, task, " ") == "changed"
    assert path.read_bytes() == b"- [ ] 1. A\n"
    path.write_bytes(b"- [ ] 1. Renamed\n")
    assert set_mark(path, tracker, task, "x") == "missing"
    assert path.read_bytes() == b"- [ ] 1. Renamed\n"


def test_a_task_ticked_during_the_run_is_not_dispatched(make_spec, run_seqrun, project):
    """The agent of task 1 also did task 2 and ticked it: task 2 is skipped."""
    folder = make_spec("- [ ] 1. First\n- [ ] 2. Second\n- [ ] 3. Third\n")
    use_command_agent(project, textwrap.dedent(f"""
        import pathlib, sys
        with open({str(project / "ran.txt")!r}, "a") as f:
            f.write(sys.argv[1] + "\\n")
        if sys.argv[1] == "1":
            tasks = pathlib.Path({str(folder / "tasks.md")!r})
            tasks.write_text(tasks.read_text().replace("- [ ] 2. Second", "- [x] 2. Second"))
        print("<promise>TASK_DONE</promise>")
    """), "{task_id}")
    result = run_seqrun("--backend", "command", "--no-tmux", "--delay", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "ran.txt").read_text().split() == ["1", "3"]
    assert (folder / "tasks.md").read_text() == "- [x] 1. First\n- [x] 2. Second\n- [x] 3. Third\n"
