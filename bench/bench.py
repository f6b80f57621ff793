"""seqrun's benchmark: wall-clock figures as medians, and ratios taken in the same run.

    python bench/bench.py            # everything, a few minutes on a 2-core machine
    python bench/bench.py --quick    # tiny sizes: checks the benchmark itself runs

Each figure is printed with its goal and whether it holds. Not a test: the
suite only checks that this script runs (tests/test_bench.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LARGEST = HERE / "data" / "largest-corpus-tasks.md"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    goal: str
    holds: bool | None

    def row(self) -> str:
        verdict = {True: "yes", False: "NO", None: "-"}[self.holds]
        return f"| {self.name} | {self.value:.3f} {self.unit} | {self.goal} | {verdict} |"


def wall(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return took


def median_wall(argv: list[str], cwd: Path, runs: int, env: dict[str, str] | None = None) -> float:
    return statistics.median(wall(argv, cwd, env) for _ in range(runs))


def median_pair(a: Callable[[], float], b: Callable[[], float], runs: int) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` run alternately: a slow minute on a shared
    machine then weighs on both sides of a ratio, not on one."""
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(a())
        times_b.append(b())
    return statistics.median(times_a), statistics.median(times_b)


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    # An installed seqrun (like pytest) runs from compiled bytecode: never
    # measure the compiler. The first run writes the .pyc files.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["SEQRUN_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # The fake claude stands in for the real one, which refuses to run as
    # root outside a sandbox; benchmark machines may run as root.
    env["IS_SANDBOX"] = "1"
    return env


def write_generated_spec(root: Path, n: int) -> Path:
    """A Kiro spec of ``n`` leaf tasks in groups of ten."""
    folder = root / ".kiro" / "specs" / f"gen-{n}"
    folder.mkdir(parents=True)
    lines = ["# Implementation Plan", ""]
    for group in range((n + 9) // 10):
        lines.append(f"- [ ] {group + 1}. Group {group + 1}")
        for sub in range(min(10, n - group * 10)):
            lines += [f"  - [ ] {group + 1}.{sub + 1} Task {group + 1}.{sub + 1} does a thing",
                      "    - Write the code and its tests",
                      f"    - _Requirements: {group + 1}.{sub + 1}_", ""]
    (folder / "tasks.md").write_text("\n".join(lines))
    return folder


def write_pytest_project(root: Path, n: int) -> Path:
    folder = root / f"pytest-{n}"
    folder.mkdir()
    per_file = 100
    for f in range((n + per_file - 1) // per_file):
        body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(min(per_file, n - f * per_file)))
        (folder / f"test_gen_{f}.py").write_text(body)
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


def collection(sizes: list[int], runs: int, tmp: Path) -> list[Figure]:
    env = bench_env()
    seqrun = [sys.executable, "-m", "seqrun", "--co", "-q"]
    figures = []
    corpus = tmp / "corpus"
    (corpus / ".kiro" / "specs" / "largest").mkdir(parents=True)
    shutil.copy(LARGEST, corpus / ".kiro" / "specs" / "largest" / "tasks.md")
    t = median_wall(seqrun, corpus, runs, env)
    figures.append(Figure("collect-only -q, largest corpus file (413 tasks)", t, "s", "< 0.3 s", t < 0.3))
    for n in sizes:
        spec = write_generated_spec(tmp / f"s{n}", n)
        tests = write_pytest_project(tmp, n)
        pytest = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        # Both without third-party plugin autoloading: the tools themselves are compared.
        pytest_env = {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        s, p = median_pair(lambda: wall([*seqrun, str(spec)], tmp, env),
                           lambda: wall(pytest, tests, pytest_env), runs)
        figures.append(Figure(f"collect-only -q, {n} tasks", s, "s",
                              "<= 0.15 s" if n <= 50 else "", s <= 0.15 if n <= 50 else None))
        figures.append(Figure(f"pytest --collect-only -q, {n} tests", p, "s", "", None))
        goal = n >= 5000
        figures.append(Figure(f"ratio seqrun/pytest at {n}", s / p, "x",
                              "<= 0.12x" if goal else "", (s / p <= 0.12) if goal else None))
    return figures


FAST_AGENT_C = r"""
#include <stdio.h>
/* A near-zero-cost agent: one finished Claude stream-json run. */
int main(void) {
    puts("{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"b\"}");
    puts("{\"type\":\"assistant\",\"message\":{\"role\":\"assistant\",\"content\":"
         "[{\"type\":\"text\",\"text\":\"done <promise>TASK_DONE</promise>\"}]}}");
    puts("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,"
         "\"result\":\"done <promise>TASK_DONE</promise>\",\"total_cost_usd\":0,"
         "\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}");
    return 0;
}
"""


def startup(runs: int, tmp: Path) -> list[Figure]:
    """Start-up against a bare interpreter, alternated: ``--version`` alone,
    and ``--co -q`` on a 50-task spec."""
    env = bench_env()
    bare = [sys.executable, "-c", "pass"]
    spec = write_generated_spec(tmp, 50)
    version = [sys.executable, "-m", "seqrun", "--version"]
    collect = [sys.executable, "-m", "seqrun", "--co", "-q", str(spec)]
    p1, v = median_pair(lambda: wall(bare, tmp, env), lambda: wall(version, tmp, env), runs)
    p2, c = median_pair(lambda: wall(bare, tmp, env), lambda: wall(collect, tmp, env), runs)
    bare_start = statistics.median([p1, p2])
    return [
        Figure("python -c pass (bare interpreter start)", bare_start, "s", "-", None),
        Figure("seqrun --version", v, "s", "-", None),
        Figure("seqrun --co -q, 50 tasks", c, "s", "-", None),
        Figure("seqrun --version / python -c pass", v / p1, "x", "<= 5x", v / p1 <= 5),
        Figure("seqrun --co -q, 50 tasks / python -c pass", c / p2, "x", "<= 6x", c / p2 <= 6),
    ]


def fast_agent(tmp: Path) -> Path:
    """Compile the near-zero-cost agent (a Python stand-in when there is no cc)."""
    exe = tmp / "fast-agent"
    src = tmp / "fast-agent.c"
    src.write_text(FAST_AGENT_C)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc and subprocess.run([cc, "-O2", "-o", str(exe), str(src)]).returncode == 0:
        return exe
    exe.write_text("#!/bin/sh\nprintf '%s\\n' '{\"type\":\"result\",\"subtype\":\"success\","
                   "\"is_error\":false,\"result\":\"<promise>TASK_DONE</promise>\"}'\n")
    exe.chmod(0o755)
    return exe


def plain_loop(exe: Path, n: int, cwd: Path) -> float:
    """The physical floor: start the same program n times, nothing else."""
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run([str(exe)], cwd=cwd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def seqrun_overhead(project: Path, n: int, exe: Path, env: dict[str, str], tmux: bool) -> float:
    """Per task: ``seqrun -q`` running n tasks with ``exe`` as the agent, minus
    a plain loop starting ``exe`` n times, divided by n."""
    write_generated_spec(project, n)
    (project / "seqrun.toml").write_text(
        f'backend = "claude"\ndelay = 0.0\nmax_iterations = 0\nno_tmux = {str(not tmux).lower()}\n'
        f'keep_windows = 2\n[backends.claude]\nexecutable = "{exe}"\n')
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "seqrun", "-q"], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"seqrun failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return (took - plain_loop(exe, n, project)) / n


def overhead_pty(sizes: list[int], runs: int, tmp: Path) -> list[Figure]:
    """Per-task overhead in pty mode (issue 19's goal: with the attempt
    records, history and feedback), and its growth with the number of tasks."""
    env = bench_env()
    exe = fast_agent(tmp)
    goal = 0.006
    per_task: dict[int, float] = {}
    figures = []
    for n in sizes:
        per_task[n] = statistics.median(seqrun_overhead(tmp / f"pty-{n}-{run}", n, exe, env, tmux=False)
                                        for run in range(runs))
        figures.append(Figure(f"per-task overhead, pty mode, {n} tasks", per_task[n] * 1000, "ms",
                              f"<= {goal * 1000:.0f} ms", per_task[n] <= goal))
    small, large = sizes[0], sizes[-1]
    ratio = per_task[large] / per_task[small] if per_task[small] > 0 else float("inf")
    figures.append(Figure(f"overhead growth {large} vs {small} tasks, pty", ratio, "x", "<= 1.5x",
                          ratio <= 1.5))
    return figures


def tmux_floor(n: int, env: dict[str, str], cwd: Path) -> float:
    """tmux's own floor per window: a window whose program signals its end
    (``tmux wait-for -S``), waited for (``wait-for``), then closed
    (``kill-window``); n times, divided by n. Its own server (``-L``, in the
    isolated TMUX_TMPDIR) with ``remain-on-exit`` on, as on seqrun's windows,
    so ``kill-window`` has a window to close."""
    def tmux(*args: str) -> str:
        proc = subprocess.run(["tmux", "-L", "floor", *args], env=env, cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SystemExit(f"tmux {args[0]} failed: {proc.stderr.strip()}")
        return proc.stdout

    tmux("new-session", "-d", "-s", "floor", "-x", "200", "-y", "50", ";",
         "set-option", "-g", "remain-on-exit", "on")
    start = time.perf_counter()
    for i in range(n):
        channel = f"floor-{i}"
        window = tmux("new-window", "-d", "-t", "=floor:", "-P", "-F", "#{window_id}", "--",
                      "tmux", "wait-for", "-S", channel).strip()
        tmux("wait-for", channel)
        tmux("kill-window", "-t", window)
    took = (time.perf_counter() - start) / n
    tmux("kill-server")
    return took


def overhead_tmux(sizes: list[int], runs: int, tmp: Path) -> list[Figure]:
    """Per-task overhead in tmux mode, against tmux's own floor taken in the
    same run, the two alternating (one isolated server, TMUX_TMPDIR)."""
    if shutil.which("tmux") is None:
        return [Figure("per-task overhead, tmux mode", float("nan"), "s", "tmux not installed", None)]
    env = bench_env()
    exe = fast_agent(tmp)
    (tmp / "tmux").mkdir()
    env["TMUX_TMPDIR"] = str(tmp / "tmux")
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    per_task: dict[int, float] = {}
    floors: list[float] = []
    figures = []
    for n in sizes:
        samples = []
        for run in range(runs):
            project = tmp / f"tmux-{n}-{run}"
            project.mkdir()
            floors.append(tmux_floor(n, env, project))
            samples.append(seqrun_overhead(project, n, exe, env, tmux=True))
        per_task[n] = statistics.median(samples)
        figures.append(Figure(f"per-task overhead, tmux mode, {n} tasks", per_task[n] * 1000, "ms",
                              "<= 80 ms", per_task[n] <= 0.080))
    subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)
    floor = statistics.median(floors)
    figures.append(Figure("tmux floor: window running `tmux wait-for -S`, `wait-for`, `kill-window`",
                          floor * 1000, "ms", "", None))
    for n in sizes:
        ratio = per_task[n] / floor
        figures.append(Figure(f"tmux overhead / floor, {n} tasks", ratio, "x", "<= 3x", ratio <= 3))
    small, large = sizes[0], sizes[-1]
    growth = per_task[large] / per_task[small] if per_task[small] > 0 else float("inf")
    figures.append(Figure(f"overhead growth {large} vs {small} tasks, tmux", growth, "x", "<= 1.5x",
                          growth <= 1.5))
    return figures


VOLUME_AGENT = """
import sys
block = (b"v" * 1023 + b"\\n") * 1024
for _ in range(int(sys.argv[1])):
    sys.stdout.buffer.write(block)
sys.stdout.buffer.write(b"<promise>TASK_DONE</promise>\\n")
"""

RSS_PROBE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run([sys.executable, "-m", "seqrun", "-q"], stdout=subprocess.DEVNULL).returncode
took = time.perf_counter() - start
print(code, took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def output_volume(megabytes: int, tmp: Path) -> list[Figure]:
    """An agent printing ``megabytes`` MB through seqrun's pty: peak RSS and throughput."""
    project = tmp / "volume"
    write_generated_spec(project, 1)
    agent = tmp / "volume_agent.py"
    agent.write_text(VOLUME_AGENT)
    (project / "seqrun.toml").write_text(
        'backend = "command"\ndelay = 0.0\nno_tmux = true\n[backends.command]\n'
        f'argv = ["{sys.executable}", "{agent}", "{megabytes}"]\n')
    probe = tmp / "rss_probe.py"
    probe.write_text(RSS_PROBE)
    out = subprocess.run([sys.executable, str(probe)], cwd=project, env=bench_env(),
                         capture_output=True, text=True).stdout.split()
    code, took, maxrss_kb = int(out[0]), float(out[1]), int(out[2])
    if code != 0:
        raise SystemExit(f"output-volume run failed with exit {code}")
    rss_mb = maxrss_kb / 1024
    rate = megabytes / took
    return [
        Figure(f"peak RSS with {megabytes} MB of agent output", rss_mb, "MB", "<= 120 MB", rss_mb <= 120),
        Figure(f"throughput of {megabytes} MB through the pty", rate, "MB/s", ">= 50 MB/s", rate >= 50),
    ]


def seed_reference(_args: argparse.Namespace, _tmp: Path) -> list[Figure]:
    """The seed script itself is not reproduced here (its code is not ours to
    copy); its published cost on this machine, for comparison."""
    return [
        Figure("seed sequential_loop.py per-task cost at 50 tasks (published)", 5.0, "ms", "reference", None),
        Figure("seed sequential_loop.py per-task cost at 5,000 tasks (published)", 26.0, "ms",
               "reference: grows with n", None),
    ]


def write_html_state(root: Path, tasks: int, attempts_per_task: int) -> Path:
    """A project whose state file records ``tasks`` tasks of ``attempts_per_task``
    attempts each (a failure, then a pass), with a 20 kB log and a 6 kB prompt
    per attempt, as a night of reruns leaves them."""
    specs = root / ".kiro" / "specs"
    folder = specs / "night"
    folder.mkdir(parents=True)
    (folder / "tasks.md").write_text("".join(f"- [x] {i}. Task number {i} of the night\n"
                                             f"  - _Requirements: {i % 7}.{i % 3}_\n"
                                             for i in range(1, tasks + 1)))
    log_line = "assistant: working on the task, reading files and running the tests\n"
    start = time.time() - tasks * attempts_per_task * 60
    records = {}
    for i in range(1, tasks + 1):
        logs = specs / ".seqrun" / "logs" / "night" / str(i)
        logs.mkdir(parents=True)
        history = []
        for n in range(1, attempts_per_task + 1):
            (logs / f"{n}.log").write_text(log_line * 300)
            (logs / f"{n}.prompt.md").write_text("You are working on task %d.\n" % i * 200)
            passed = n == attempts_per_task
            history.append({
                "attempt": n, "run_id": "bench", "duration": 50.0,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                            time.gmtime(start + ((i - 1) * attempts_per_task + n) * 60)),
                "outcome": "passed" if passed else "failed", "kind": "passed" if passed else "no-marker",
                "reason": None if passed else "no TASK_DONE marker in the final message",
                "backend": "claude", "log": f".kiro/specs/.seqrun/logs/night/{i}/{n}.log",
                "prompt": f".kiro/specs/.seqrun/logs/night/{i}/{n}.prompt.md", "session_id": None,
                "usage": {"input_tokens": 3000, "output_tokens": 200, "cost_usd": 0.02},
            })
        records[str(i)] = {"status": "passed", "kind": "passed", "title": f"Task number {i} of the night",
                           "attempts": attempts_per_task, "history": history,
                           "updated_at": history[-1]["started_at"]}
    spec = {"completed": [str(i) for i in range(1, tasks + 1)], "halted": False, "started_at": None,
            "assignments": {}, "halted_at": None, "halted_task": None, "completed_at": None, "failed": [],
            "tasks": records}
    (specs / "SEQUENTIAL_STATE.json").write_text(json.dumps({"version": 2, "spec": "night", "specs": {"night": spec}}))
    return root


def html_report(tasks: int, attempts_per_task: int, runs: int, tmp: Path) -> list[Figure]:
    """``seqrun --status --html`` on a recorded night: the whole command, from
    the state file to the written report (logs and prompts linked, their tails inlined)."""
    project = write_html_state(tmp / "html", tasks, attempts_per_task)
    argv = [sys.executable, "-m", "seqrun", "--status", "--html", "report.html"]
    took = median_wall(argv, project, runs, bench_env())
    size = (project / "report.html").stat().st_size / 1e6
    n = tasks * attempts_per_task
    return [
        Figure(f"seqrun --status --html, {tasks} tasks, {n} attempts", took, "s", "<= 0.5 s", took <= 0.5),
        Figure(f"HTML report size, {tasks} tasks, {n} attempts", size, "MB", "< 5 MB", size < 5.0),
    ]


STATE_WORKER = r"""
import json, statistics, sys, time
from pathlib import Path
from types import SimpleNamespace
from seqrun.kiro import collect_text
from seqrun.outcome import Outcome, TaskReport
from seqrun.reports.state import StatePlugin
from seqrun.stash import Stash

runs, projects = int(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
option = SimpleNamespace(collectonly=False, fresh=False, kill_grace=1.0)


class Night:
    def __init__(self, project):
        self.project, self.specs = project, project / ".kiro" / "specs"
        tasks_md = self.specs / "night" / "tasks.md"
        self.spec = collect_text(tasks_md.read_text(), tasks_md, ".kiro/specs/night", "night")
        self.items = self.spec.leaves()
        self.session = SimpleNamespace(specs=[self.spec], items=self.items, run_id="bench")
        # The first run on a file the previous seqrun wrote converts it: once, not the steady state.
        plugin, self.migration = self.start()
        # A unit of three tasks left running, as a killed run leaves it: each start
        # ends what is left of its agent and records the attempt as interrupted.
        unit = SimpleNamespace(members=self.items[:3])
        plugin.seqrun_runtest_attempt(item=self.items[0], unit=unit, attempt=11, backend="claude",
                                      token="bench-no-such-tree",
                                      log_path=self.specs / ".seqrun" / "logs" / "night" / self.items[0].id / "11.log")
        self.files = {p: p.read_bytes() for p in self.specs.rglob("*") if p.is_file() and p.name != "tasks.md"}
        self.loads, self.saves = [], []

    def start(self):
        config = SimpleNamespace(option=option, stash=Stash(), rootpath=self.project, invocation_dir=self.project)
        plugin = StatePlugin(config)
        took = time.perf_counter()
        plugin.seqrun_collection_finish(self.session)
        return plugin, time.perf_counter() - took

    def measure(self, n):
        for path, data in self.files.items():
            path.write_bytes(data)
        plugin, took = self.start()
        self.loads.append(took)
        # One task's verdict, saved durably as a run saves it after each task.
        item = self.items[len(self.items) // 2 + n]
        report = TaskReport(nodeid=item.nodeid, task_id=item.id, title=item.title, outcome=Outcome.PASSED,
                            duration=42.0, attempt_number=11, backend="claude")
        took = time.perf_counter()
        plugin.seqrun_runtest_logreport(report)
        self.saves.append(time.perf_counter() - took)


nights = [Night(project) for project in projects]
for n in range(runs):
    for night in nights:  # in turn: a slow moment weighs on every size alike
        night.measure(n)
print(json.dumps([{"load": statistics.median(night.loads), "save": statistics.median(night.saves),
                   "migration": night.migration,
                   "state_bytes": (night.specs / "SEQUENTIAL_STATE.json").stat().st_size} for night in nights]))
"""


def write_night_state(root: Path, tasks: int, attempts_per_task: int) -> Path:
    """A project whose state file, as the previous seqrun wrote it, records
    ``tasks`` tasks of ``attempts_per_task`` attempts each (failures, then a
    pass; one task in ten still failing, its last words kept), with the
    progress file's entry of every attempt."""
    specs = root / ".kiro" / "specs"
    (specs / "night").mkdir(parents=True)
    (specs / "night" / "tasks.md").write_text("".join(f"- [ ] {i}. Task number {i} of the night\n"
                                                      for i in range(1, tasks + 1)))
    start = time.time() - tasks * attempts_per_task * 60
    stamp = lambda k: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + k * 60))  # noqa: E731
    usage = {"input_tokens": 31250, "output_tokens": 2210, "cache_read_tokens": 120000, "cost_usd": 0.1432}
    records, progress, iteration = {}, ["# Sequential progress\n\n"], 0
    for i in range(1, tasks + 1):
        folder = f".kiro/specs/.seqrun/logs/night/{i}"
        failing = i % 10 == 0
        history = []
        for n in range(1, attempts_per_task + 1):
            passed = n == attempts_per_task and not failing
            reason = None if passed else "verification failed: `npm test` exited with 1 (3 failed, 41 passed)"
            history.append({
                "attempt": n, "run_id": "20261130T210000Z-a1b2c3", "started_at": stamp(i * attempts_per_task + n),
                "duration": 312.5, "outcome": "passed" if passed else "failed",
                "kind": "passed" if passed else "verification", "reason": reason, "backend": "claude",
                "log": f"{folder}/{n}.log", "prompt": f"{folder}/{n}.prompt.md",
                "session_id": f"5f0c2a9e-1b7d-4c1e-9a53-{i:06d}{n:06d}", "usage": usage,
            })
            iteration += 1
            progress.append(f"## Iteration {iteration}\n\n- **Task**: night::{i} Task number {i} of the night\n"
                            f"- **Status**: {history[-1]['outcome']}\n- **Time**: {stamp(i * attempts_per_task + n)}"
                            f" (312.5s, attempt {n})\n- **Message**: {reason or 'done'}\n"
                            f"- **Log**: {folder}/{n}.log\n\n")
        if failing:
            history[-1]["final_message"] = "I fixed the parser but three tests still fail: " + "x" * 900
        records[str(i)] = {"status": history[-1]["outcome"], "kind": history[-1]["kind"],
                           "title": f"Task number {i} of the night", "attempts": attempts_per_task,
                           "duration": 312.5, "last_error": history[-1]["reason"], "backend": "claude",
                           "log": history[-1]["log"], "rate_limit_waits": 0, "usage": usage,
                           "updated_at": history[-1]["started_at"], "history": history}
    done = [str(i) for i in range(1, tasks + 1) if i % 10]
    spec = {"completed": done, "halted": False, "started_at": stamp(0), "assignments": {}, "halted_at": None,
            "halted_task": None, "completed_at": None, "failed": [str(i) for i in range(10, tasks + 1, 10)],
            "tasks": records}
    (specs / "SEQUENTIAL_STATE.json").write_text(json.dumps({"version": 2, "spec": "night", "specs": {"night": spec}}))
    (specs / "SEQUENTIAL_PROGRESS.md").write_text("".join(progress))
    return root


def state_file(sizes: list[tuple[int, int]], runs: int, tmp: Path) -> list[Figure]:
    """The state plugin at the start of a run (read the state, end what a
    killed run left running, find lost progress entries, first save) and
    after one task (its durable save). ``sizes`` are (tasks, attempts per
    task): the same spec early in the night and at its end (the growth of a
    save is taken between these two), then a spec of more tasks."""
    projects = [write_night_state(tmp / f"state-{tasks}x{per}", tasks, per) for tasks, per in sizes]
    proc = subprocess.run([sys.executable, "-c", STATE_WORKER, str(runs), *map(str, projects)], env=bench_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"state worker failed: {proc.stderr[-2000:]}")
    results = json.loads(proc.stdout)
    figures = []
    largest = max(t * p for t, p in sizes)
    for (tasks, per), result in zip(sizes, results):
        load, save, n = result["load"] * 1e3, result["save"] * 1e3, tasks * per
        goal = n == largest
        what = f"{tasks} tasks, {n} attempts"
        figures += [
            Figure(f"state: run start (read, interrupted records, lost entries, first save), {what}", load, "ms",
                   "<= 20 ms" if goal else "-", load <= 20 if goal else None),
            Figure(f"state: save after one task (durable), {what}", save, "ms",
                   "<= 20 ms" if goal else "-", save <= 20 if goal else None),
            Figure(f"state: {STATE_NAME} bytes per task, {what}", result["state_bytes"] / tasks, "B", "-", None),
        ]
    figures.append(Figure(f"state: first run on a file of the previous format (moves {largest} attempts to "
                          "the journal, once)", results[1]["migration"] * 1e3, "ms", "-", None))
    (tasks, early), (_, late) = sizes[0], sizes[1]
    growth = results[1]["save"] / results[0]["save"]
    figures.append(Figure(f"state: save growth over the night, {tasks} tasks, {tasks * late} vs {tasks * early} "
                          "attempts", growth, "x", "<= 1.5x", growth <= 1.5))
    return figures


STATE_NAME = "SEQUENTIAL_STATE.json"


SECTIONS: dict[str, Callable[[argparse.Namespace, Path], list[Figure]]] = {
    "startup": lambda a, tmp: startup(3 if a.quick else 15, tmp),
    # Nine pairs: the 0.12x goal is a ratio of two medians on a shared machine.
    "collection": lambda a, tmp: collection([10, 50] if a.quick else [50, 1000, 5000], 2 if a.quick else 9, tmp),
    "overhead-pty": lambda a, tmp: overhead_pty([10, 20] if a.quick else [200, 800], 1 if a.quick else 5, tmp),
    "overhead-tmux": lambda a, tmp: overhead_tmux([5, 10] if a.quick else [50, 200], 1 if a.quick else 3, tmp),
    "output-volume": lambda a, tmp: output_volume(10 if a.quick else 200, tmp),
    "html": lambda a, tmp: html_report(20 if a.quick else 300, 2, 1 if a.quick else 3, tmp),
    "state": lambda a, tmp: state_file([(20, 1), (20, 3), (40, 2)] if a.quick else [(500, 1), (500, 10), (1000, 5)],
                                       2 if a.quick else 9, tmp),
    "seed": seed_reference,
}

DOC = REPO / "docs" / "performance.md"


def write_doc(rows: list[str], seconds: float) -> None:
    """docs/performance.md, regenerated by every full run."""
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {platform.platform()}"
    text = "\n".join([
        "# Performance",
        "",
        "Regenerated by `python bench/bench.py` (medians of several runs; ratios taken in the same run).",
        f"Machine: {machine}. Benchmark wall time: {seconds:.0f} s.",
        "",
        "| figure | value | goal | holds |",
        "|---|---|---|---|",
        *rows,
        "",
        "What is measured:",
        "",
        "- start-up: `seqrun --version` and `seqrun --co -q` on a 50-task spec, each alternated with",
        "  a bare `python -c pass` (the ratio's reference, taken in the same run);",
        "- collection: `seqrun --collect-only -q` on generated Kiro specs and on the largest real",
        "  task list (413 tasks), against `pytest --collect-only -q` on as many trivial tests;",
        "- per-task overhead: `seqrun` running n tasks with a compiled agent that prints a finished",
        "  Claude stream-json run, `--delay 0`, minus a plain loop starting the same program n times,",
        "  divided by n; its growth from the small to the large run shows any cost that grows with",
        "  the number of tasks; in tmux mode the same with a window per task (seqrun's server",
        "  isolated with TMUX_TMPDIR), against tmux's own floor taken in the same run, alternating:",
        "  a window whose program signals its end (`new-window -d … tmux wait-for -S c`, `wait-for c`,",
        "  `kill-window`), n times, divided by n;",
        "- output volume: an agent printing 200 MB; peak RSS of seqrun and bytes per second through",
        "  the pty (the log receives every byte);",
        "- HTML report: `seqrun --status --html` on a state file of 300 tasks and 600 attempts,",
        "  each with a 20 kB log and a 6 kB prompt (linked; their tails inlined): wall time and file size;",
        "- state: the state plugin on a night of 500 tasks with 1 and then 10 attempts each (and 1,000",
        "  tasks with 5), written as the previous seqrun wrote it and converted once: the start of a run",
        "  (read the state, end what a killed run left running, record its attempt, look for lost",
        "  progress entries, first save) and the durable save after one task, medians alternated",
        "  between the sizes; the save's growth from 500 to 5,000 attempts of the same spec;",
        "- the seed script's published per-task cost, for reference (not re-measured).",
        "",
    ])
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the benchmark runs")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {sys.platform}")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "seqrun")], env=bench_env(),
                   stdout=subprocess.DEVNULL)
    print("| figure | value | goal | holds |\n|---|---|---|---|")
    all_hold = True
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(SECTIONS):
            (Path(tmp) / name).mkdir()
            for fig in SECTIONS[name](args, Path(tmp) / name):
                print(fig.row(), flush=True)
                rows.append(fig.row())
                all_hold &= fig.holds is not False
    if not args.quick and not args.only:
        write_doc(rows, time.perf_counter() - started)
        print(f"wrote {DOC.relative_to(REPO)}")
    return 0 if all_hold or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
