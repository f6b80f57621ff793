"""The README's first command: `seqrun --demo` runs a bundled spec with no agent CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import seqrun_env


def run_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqrun", "--demo", *extra], cwd=tmp_path,
                          env=seqrun_env({"SEQRUN_DEMO_DELAY": "0.1"}), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def check_demo_results(demo: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = (demo / ".kiro" / "specs" / "greeting" / "tasks.md").read_text()
    for line in ("- [x] 2. Greeting module", "- [x] 2.1 Write", "- [x] 2.2 Add", "- [ ]* 2.3 Write",
                 "- [x] 3. Document"):
        assert line in tasks
    state = json.loads((demo / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    assert state["specs"]["greeting"]["completed"] == ["2.1", "2.2", "3"]
    assert (demo / ".kiro" / "specs" / "SEQUENTIAL_PROGRESS.md").read_text().count("## Iteration") == 3
    assert (demo / "demo-output.txt").exists()
    assert "<testsuite " in (demo / "report.xml").read_text()
    assert (demo / "report-log.jsonl").read_text().count("\n") >= 8
    report = (demo / "report.html").read_text()
    assert report.count('<section class="task o-passed"') == 3 and report.count('class="bar o-passed"') == 3
    assert f"  {demo.resolve() / 'report.html'}" in result.stdout
    assert "3 passed" in result.stdout


def test_demo_in_a_pty(tmp_path):
    result = run_demo(tmp_path, "--no-tmux")
    check_demo_results(tmp_path / "seqrun-demo", result)
    # Run again inside the demo folder: nothing is redone.
    again = subprocess.run([sys.executable, "-m", "seqrun"], cwd=tmp_path / "seqrun-demo",
                           env=seqrun_env(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0
    assert "passed" not in again.stdout and "5 skipped" in again.stdout


@pytest.mark.tmux
def test_demo_in_tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    sock = tmp_path / "tmux-sock"
    sock.mkdir()
    env_extra = {"TMUX_TMPDIR": str(sock)}
    result = subprocess.run([sys.executable, "-m", "seqrun", "--demo"], cwd=tmp_path,
                            env=seqrun_env({**env_extra, "SEQRUN_DEMO_DELAY": "0.1"}),
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    try:
        check_demo_results(tmp_path / "seqrun-demo", result)
        windows = subprocess.run(["tmux", "list-windows", "-t", "sequential-greeting", "-F", "#{window_name}"],
                                 env=seqrun_env(env_extra), capture_output=True, text=True).stdout.split()
        assert windows == ["task-2.1", "task-2.2", "task-3"]
    finally:
        subprocess.run(["tmux", "kill-server"], env=seqrun_env(env_extra), capture_output=True)


def test_demo_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "seqrun-demo").mkdir()
    (tmp_path / "seqrun-demo" / "mine.txt").write_text("keep me")
    result = run_demo(tmp_path, "--no-tmux")
    assert result.returncode == 4
    assert (tmp_path / "seqrun-demo" / "mine.txt").read_text() == "keep me"
