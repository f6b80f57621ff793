"""Configuration and environment errors: one line naming the cause and the fix,
the right exit code, no half-written file, no agent left running."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs: a real 'No space left on device' (skipped where mount is not allowed)."""
    point = tmp_path / "disk"
    point.mkdir()
    if not _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)]):
        pytest.skip("cannot mount a tmpfs here")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_disk_full_while_the_agent_writes_its_log(small_disk, run_seqrun):
    specs = small_disk / ".kiro" / "specs" / "feature"
    specs.mkdir(parents=True)
    (specs / "tasks.md").write_text("- [ ] 1. Chatty\n")
    agent = small_disk.parent / "agent.py"
    agent.write_text("import sys\nfor _ in range(64):\n    sys.stdout.write('z' * 65535 + '\\n')\n"
                     "print('<promise>TASK_DONE</promise>')\n")
    (small_disk / "seqrun.toml").write_text(
        'backend = "command"\nno_tmux = true\ndelay = 0.0\n[backends.command]\n'
        f'argv = [{json.dumps(sys.executable)}, {json.dumps(str(agent))}]\n')
    result = run_seqrun(cwd=small_disk)
    assert result.returncode == 4, result.stdout + result.stderr
    line = _one_line(result.stderr)
    assert "No space left on device" in line and "free some disk space" in line
    assert (specs / "tasks.md").read_text() == "- [ ] 1. Chatty\n" or "[-]" in (specs / "tasks.md").read_text()
    state = small_disk / ".kiro" / "specs" / "SEQUENTIAL_STATE.json"
    if state.exists():
        json.loads(state.read_text())
    assert not list(small_disk.rglob("*.tmp")), "a temporary file was left behind"


def test_read_only_specs_folder(make_spec, run_seqrun, project):
    folder = make_spec("- [ ] 1. Task\n")
    specs = project / ".kiro" / "specs"
    if not _mount(["--bind", str(specs), str(specs)]):
        pytest.skip("cannot bind-mount here")
    try:
        if not _mount(["-o", "remount,ro,bind", str(specs)]):
            pytest.skip("cannot remount read-only here")
        before = (folder / "tasks.md").read_bytes()
        result = run_seqrun("--backend", "claude", "--no-tmux", fakes=True)
        assert result.returncode == 4, result.stdout + result.stderr
        line = _one_line(result.stderr)
        assert "Read-only file system" in line and "read-only" in line.split("(")[-1]
        assert (folder / "tasks.md").read_bytes() == before
    finally:
        subprocess.run(["umount", "-l", str(specs)], capture_output=True)


def test_dangling_tasks_file(project, run_seqrun):
    folder = project / ".kiro" / "specs" / "feature"
    folder.mkdir()
    (folder / "tasks.md").symlink_to(project / "nowhere.md")
    result = run_seqrun("--co")
    assert result.returncode == 4
    assert _one_line(result.stderr) == f"ERROR: no tasks.md in {project / '.kiro' / 'specs'} or in its sub-folders"


def test_config_file_errors_are_one_line(make_spec, run_seqrun, project):
    make_spec("- [ ] 1. Task\n")
    (project / "seqrun.toml").write_text("delay = [oops\n")
    result = run_seqrun("--co")
    assert result.returncode == 4 and "seqrun.toml is not valid TOML" in _one_line(result.stderr)
    (project / "seqrun.toml").write_text('backend = "command"\n')
    result = run_seqrun("--co")
    assert result.returncode == 4 and "[backends.command] argv" in _one_line(result.stderr)
    (project / "seqrun.toml").write_text('delay = "soon"\n')
    result = run_seqrun("--co")
    assert result.returncode == 4 and "seqrun.toml: delay must be a number >= 0, got 'soon'" in _one_line(result.stderr)
