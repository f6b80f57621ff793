"""Fixtures for running seqrun with the real agent CLIs against the fake LLM.

The CLIs come from ``scripts/install-agent-clis`` (``<repo>/.agent-clis``, or
``$SEQRUN_AGENT_CLIS_DIR``); a test whose CLI is missing skips and says how to
install it. Every CLI runs with a temporary ``HOME`` (and ``CODEX_HOME``,
``XDG_*`` dirs, config files) that the test creates, with the user's API keys
and tokens removed from the environment, pointed at the fake on 127.0.0.1, and
with ``HTTP(S)_PROXY`` set to the fake too: a request for any other host is
refused and recorded (``FakeLLM.escapes``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from .fake_llm_server import FakeLLM

REPO = Path(__file__).resolve().parents[2]
CLIS_DIR = Path(os.environ.get("SEQRUN_AGENT_CLIS_DIR") or REPO / ".agent-clis")
BIN = CLIS_DIR / "node_modules" / ".bin"

#: Environment variables that could point a CLI at a real account, a real
#: endpoint or the user's own configuration: never passed on. Every variable
#: with one of these prefixes goes, and the few others named.
SCRUBBED_PREFIXES = ("OPENAI_", "CODEX_", "ANTHROPIC_", "CLAUDE", "GEMINI_", "GOOGLE_", "VERTEX", "OPENCODE_", "XDG_")
SCRUBBED = (
    "TMUX", "TMUX_PANE", "NODE_OPTIONS", "NPM_CONFIG_PREFIX", "DEBUG",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)


def scrubbed(name: str) -> bool:
    return name in SCRUBBED or name.upper().startswith(SCRUBBED_PREFIXES)


@dataclass(frozen=True)
class Cli:
    """One agent CLI as the tests drive it."""

    backend: str  # seqrun --backend
    package: str  # npm package
    model: str  # seqrun --model; the CLI's own configuration names another one
    protocol: str  # what the fake sees (FakeLLM Request.protocol)
    api_model: str = ""  # the model in the API requests, when not ``model``

    @property
    def requested_model(self) -> str:
        return self.api_model or self.model

    @property
    def executable(self) -> Path:
        return BIN / self.backend

    def manifest(self) -> dict:
        try:
            data = json.loads((CLIS_DIR / "node_modules" / self.package / "package.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def version(self) -> str | None:
        version = self.manifest().get("version")
        return version if isinstance(version, str) else None

    def node_major_needed(self) -> int:
        """The Node.js major version the package's ``engines`` asks for (">=20")."""
        engines = self.manifest().get("engines")
        wanted = engines.get("node", "") if isinstance(engines, dict) else ""
        m = re.match(r"\s*>=?\s*v?(\d+)", wanted if isinstance(wanted, str) else "")
        return int(m.group(1)) if m else 0


#: The model the CLIs' own configuration files name: a request for it means
#: the CLI did not get seqrun's ``--model``.
UNUSED_MODEL = "model-from-config-not-argv"

CLIS: dict[str, Cli] = {
    "codex": Cli("codex", "@openai/codex", "fake-model", "responses"),
    "claude": Cli("claude", "@anthropic-ai/claude-code", "claude-fake-1", "anthropic"),
    "gemini": Cli("gemini", "@google/gemini-cli", "gemini-2.5-pro", "gemini"),
    "opencode": Cli("opencode", "opencode-ai", "fake/fake-model", "chat", api_model="fake-model"),
}


def node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"v(\d+)", out.strip())
    return int(m.group(1)) if m else None


def require(cli: Cli) -> None:
    """Skip, saying why and what to do, when ``cli`` cannot run here."""
    if not os.access(cli.executable, os.X_OK) or cli.version() is None:
        pytest.skip(f"{cli.package} is not installed in {CLIS_DIR}: run scripts/install-agent-clis")
    major = node_major()
    if major is None:
        pytest.skip(f"node is not installed: {cli.package} needs Node.js")
    if major < cli.node_major_needed():
        pytest.skip(f"{cli.package} needs Node.js >= {cli.node_major_needed()}, found {major}")


# -- per-CLI configuration in a temporary home ----------------------------------------


def configure(cli: Cli, home: Path, fake: FakeLLM) -> dict[str, str]:
    """Write ``cli``'s configuration under ``home``; return the variables it needs."""
    env: dict[str, str] = {}
    if cli.backend == "codex":
        codex_home = home / ".codex"
        codex_home.mkdir(parents=True, exist_ok=True)
        (codex_home / "config.toml").write_text(textwrap.dedent(f"""\
            model = "{UNUSED_MODEL}"  # seqrun's --model must win
            model_provider = "fake"
            check_for_update_on_startup = false

            [model_providers.fake]
            name = "fake LLM on 127.0.0.1"
            base_url = "{fake.url}/v1"
            env_key = "FAKE_LLM_API_KEY"
            wire_api = "responses"
            # One try per process: seqrun, not codex, decides what a failure means.
            request_max_retries = 0
            stream_max_retries = 0
            stream_idle_timeout_ms = 30000

            [analytics]
            enabled = false

            # Features that reach chatgpt.com or github.com at start-up.
            [features]
            plugins = false
            remote_plugin = false
            apps = false
            """))
        env.update(CODEX_HOME=str(codex_home), FAKE_LLM_API_KEY="sk-fake-llm")
    elif cli.backend == "claude":
        env.update(
            ANTHROPIC_BASE_URL=fake.url,
            ANTHROPIC_API_KEY="sk-ant-api03-fake-llm",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            DISABLE_TELEMETRY="1",
            DISABLE_ERROR_REPORTING="1",
            CLAUDE_CODE_MAX_RETRIES="0",
            API_TIMEOUT_MS="30000",
            IS_SANDBOX="1",  # --dangerously-skip-permissions refuses to run as root without it
        )
    elif cli.backend == "gemini":
        settings = home / ".gemini" / "settings.json"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 1},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
        }, indent=2))
        env.update(GEMINI_API_KEY="fake-llm-key", GOOGLE_GEMINI_BASE_URL=fake.url)
    elif cli.backend == "opencode":
        config = home / "opencode.json"
        config.write_text(json.dumps({
            "$schema": "https://opencode.ai/config.json",
            "model": f"fake/{UNUSED_MODEL}",  # seqrun's --model must win
            "autoupdate": False,
            "share": "disabled",
            # Shell commands need approval, as in a cautious user's setup: only
            # seqrun's --auto lets the agent run them unattended.
            "permission": {"bash": "ask"},
            "provider": {"fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "fake LLM on 127.0.0.1",
                "options": {"baseURL": f"{fake.url}/v1", "apiKey": "sk-fake-llm"},
                "models": {"fake-model": {"name": "Fake model"}, UNUSED_MODEL: {"name": "Not this one"}},
            }},
        }, indent=2))
        # opencode installs @opencode-ai/plugin into its config folder from the npm
        # registry at every start unless node_modules is there and package-lock.json
        # lists it: say it is installed, so the run stays on 127.0.0.1.
        config_dir = home / ".config" / "opencode"
        (config_dir / "node_modules").mkdir(parents=True, exist_ok=True)
        (config_dir / "package-lock.json").write_text(json.dumps(
            {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": cli.version() or "*"}}}}))
        env.update(
            OPENCODE_CONFIG=str(config),
            OPENCODE_DISABLE_AUTOUPDATE="1",
            OPENCODE_DISABLE_MODELS_FETCH="1",
            OPENCODE_DISABLE_LSP_DOWNLOAD="1",
            OPENCODE_DISABLE_SHARE="1",
        )
    return env


def agent_env(cli: Cli, home: Path, fake: FakeLLM, extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """The whole environment seqrun (and so the CLI) runs with."""
    env = {k: v for k, v in os.environ.items() if not scrubbed(k)}
    for sub in (".config", ".local/share", ".cache", ".local/state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    proxy = fake.url  # anything not for 127.0.0.1 lands in the proxy trap
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local/state"),
        HTTP_PROXY=proxy, HTTPS_PROXY=proxy, ALL_PROXY=proxy,
        http_proxy=proxy, https_proxy=proxy, all_proxy=proxy,
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        PATH=str(BIN) + os.pathsep + env.get("PATH", os.defpath),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        SEQRUN_DISABLE_PLUGIN_AUTOLOAD="1",
        NO_COLOR="1",
    )
    env.update(configure(cli, home, fake))
    for key, value in (extra or {}).items():  # None removes a variable
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# -- fixtures ---------------------------------------------------------------------------


@dataclass
class AgentRun:
    """The pieces of one end-to-end run; :meth:`seqrun` runs seqrun itself."""

    cli: Cli
    mode: str  # "pty" or "tmux"
    project: Path
    home: Path
    fake: FakeLLM
    tmux_tmpdir: Path
    extra_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def specs(self) -> Path:
        return self.project / ".kiro" / "specs"

    def spec(self, text: str, name: str = "feature") -> Path:
        folder = self.specs / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tasks.md").write_text(text)
        return folder

    def env(self) -> dict[str, str]:
        return agent_env(self.cli, self.home, self.fake, {"TMUX_TMPDIR": str(self.tmux_tmpdir), **self.extra_env})

    def seqrun(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        mode_args = ["--no-tmux"] if self.mode == "pty" else ["--tmux-session", f"agents-{self.cli.backend}"]
        argv = [
            sys.executable, "-m", "seqrun", "--backend", self.cli.backend, "--model", self.cli.model,
            "--delay", "0", "--reruns", "0", "--rate-limit-margin", "0", "--rate-limit-backoff", "2",
            "--timeout", "150", "--report-log", "report.jsonl", *mode_args, *args,
        ]
        return subprocess.run(argv, cwd=self.project, env=self.env(), text=True, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def state(self, spec: str = "feature") -> dict:
        """The spec's record with each task's ``history`` (kept in the spec's journal)."""
        from seqrun.statefile import journal_path, with_history

        record = json.loads((self.specs / "SEQUENTIAL_STATE.json").read_text())["specs"][spec]
        return with_history(record, journal_path(self.specs, spec))

    def events(self, kind: str) -> list[dict]:
        path = self.project / "report.jsonl"
        if not path.exists():
            return []
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in events if e.get("$report_type") == kind]

    def logs(self) -> str:
        """Every byte the agent printed, all attempts (for failure messages)."""
        out = []
        for log in sorted((self.specs / ".seqrun" / "logs").rglob("*.log")):
            out.append(f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}")
        return "\n".join(out)


@pytest.fixture
def agent_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AgentRun]:
    """``AgentRun`` for the test's ``cli`` and ``mode`` parameters, with a fake
    LLM of its own."""
    cli: Cli = request.getfixturevalue("cli")
    mode: str = request.getfixturevalue("mode")
    require(cli)
    if mode == "tmux" and shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    with FakeLLM() as fake_llm:
        yield from _agent_run(cli, mode, tmp_path, fake_llm)


def _agent_run(cli: Cli, mode: str, tmp_path: Path, fake_llm: FakeLLM) -> Iterator[AgentRun]:
    project = tmp_path / "project"
    (project / ".kiro" / "specs").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project)], check=False, capture_output=True)
    (project / "README.md").write_text("# Greeting\n\nA project that needs a greeting.\n")
    tmux_tmpdir = tmp_path / "tmux"
    tmux_tmpdir.mkdir()
    scratch = tmp_path / "tmp"  # the CLIs' temporary files (gemini's error reports) stay here
    scratch.mkdir()
    run = AgentRun(cli, mode, project, tmp_path / "home", fake_llm, tmux_tmpdir,
                   {"TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)})
    fake_llm.follow(run.specs / ".seqrun" / "logs")
    yield run
    if mode == "tmux":
        subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": str(tmux_tmpdir)},
                       capture_output=True)

