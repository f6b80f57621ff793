"""Crash safety: ``kill -9`` of seqrun at random moments, a power cut at each
file write, and :func:`atomic_write` when the rename or the fsync fails.

What must hold after any crash: the state file is valid JSON that seqrun
accepts; tasks.md differs from the original only in checkbox marks; no task
that passed (``completed`` in the state, or ``[x]`` in tasks.md) is lost or
run again; on the next run each interrupted task runs at most once; and a run
without a crash then completes.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import read_state_file, seqrun_env, write_points
from seqrun import atomicfile
from seqrun.atomicfile import atomic_write, remove_stale_temps
from seqrun.statefile import state_problem

SPECS = Path(".kiro") / "specs"
TASKS = SPECS / "feature" / "tasks.md"
STATE = SPECS / "SEQUENTIAL_STATE.json"

#: The agent: logs "<run> <task>" when it starts, works a short random while
#: (seeded by run and task, so a rerun is reproducible), then passes.
AGENT = r'''
import os, random, sys, time
task = sys.argv[2]
run = os.environ.get("CRASH_RUN", "?")
with open(os.environ["CRASH_CALLS"], "a") as f:
    f.write(f"{run} {task}\n")
low, high = (float(x) for x in os.environ.get("CRASH_SLEEP", "0.02,0.2").split(","))
time.sleep(random.Random(f"{run}/{task}").uniform(low, high))
print("done with", task)
print()
print("<promise>TASK_DONE</promise>")
'''

#: A plugin (``.kiro/specs/conftest.py``) that ends the process the way a
#: power cut would, at the N-th write of a file: a rename of a whole file
#: written aside (the state), or a mark written in place in tasks.md — just
#: before it (the target untouched) or just after it; or that makes the N-th
#: write fail with an OSError, as a full disk would.
POWER_CUT = r'''
import os
''' + write_points("CRASH") + r'''
_replace = os.replace
_pwrite = os.pwrite


def _cut(src, dst, *args, **kwargs):
    _point(os.path.basename(dst))
    _replace(src, dst, *args, **kwargs)
    _after()


def _cut_in_place(fd, data, offset):
    name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if name != "tasks.md":
        return _pwrite(fd, data, offset)
    _point(name)
    written = _pwrite(fd, data, offset)
    _after()
    return written


os.replace = _cut
os.pwrite = _cut_in_place
'''


def make_project(root: Path, n_tasks: int, *, power_cut: bool = False) -> tuple[Path, bytes]:
    """A project with an ``n_tasks`` spec and the scripted agent; returns it
    and tasks.md's bytes."""
    (root / SPECS / "feature").mkdir(parents=True)
    text = "# Plan\r\n\r\n" + "".join(
        f"- [ ] {i}. Task number {i}\r\n  - detail of {i}\r\n" for i in range(1, n_tasks + 1))
    data = text.encode()
    (root / TASKS).write_bytes(data)
    (root / "agent.py").write_text(AGENT)
    (root / "seqrun.toml").write_text(
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, '
        f'{json.dumps(str(root / "agent.py"))}, "{{prompt_file}}", "{{task_id}}"]\n')
    if power_cut:
        (root / SPECS / "conftest.py").write_text(POWER_CUT)
    return root, data


def seqrun_argv() -> list[str]:
    # "--delay=0", not "--delay 0": the early parse that finds conftest.py
    # files takes a separate option value for a spec path (see the report).
    return [sys.executable, "-m", "seqrun", "--no-tmux", "--delay=0", "--backend=command", "-q"]


def env_for(project: Path, run: int | str, **extra: str) -> dict[str, str]:
    return seqrun_env({"CRASH_CALLS": str(project / "calls.log"), "CRASH_RUN": str(run), **extra})


def calls(project: Path) -> list[tuple[str, str]]:
    """(run, task id) of every agent start."""
    path = project / "calls.log"
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line.strip()]  # type: ignore[misc]


def check_files(project: Path, original: bytes) -> set[str]:
    """Assert both files are valid after a crash; return the ids that passed
    (completed in the state, or ticked in tasks.md)."""
    passed: set[str] = set()
    path = project / STATE
    if path.exists():
        data = json.loads(path.read_bytes().decode("utf-8"))
        assert state_problem(data) is None, data
        passed |= set(data["specs"].get("feature", {}).get("completed", []))
    now = (project / TASKS).read_bytes()
    assert len(now) == len(original), now
    for before, after in zip(original.splitlines(keepends=True), now.splitlines(keepends=True)):
        if before.startswith(b"- [ ] "):
            assert after[:3] + after[4:] == before[:3] + before[4:], (before, after)
            assert after[3:4] in (b" ", b"-", b"x"), after
            if after[3:4] == b"x":
                passed.add(after.split()[2].rstrip(b".").decode())
        else:
            assert after == before
    return passed


def check_calls(project: Path, passed_after: dict[str, set[str]]) -> Counter[str]:
    """Per run, each task started at most once, and never after it passed.
    ``passed_after[run]`` holds what had passed when that run ended."""
    runs: dict[str, list[str]] = {}
    for run, task in calls(project):
        runs.setdefault(run, []).append(task)
    previous: set[str] = set()
    for run in passed_after:  # in the order the runs happened
        started = runs.get(run, [])
        assert len(started) == len(set(started)), (run, started)  # at most once per run
        assert not previous & set(started), (run, previous & set(started))  # passed is not redone
        previous = passed_after[run]
    return Counter(task for _, task in calls(project))


# -- kill -9 at random moments ---------------------------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing(tmp_path):
    n_tasks, iterations = 40, 20
    project, original = make_project(tmp_path, n_tasks)
    rng = random.Random(1234)
    passed: set[str] = set()
    passed_after: dict[str, set[str]] = {}
    killed_mid_run = 0
    for run in range(iterations):
        proc = subprocess.Popen(seqrun_argv(), cwd=project, env=env_for(project, run),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            killed_mid_run += 1
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        now = check_files(project, original)
        assert passed <= now, f"run {run} lost {passed - now}"
        passed = passed_after[str(run)] = now
    # The last run, undisturbed, finishes the spec.
    result = subprocess.run(seqrun_argv(), cwd=project, env=env_for(project, "final"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    passed_after["final"] = check_files(project, original)
    ids = {str(i) for i in range(1, n_tasks + 1)}
    assert passed_after["final"] == ids
    state = json.loads((project / STATE).read_text())["specs"]["feature"]
    assert set(state["completed"]) == ids and state["completed_at"] is not None
    assert (project / TASKS).read_bytes() == original.replace(b"- [ ]", b"- [x]")
    per_task = check_calls(project, passed_after)
    # Each start beyond the first was after a kill that hit that very task
    # (two kills in a row can hit the same task, so "at most twice" is not a
    # law; "once per run, never after it passed" is, checked above).
    assert sum(per_task.values()) - n_tasks <= killed_mid_run
    assert not list((project / SPECS).glob(".SEQUENTIAL_STATE.json.*.tmp"))
    assert killed_mid_run >= 10  # the test did kill runs in flight


# -- a power cut at each write ------------------------------------------------------------------------------


def _write_points(root: Path, n_tasks: int) -> list[str]:
    """The renames one undisturbed run makes (file names, in order)."""
    project, _ = make_project(root, n_tasks, power_cut=True)
    writes = project / "writes.log"
    result = subprocess.run(seqrun_argv(), cwd=project, env=env_for(project, 0, CRASH_WRITES=str(writes)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split()[1] for line in writes.read_text().splitlines()]


def _crash_then_resume(root: Path, n_tasks: int, mode: str, at: int) -> dict[str, Any]:
    project, original = make_project(root, n_tasks, power_cut=True)
    first = subprocess.run(seqrun_argv(), cwd=project,
                           env=env_for(project, 0, CRASH_AT=str(at), CRASH_MODE=mode),
                           capture_output=True, text=True, timeout=60)
    passed = check_files(project, original)
    second = subprocess.run(seqrun_argv(), cwd=project, env=env_for(project, 1),
                            capture_output=True, text=True, timeout=60)
    final = check_files(project, original)
    return {"project": project, "first": first, "second": second, "passed": passed, "final": final}


@pytest.mark.parametrize("mode", ["before", "after", "fail"])
def test_a_power_cut_at_any_write_loses_at_most_the_task_in_flight(mode, tmp_path):
    n_tasks = 2
    points = _write_points(tmp_path / "count", n_tasks)
    assert points.count("SEQUENTIAL_STATE.json") >= 2 + 2 * n_tasks
    assert points.count("tasks.md") == 2 * n_tasks  # [-] then [x]
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(
            lambda at: _crash_then_resume(tmp_path / f"{mode}-{at}", n_tasks, mode, at),
            range(1, len(points) + 1)))
    ids = {str(i) for i in range(1, n_tasks + 1)}
    for at, outcome in enumerate(outcomes, start=1):
        where = f"{mode} write {at} ({points[at - 1]})"
        first, second = outcome["first"], outcome["second"]
        if mode != "fail":
            assert first.returncode == 137, (where, first.stdout + first.stderr)
        else:
            assert "Traceback" not in first.stderr, where
        assert second.returncode == 0, (where, second.stdout + second.stderr)
        assert outcome["final"] == ids, where
        project = outcome["project"]
        per_task = check_calls(project, {"0": outcome["passed"], "1": outcome["final"]})
        # Only a task in flight when the power went runs twice.
        assert sum(per_task.values()) <= n_tasks + 1, (where, per_task)
        state = json.loads((project / STATE).read_text())["specs"]["feature"]
        assert set(state["completed"]) == ids, where


# -- atomic_write itself -------------------------------------------------------------------------------------------


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_atomic_write_failure_keeps_the_old_file(failing, tmp_path, monkeypatch):
    path = tmp_path / "SEQUENTIAL_STATE.json"
    path.write_bytes(b'{"old": true}\n')
    os.chmod(path, 0o640)

    def power_cut(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error (simulated)")

    monkeypatch.setattr(atomicfile.os, failing, power_cut)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(path, b'{"new": true}\n')
    monkeypatch.undo()
    assert path.read_bytes() == b'{"old": true}\n'
    assert _temps(tmp_path) == []
    # And the next write goes through, keeping the file's mode.
    atomic_write(path, b'{"new": true}\n')
    assert path.read_bytes() == b'{"new": true}\n'
    assert path.stat().st_mode & 0o777 == 0o640
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_atomic_write_failure_on_a_new_file_leaves_nothing(failing, tmp_path, monkeypatch):
    path = tmp_path / "new.json"

    def power_cut(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(atomicfile.os, failing, power_cut)
    with pytest.raises(OSError):
        atomic_write(path, b"{}")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_new_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640


def test_atomic_write_through_a_symlink(tmp_path):
    real = tmp_path / "real.md"
    real.write_bytes(b"old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    atomic_write(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_stale_temps_are_removed(tmp_path):
    path = tmp_path / "SEQUENTIAL_STATE.json"
    stale = tmp_path / ".SEQUENTIAL_STATE.json.abc123.tmp"
    fresh = tmp_path / ".SEQUENTIAL_STATE.json.def456.tmp"
    other = tmp_path / ".tasks.md.abc.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"{")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_temps(path, older_than=60) == 1
    assert not stale.exists() and fresh.exists() and other.exists()
    assert remove_stale_temps(path) == 1
    assert other.exists()


def test_a_leftover_temp_file_does_not_disturb_the_next_run(tmp_path):
    project, original = make_project(tmp_path, 1)
    leftover = project / SPECS / ".SEQUENTIAL_STATE.json.x1y2z3.tmp"
    leftover.write_text('{"completed": ["1"')  # a write cut short
    result = subprocess.run(seqrun_argv(), cwd=project, env=env_for(project, 0),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not leftover.exists()


# -- survivors of a kill -9 --------------------------------------------------------------------------------------

#: The first agent starts a child that ignores SIGHUP and SIGTERM (it outlives
#: the hang-up a dying seqrun's pty sends) and works on; the second agent
#: writes whether that child was still alive when it started.
SURVIVOR_AGENT = r'''
import os, subprocess, sys, time
folder = os.environ["SURVIVOR_DIR"]
child_file = os.path.join(folder, "child.pid")
if os.path.exists(child_file):
    pid = int(open(child_file).read())
    try:
        with open(f"/proc/{pid}/stat") as f:
            alive = f.read().rsplit(") ", 1)[1][0] not in "ZX"
    except OSError:
        alive = False
    with open(os.path.join(folder, "second.txt"), "w") as f:
        f.write("alive" if alive else "gone")
    print("<promise>TASK_DONE</promise>")
    sys.exit(0)
ready = os.path.join(folder, "child.ready")
child = subprocess.Popen([sys.executable, "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(sys.argv[1], 'w').close()\n"
    "time.sleep(600)\n", ready])
while not os.path.exists(ready):
    time.sleep(0.01)
with open(child_file + ".tmp", "w") as f:
    f.write(str(child.pid))
os.rename(child_file + ".tmp", child_file)
print("working", flush=True)
time.sleep(600)
'''



def _running(project: Path) -> bool:
    try:
        state = json.loads((project / STATE).read_text())
    except (OSError, ValueError):
        return False
    return state["specs"]["feature"]["tasks"].get("1", {}).get("status") == "running"


@pytest.mark.parametrize("mode", ["pty", "tmux"])
def test_a_survivor_of_a_kill_9_is_ended_before_the_next_agent_starts(mode, project, make_spec, request):
    from conftest import gone, use_command_agent, wait_for

    make_spec("- [ ] 1. Work\n")
    use_command_agent(project, SURVIVOR_AGENT, "{prompt_file}")
    env = {"SURVIVOR_DIR": str(project)}
    argv = [sys.executable, "-m", "seqrun", "--delay=0", "--backend=command", "--kill-grace=0.5", "-q"]
    if mode == "tmux":
        env.update(request.getfixturevalue("tmux_env"))
    else:
        argv.append("--no-tmux")
    first = subprocess.Popen(argv, cwd=project, env=seqrun_env(env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    child_file = project / "child.pid"
    child = None
    try:
        assert wait_for(lambda: child_file.exists() and _running(project), 30)
        child = int(child_file.read_text())
        first.kill()
        first.wait(10)
        assert not gone(child)  # it ignored the hang-up: still working
        second = subprocess.run(argv, cwd=project, env=seqrun_env(env), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stdout + second.stderr
        assert (project / "second.txt").read_text() == "gone"
        assert gone(child)
        assert "left running" in second.stderr
        task = read_state_file(project / STATE)["specs"]["feature"]["tasks"]["1"]
        assert task["status"] == "passed" and "processes" not in task
        assert [h["outcome"] for h in task["history"]] == ["interrupted", "passed"]
    finally:
        if first.poll() is None:
            first.kill()
        if child is not None and not gone(child):
            os.kill(child, signal.SIGKILL)


#: The agent of the kill loop: it starts a daemon (fork, setsid, fork again,
#: exec; TERM and HUP ignored; the marker in its argv), works a short random
#: while, then passes.
DAEMON_AGENT = r'''
import os, random, sys, time
task, marker = sys.argv[2], sys.argv[3]
DAEMON = ("import signal, time\n"
          "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
          "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
          "time.sleep(600)\n")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execv(sys.executable, [sys.executable, "-c", DAEMON, marker])
    os._exit(0)
time.sleep(random.uniform(0.05, 0.3))
print("<promise>TASK_DONE</promise>")
'''


def _marked(marker: str) -> list[int]:
    """Pids of the processes whose command line carries ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/cmdline"), reason="needs /proc")
def test_50_random_kill_9s_in_tmux_mode_leave_no_process_and_no_unmarked_window(project, make_spec,
                                                                                 tmux_env, tmp_path):
    """Each run is killed with -9 at a random moment (seeded: set
    SEQRUN_KILL_SEED to replay a failure; the kill points are printed). The
    next run ends what the killed one left; after a final complete run, no
    daemon is left and every window of the session carries seqrun's mark."""
    from conftest import use_command_agent

    seed = int(os.environ.get("SEQRUN_KILL_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    n_tasks = 40
    make_spec("".join(f"- [ ] {i}. Task {i}\n" for i in range(1, n_tasks + 1)))
    marker = f"seqrun-kill-loop-{tmp_path.name}-{seed}"
    use_command_agent(project, DAEMON_AGENT, "{prompt_file}", "{task_id}", marker)
    argv = [sys.executable, "-m", "seqrun", "--delay=0", "--backend=command", "--kill-grace=0.2", "-q",
            "--tmux-session=loop"]
    env = seqrun_env(tmux_env)
    try:
        for run in range(50):
            kill_at = rng.uniform(0.2, 1.5)
            print(f"seed={seed} run={run} kill_at={kill_at:.3f}")
            proc = subprocess.Popen(argv, cwd=project, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                proc.wait(kill_at)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        final = subprocess.run(argv, cwd=project, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, (seed, final.stdout + final.stderr)
        assert _marked(marker) == [], f"seed={seed}: daemons left"
        assert _marked(str(project / "agent.py")) == [], f"seed={seed}: agents left"
        tasks = read_state_file(project / STATE)["specs"]["feature"]["tasks"]
        assert len(tasks) == n_tasks and all(t["status"] == "passed" for t in tasks.values())
        interrupted = sum(h["outcome"] == "interrupted" for t in tasks.values() for h in t["history"])
        assert interrupted >= 10, f"seed={seed}: only {interrupted} kills hit an agent"
        windows = subprocess.run(["tmux", "list-windows", "-t", "=loop", "-F", "#{window_id} #{@seqrun}"],
                                 env=env, capture_output=True, text=True).stdout.splitlines()
        assert windows and all(len(line.split()) > 1 for line in windows), (seed, windows)
    finally:
        for pid in _marked(marker):
            os.kill(pid, signal.SIGKILL)
