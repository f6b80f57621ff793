"""Fixtures shared by the whole suite: temporary projects and running seqrun."""
from __future__ import annotations

import json
import textwrap
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
FAKE_BIN = Path(__file__).resolve().parent / "fakes" / "bin"
#: The read-only material beside the repository; tests that use it skip without it.
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is optional)")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder with ``.kiro/specs``."""
    (tmp_path / ".kiro" / "specs").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def make_spec(project: Path) -> Callable[..., Path]:
    """Write ``.kiro/specs/<name>/tasks.md`` (text or exact bytes); return the spec folder."""

    def make(text: str | bytes, name: str = "feature") -> Path:
        folder = project / ".kiro" / "specs" / name
        folder.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8") if isinstance(text, str) else text
        (folder / "tasks.md").write_bytes(data)
        return folder

    return make


def seqrun_env(extra: dict[str, str] | None = None, *, fakes: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TMUX", None)
    env.pop("GITHUB_STEP_SUMMARY", None)  # never append to a real CI job summary
    env["SEQRUN_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["NO_COLOR"] = "1"
    # The suite may run as root (a container): claude, and so seqrun's check
    # for it, refuses root unless the machine is declared a sandbox.
    env["IS_SANDBOX"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if fakes:
        env["PATH"] = str(FAKE_BIN) + os.pathsep + env["PATH"]
    env.update(extra or {})
    return env


@pytest.fixture
def run_seqrun(project: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m seqrun ARGS`` in the project folder as a user would."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            fakes: bool = False, timeout: float = 120, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "seqrun", *args],
            cwd=cwd or project, env=seqrun_env(env, fakes=fakes), text=True,
            capture_output=True, timeout=timeout, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    return run


def use_command_agent(project: Path, source: str, *args: str, toml_top: str = "") -> Path:
    """Write ``agent.py`` (``source``) and a ``seqrun.toml`` pointing the
    ``command`` backend at it with ``args`` ({task_id}, {prompt_file}…)."""
    agent = project / "agent.py"
    agent.write_text(source, encoding="utf-8")
    argv = [sys.executable, str(agent), *args]
    (project / "seqrun.toml").write_text(f"{toml_top}\n[backends.command]\nargv = {json.dumps(argv)}\n",
                                         encoding="utf-8")
    return agent


def gone(pid: int) -> bool:
    """The process no longer exists (zombies of ours would still show)."""
    from seqrun.terminal.proctree import read_proc

    info = read_proc(pid)
    return info is None or (info.zombie and info.ppid != os.getpid())


def write_points(prefix: str) -> str:
    """Code for a crash-injecting conftest: ``_point(name)`` counts the writes
    the plugin watches (logged to ``$<prefix>_WRITES``) and at the
    ``$<prefix>_AT``-th ends the process as ``kill -9`` would (``$<prefix>_MODE``
    ``before``) or fails as a full disk would (``fail``); ``_after()`` ends it
    just after that write (``after``)."""
    return textwrap.dedent(f'''
        _AT = int(os.environ.get("{prefix}_AT", "0"))
        _MODE = os.environ.get("{prefix}_MODE", "")
        _LOG = os.environ.get("{prefix}_WRITES")
        _count = 0


        def _point(name):
            global _count
            _count += 1
            if _LOG:
                with open(_LOG, "a") as f:
                    f.write(f"{{_count}} {{name}}\\n")
            if _count == _AT and _MODE == "before":
                os._exit(137)
            if _count == _AT and _MODE == "fail":
                raise OSError(28, "No space left on device (simulated)")


        def _after():
            if _count == _AT and _MODE == "after":
                os._exit(137)
    ''')


def read_state_file(path: Path) -> dict:
    """A ``SEQUENTIAL_STATE.json`` as every reader of the history sees it:
    each spec's record with its tasks' ``history`` (kept in the spec's
    journal, :func:`seqrun.statefile.with_history`)."""
    from seqrun.statefile import journal_path, with_history

    data = json.loads(path.read_text(encoding="utf-8"))
    for name, record in data.get("specs", {}).items():
        if isinstance(record, dict):
            data["specs"][name] = with_history(record, journal_path(path.parent, name))
    return data


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- recorded agent transcripts ------------------------------------------------------

TRANSCRIPTS = DATA / "agent-transcripts"


def transcript_lines(case: dict, stderr_first: bool = False) -> list[str]:
    """The lines of one recorded case (``cases.json``), stdout then stderr or the other way round."""
    keys = ("stderr", "stdout") if stderr_first else ("stdout", "stderr")
    lines: list[str] = []
    for key in keys:
        if case[key]:
            lines += (TRANSCRIPTS / case[key]).read_text(encoding="utf-8").splitlines()
    return lines


def feed_transcript(parser, lines: list[str], exit_status: int, now, variant: str = "lf"):
    """A parser's verdict on ``lines`` as a pty would hand them over: ``crlf``
    endings, or a line of ``noise`` after each."""
    for line in lines:
        parser.feed_line(line + "\r" if variant == "crlf" else line)
        if variant == "noise":
            parser.feed_line("Warning: something")
    return parser.finish(exit_status, now=now)


def transcript_backends() -> dict[str, type]:
    """The backend of each CLI folder in tests/data/agent-transcripts."""
    from seqrun.backends.claude import ClaudeBackend
    from seqrun.backends.codeagent_wrapper import CodeagentWrapperBackend
    from seqrun.backends.codex import CodexBackend
    from seqrun.backends.gemini import GeminiBackend
    from seqrun.backends.kiro import KiroBackend
    from seqrun.backends.opencode import OpenCodeBackend

    return {"codex": CodexBackend, "claude": ClaudeBackend, "gemini": GeminiBackend,
            "opencode": OpenCodeBackend, "kiro": KiroBackend, "codeagent-wrapper": CodeagentWrapperBackend}


@pytest.fixture
def tmux_env(tmp_path: Path):
    """An isolated tmux server (``TMUX_TMPDIR``) for one test, killed afterwards."""
    import shutil

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    folder = tmp_path / "tmux"
    folder.mkdir()
    env = {"TMUX_TMPDIR": str(folder)}
    yield env
    subprocess.run(["tmux", "kill-server"], env=seqrun_env(env), capture_output=True)
