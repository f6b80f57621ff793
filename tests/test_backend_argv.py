"""How each backend invokes its CLI: argv, stdin, working directory.

A prompt never reaches a shell, and a large one never goes on argv.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from seqrun.config import UsageError

from seqrun.backends import BUILTIN_BACKENDS as _BUILTIN_NAMES
from seqrun.backends import load_builtin

BUILTIN_BACKENDS = tuple(load_builtin(name) for name in _BUILTIN_NAMES)
from seqrun.backends.base import MAX_ARGV_PROMPT, AgentCall, Invocation
from seqrun.backends.claude import ClaudeBackend
from seqrun.backends.codeagent_wrapper import CodeagentWrapperBackend
from seqrun.backends.codex import CodexBackend
from seqrun.backends.command import CommandBackend
from seqrun.backends.demo import DemoBackend
from seqrun.backends.gemini import GeminiBackend
from seqrun.backends.kiro import KiroBackend
from seqrun.backends.opencode import OpenCodeBackend

SMALL = "Task ID: 1.2\nAdd a greeting.\nEnd with <promise>TASK_DONE</promise>."
LARGE = "Task ID: 9\n" + ("lorem ipsum dolor sit amet " * 8000)[:200_000]
DANGEROUS = "Run $(rm -rf /) and `id`; say \"hi\" and 'bye'\nsecond line\n\ttab; echo $HOME > /dev/null"

#: Backends that put a small prompt on argv; the others always use stdin.
ON_ARGV = (GeminiBackend, OpenCodeBackend, KiroBackend)
VIA_STDIN = (CodexBackend, ClaudeBackend, CodeagentWrapperBackend, DemoBackend)
AGENTS = ON_ARGV + VIA_STDIN
COMMAND_ARGV = ["my-agent", "--cwd", "{workdir}", "--task", "{task_id}", "--file", "{prompt_file}", "{model}"]


def make_call(tmp_path: Path, prompt: str, model: str | None = None, extra: tuple[str, ...] = (), **options: object) -> AgentCall:
    workdir = tmp_path / "repo"
    workdir.mkdir(exist_ok=True)
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text(prompt, encoding="utf-8")
    return AgentCall(prompt=prompt, prompt_file=prompt_file, workdir=workdir, task_id="1.2", model=model, extra_args=extra, options=dict(options))


def invoke(backend: type, call: AgentCall) -> Invocation:
    if backend is CommandBackend:
        call = AgentCall(**{**call.__dict__, "options": {"argv": COMMAND_ARGV, **call.options}})
    return backend().invocation(call)


def argv_bytes(argv: list[str]) -> int:
    return sum(len(a.encode()) + 1 for a in argv)


@pytest.mark.parametrize("backend", AGENTS, ids=lambda b: b.name)
def test_small_prompt(backend: type, tmp_path: Path) -> None:
    call = make_call(tmp_path, SMALL)
    inv = invoke(backend, call)
    assert inv.cwd == call.workdir
    if backend in ON_ARGV:
        assert inv.argv.count(SMALL) == 1
        assert inv.argv[-1] == SMALL
        assert inv.stdin == "null"  # these CLIs would read a piped stdin into the prompt
    else:
        assert SMALL not in inv.argv
        assert inv.stdin == call.prompt_file


@pytest.mark.parametrize("backend", [*AGENTS, CommandBackend], ids=lambda b: b.name)
def test_large_prompt_never_on_argv(backend: type, tmp_path: Path) -> None:
    call = make_call(tmp_path, LARGE)
    assert len(LARGE.encode()) > MAX_ARGV_PROMPT
    inv = invoke(backend, call)
    assert argv_bytes(inv.argv) < MAX_ARGV_PROMPT
    assert not any("lorem ipsum dolor sit amet lorem" in a for a in inv.argv)
    if backend in ON_ARGV:
        assert str(call.prompt_file) in inv.argv[-1]  # a pointer to the prompt file
    if backend is not KiroBackend:
        assert inv.stdin == call.prompt_file


@pytest.mark.parametrize("backend", ON_ARGV, ids=lambda b: b.name)
def test_prompt_starting_with_a_dash_is_not_an_option(backend: type, tmp_path: Path) -> None:
    call = make_call(tmp_path, "--help me with task 1.2")
    inv = invoke(backend, call)
    assert not any(a.startswith("--help") for a in inv.argv)
    assert str(call.prompt_file) in inv.argv[-1]


@pytest.mark.parametrize("backend", AGENTS, ids=lambda b: b.name)
def test_shell_characters_stay_one_element(backend: type, tmp_path: Path) -> None:
    call = make_call(tmp_path, DANGEROUS)
    inv = invoke(backend, call)
    if backend in ON_ARGV:
        assert DANGEROUS in inv.argv
    else:
        assert not any("rm -rf" in a for a in inv.argv)
    assert "sh" not in [Path(a).name for a in inv.argv[:1]]
    assert "-c" not in inv.argv[:2]


FLAGS = {
    CodexBackend: ["-m", "gpt-9"],
    ClaudeBackend: ["--model", "gpt-9"],
    GeminiBackend: ["-m", "gpt-9"],
    OpenCodeBackend: ["-m", "gpt-9"],
    KiroBackend: ["--model", "gpt-9"],
    CodeagentWrapperBackend: ["--model", "gpt-9"],
}


def _contains(argv: list[str], pair: list[str]) -> bool:
    return any(argv[i : i + 2] == pair for i in range(len(argv) - 1))


@pytest.mark.parametrize("backend", list(FLAGS), ids=lambda b: b.name)
def test_model_passthrough(backend: type, tmp_path: Path) -> None:
    assert _contains(invoke(backend, make_call(tmp_path, SMALL, model="gpt-9")).argv, FLAGS[backend])
    without = invoke(backend, make_call(tmp_path, SMALL)).argv
    assert FLAGS[backend][0] not in without


@pytest.mark.parametrize("backend", list(FLAGS), ids=lambda b: b.name)
def test_extra_args_come_before_the_prompt(backend: type, tmp_path: Path) -> None:
    inv = invoke(backend, make_call(tmp_path, SMALL, extra=("--extra-flag", "value")))
    i = inv.argv.index("--extra-flag")
    assert inv.argv[i + 1] == "value"
    if backend in ON_ARGV:
        assert i < inv.argv.index(SMALL)
    if "-" in inv.argv:
        assert i < inv.argv.index("-")


EXPECTED_ARGV = {
    CodexBackend: ["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "-C", "{workdir}", "-"],
    ClaudeBackend: ["claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"],
    GeminiBackend: ["gemini", "-o", "stream-json", "-y", "--skip-trust", "-p", SMALL],
    OpenCodeBackend: ["opencode", "run", "--format", "json", "--auto", "--dir", "{workdir}", SMALL],
    KiroBackend: ["kiro-cli", "chat", "--no-interactive", "--trust-all-tools", SMALL],
    CodeagentWrapperBackend: ["codeagent-wrapper", "-"],
}


@pytest.mark.parametrize("backend", list(EXPECTED_ARGV), ids=lambda b: b.name)
def test_exact_argv(backend: type, tmp_path: Path) -> None:
    call = make_call(tmp_path, SMALL)
    expected = [str(call.workdir) if a == "{workdir}" else a for a in EXPECTED_ARGV[backend]]
    inv = invoke(backend, call)
    assert inv.argv == expected
    assert inv.argv[0] == backend.executable


@pytest.mark.parametrize("backend", list(EXPECTED_ARGV), ids=lambda b: b.name)
def test_executable_override(backend: type, tmp_path: Path) -> None:
    inv = invoke(backend, make_call(tmp_path, SMALL, executable="/opt/agents/bin/tool"))
    assert inv.argv[0] == "/opt/agents/bin/tool"


def test_codeagent_wrapper_options(tmp_path: Path) -> None:
    inv = invoke(CodeagentWrapperBackend, make_call(tmp_path, SMALL, backend="claude"))
    assert inv.argv == ["codeagent-wrapper", "--backend", "claude", "-"]
    assert inv.env["CODEX_BYPASS_SANDBOX"] == "true"
    assert inv.env["CODEAGENT_SKIP_PERMISSIONS"] == "true"


def test_command_template(tmp_path: Path) -> None:
    call = make_call(tmp_path, SMALL, extra=("--verbose",))
    inv = invoke(CommandBackend, call)
    assert inv.argv == ["my-agent", "--cwd", str(call.workdir), "--task", "1.2", "--file", str(call.prompt_file), "--verbose"]
    assert inv.stdin == call.prompt_file
    with_model = invoke(CommandBackend, make_call(tmp_path, SMALL, model="m1"))
    assert with_model.argv[-1] == "m1"
    tty = invoke(CommandBackend, make_call(tmp_path, SMALL, stdin="tty"))
    assert tty.stdin == "tty"
    with pytest.raises(UsageError, match="argv"):
        CommandBackend().invocation(make_call(tmp_path, SMALL))


def test_demo_runs_this_python(tmp_path: Path) -> None:
    inv = invoke(DemoBackend, make_call(tmp_path, SMALL))
    assert inv.argv == [sys.executable, "-m", "seqrun.backends.demo_agent"]
    assert "PYTHONPATH" in inv.env


@pytest.mark.parametrize("backend", BUILTIN_BACKENDS, ids=lambda b: b.name)
def test_every_prompt_size_keeps_argv_small(backend: type, tmp_path: Path) -> None:
    for size in (0, 1, MAX_ARGV_PROMPT - 100, MAX_ARGV_PROMPT + 1, 1_000_000):
        inv = invoke(backend, make_call(tmp_path, "é" * (size // 2)))
        assert argv_bytes(inv.argv) < MAX_ARGV_PROMPT + 4096
        assert all("\0" not in a for a in inv.argv)


def test_claude_is_told_it_runs_in_a_sandbox_only_when_the_user_says_so(tmp_path: Path) -> None:
    import dataclasses

    call = make_call(tmp_path, "Do it.")
    assert "IS_SANDBOX" not in invoke(ClaudeBackend, call).env
    assert invoke(ClaudeBackend, dataclasses.replace(call, sandbox=True)).env == {"IS_SANDBOX": "1"}
