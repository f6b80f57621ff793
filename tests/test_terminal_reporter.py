"""What a person sees of a run: plain lines when piped, a live view on a
terminal (run here inside a real pty), the summary, and the GitHub Actions
job summary."""
from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import seqrun_env, use_command_agent, wait_for
from seqrun.config import BUILTIN_PLUGINS
from seqrun.outcome import Outcome, TaskReport, Usage
from seqrun.reports.ghsummary import render_summary
from seqrun.reports.terminal import (
    LiveStatus, Running, Waiting, describe_json_line, last_output_line, printable, usage_totals,
)

TWO = "- [ ] 1. First task\n- [ ] 2. Second task\n"
HOSTILE = "- [ ] 1. First task\n- [ ] 2. Evil \x1b]0;PWNED\x07title [red]markup[/red]\n"
DEMO = ("--backend", "demo", "--no-tmux")
#: The usage in the fake claude's ``done`` transcript: 2900 in + 54 out, $0.01585.
CLAUDE_DONE_TOKENS = "2,954 tokens"

needs_pty = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pty")


def gh_plugin_args() -> list[str]:
    """Load the GitHub summary plugin unless it is already a built-in one."""
    return [] if "seqrun.reports.ghsummary" in BUILTIN_PLUGINS.values() else ["-p", "seqrun.reports.ghsummary"]


def terminal_env(extra: dict[str, str] | None = None, *, fakes: bool = False) -> dict[str, str]:
    env = seqrun_env({"SEQRUN_DEMO_DELAY": "0", "TERM": "xterm-256color", **(extra or {})}, fakes=fakes)
    for name in ("NO_COLOR", "FORCE_COLOR", "GITHUB_STEP_SUMMARY", "COLUMNS", "LINES"):
        if name not in (extra or {}):
            env.pop(name, None)
    return env


class Terminal:
    """``python ARGS`` on a real pty, its output read as a terminal gets it."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        from ptyprocess import PtyProcess

        self.proc = PtyProcess.spawn([sys.executable, *args], cwd=str(cwd), env=env, dimensions=(24, 120))
        self.output = b""

    def read_until(self, wanted: bytes | None, timeout: float = 60) -> bool:
        """Read until ``wanted`` shows up (None: until the end); False on timeout."""
        deadline = time.monotonic() + timeout
        while wanted is None or wanted not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.proc.fd], [], [], left)
            if not ready:
                continue
            try:
                self.output += self.proc.read(65536)
            except EOFError:
                return wanted is None
        return True

    def finish(self, timeout: float = 60) -> tuple[str, int]:
        ended = self.read_until(None, timeout)
        if not ended:
            self.proc.kill(signal.SIGKILL)
        self.proc.wait()
        assert ended, self.output.decode("utf-8", "replace")[-2000:]
        return self.output.decode("utf-8", "replace"), self.proc.exitstatus


def run_in_terminal(project: Path, *args: str, env: dict[str, str] | None = None,
                    fakes: bool = False) -> tuple[str, int]:
    return Terminal(["-m", "seqrun", *args], project, terminal_env(env, fakes=fakes)).finish()


def section(stdout: str, title: str) -> list[str]:
    """The lines under the ``== title ==`` rule, up to the next rule."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("=") and f" {title} " in line)
    rest = lines[start + 1:]
    end = next((i for i, line in enumerate(rest) if line.startswith("==")), len(rest))
    return rest[:end]


# -- plain output --------------------------------------------------------------------------


def test_piped_output_is_plain_lines_without_escape_codes(make_spec, run_seqrun):
    make_spec(TWO)
    # NO_COLOR empty counts as unset: only "not a terminal" makes this plain.
    result = run_seqrun(*DEMO, "--delay", "2", env={"SEQRUN_DEMO_DELAY": "0", "NO_COLOR": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == "collected 2 tasks"
    assert "RUN     .kiro/specs/feature::1 First task [demo]" in lines
    assert "RUN     .kiro/specs/feature::2 Second task [demo]" in lines
    assert any(re.fullmatch(r"WAIT    [12]s: delay between dispatches", line) for line in lines)
    assert any(re.fullmatch(r"PASSED  \.kiro/specs/feature::1 First task \(\d+\.\ds\)", line) for line in lines)
    assert re.fullmatch(r"=+ 2 passed in \d+\.\ds \(\d[\d,]* tokens\) =+", lines[-1]), lines[-1]


def test_color_yes_colours_even_when_piped(make_spec, run_seqrun):
    make_spec(TWO)
    result = run_seqrun(*DEMO, "--delay", "0", "--color", "yes", env={"SEQRUN_DEMO_DELAY": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b[" in result.stdout
    # Coloured, but still one line per task and no live-area cursor movement.
    assert re.search(r"\x1b\[32mPASSED  \.kiro/specs/feature::1 First task", result.stdout)
    assert "\x1b[1A" not in result.stdout and "\x1b[?25l" not in result.stdout


@needs_pty
@pytest.mark.parametrize("how", [{"env": {"NO_COLOR": "1"}, "args": ()},
                                 {"env": {}, "args": ("--color", "no")},
                                 {"env": {"TERM": "dumb"}, "args": ()}],
                         ids=["NO_COLOR", "color-no", "TERM-dumb"])
def test_terminal_without_colour_gets_the_plain_lines(how, make_spec, project):
    make_spec(TWO)
    out, status = run_in_terminal(project, *DEMO, "--delay", "0", *how["args"], env=how["env"])
    assert status == 0, out
    assert "\x1b" not in out
    assert "collected 2 tasks\r\n" in out and "RUN     .kiro/specs/feature::2 Second task [demo]" in out
    assert "PASSED  .kiro/specs/feature::2 Second task" in out


# -- the live view on a terminal -----------------------------------------------------------------


@needs_pty
def test_terminal_shows_live_task_countdown_and_finished_lines(make_spec, project):
    make_spec(HOSTILE)
    out, status = run_in_terminal(project, *DEMO, "--delay", "2", env={"SEQRUN_DEMO_DELAY": "1"})
    assert status == 0, out
    assert "\x1b[" in out
    # The live area: the running task with its backend and attempt, its last
    # output line, then the countdown of the delay naming the next task.
    assert "[1/2] .kiro/specs/feature::1 First task" in out
    assert "demo · attempt 1" in out
    assert re.search(r"  > \[(system|assistant|user|result)\]", out)  # the demo's JSON stream
    assert "next task in 2s (delay between dispatches)" in out
    assert "next task in 1s (delay between dispatches)" in out
    assert "up next: .kiro/specs/feature::2 Evil title [red]markup[/red]" in out
    # Finished tasks stay above it, one coloured line each; no plain RUN/WAIT lines.
    assert "\x1b[32mPASSED  .kiro/specs/feature::1 First task" in out
    assert "RUN     " not in out and "WAIT    " not in out
    assert re.search(r"=+ 2 passed in \d+\.\ds \(\d[\d,]* tokens\) =+", out)
    # The title's escape sequence never reaches the terminal; its markup is text.
    assert "\x1b]" not in out and "\x07" not in out
    assert re.search(r"\x1b\[32mPASSED  \.kiro/specs/feature::2 Evil title \[red\]markup\[/red\] \(", out)
    # The live area is gone at the end and the cursor is back.
    assert out.rindex("\x1b[?25h") > out.rindex("\x1b[?25l")


@needs_pty
@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_terminal_shows_how_to_watch_the_agent_in_tmux(make_spec, project, tmp_path):
    make_spec("- [ ] 1. First task\n")
    sockets = tmp_path / "tmux"
    sockets.mkdir()
    env = {"TMUX_TMPDIR": str(sockets), "SEQRUN_DEMO_DELAY": "1"}
    try:
        out, status = run_in_terminal(project, "--backend", "demo", "--tmux-session", "watch me", env=env)
    finally:
        subprocess.run(["tmux", "kill-server"], env=terminal_env(env), capture_output=True)
    assert status == 0, out
    assert "watch: tmux attach -t watch_me" in out


@needs_pty
def test_ctrl_c_restores_the_terminal(make_spec, project):
    make_spec(TWO)
    term = Terminal(["-m", "seqrun", *DEMO, "--delay", "0"], project,
                    terminal_env({"SEQRUN_DEMO_DELAY": "60"}))
    assert term.read_until(b"demo \xc2\xb7 attempt 1", timeout=30), term.output
    term.proc.kill(signal.SIGINT)
    out, status = term.finish()
    assert status == 2, out
    assert out.rindex("\x1b[?25h") > out.rindex("\x1b[?25l")
    tail = out[out.rindex("\x1b[?25h"):]
    assert "INTERRUPTED .kiro/specs/feature::1 First task" in out
    assert "stopped: interrupted" in tail and re.search(r"=+ 1 interrupted.* in ", tail)


@needs_pty
def test_rate_limit_wait_counts_down_on_the_terminal(make_spec, project):
    make_spec("- [ ] 1. Limited\n")
    script = project / "script.json"
    script.write_text(json.dumps({"1": ["rate_limited", "done"]}))
    out, status = run_in_terminal(
        project, "--backend", "claude", "--no-tmux", "--delay", "0", "--rate-limit-margin", "2",
        env={"SEQRUN_FAKE_SCRIPT": str(script), "SEQRUN_FAKE_RESET_IN": "0"}, fakes=True)
    assert status == 0, out
    assert re.search(r"WAIT    \ds: rate limited", out)  # a rate limit is worth a line
    assert re.search(r"rate limited: .* - retry in [12]s", out)
    assert "claude · attempt 2" in out
    assert CLAUDE_DONE_TOKENS in out


@needs_pty
def test_collect_only_quiet_does_not_import_rich_even_on_a_terminal(make_spec, project):
    make_spec(TWO)
    term = Terminal(["-X", "importtime", "-m", "seqrun", "--co", "-q"], project, terminal_env())
    out, status = term.finish()
    assert status == 0, out
    assert ".kiro/specs/feature::2" in out and "| seqrun.main" in out  # importtime did report
    assert not re.search(r"\|\s+rich(\.|\s*$)", out, re.M)


# -- summary --------------------------------------------------------------------------------------


def test_durations_and_report_chars(make_spec, run_seqrun):
    make_spec(TWO)
    result = run_seqrun(*DEMO, "--delay", "0", "--durations", "1", "-r", "p",
                        env={"SEQRUN_DEMO_DELAY": "0.3"})
    assert result.returncode == 0, result.stdout
    slowest = section(result.stdout, "slowest 1 durations")
    assert len(slowest) == 1 and re.fullmatch(r" +\d+\.\d\ds \.kiro/specs/feature::[12]", slowest[0])
    assert section(result.stdout, "short task summary info") == [
        "PASSED .kiro/specs/feature::1 - First task",
        "PASSED .kiro/specs/feature::2 - Second task",
    ]


def test_default_summary_lists_failures_with_their_log(make_spec, run_seqrun, project):
    make_spec(TWO)
    script = project / "script.json"
    script.write_text(json.dumps({"1": "done", "2": "failed"}))
    result = run_seqrun("--backend", "claude", "--no-tmux", "--delay", "0", "--reruns", "0",
                        env={"SEQRUN_FAKE_SCRIPT": str(script)}, fakes=True)
    assert result.returncode == 1
    (line,) = section(result.stdout, "short task summary info")
    assert line.startswith("FAILED .kiro/specs/feature::2 - HTTP 500: API Error")
    assert line.endswith("(log: " + str(project / ".kiro/specs/.seqrun/logs/feature/2/1.log") + ")")
    assert result.stdout.splitlines()[-1].strip("= ").startswith("1 failed, 1 passed in ")
    assert f"({CLAUDE_DONE_TOKENS}, $0.02)" in result.stdout.splitlines()[-1]


def test_unit_dispatch_counts_one_runs_tokens_once(make_spec, run_seqrun):
    make_spec("- [ ] 1. Parent\n  - [ ] 1.1 One\n  - [ ] 1.2 Two\n")
    result = run_seqrun("--backend", "claude", "--no-tmux", "--delay", "0", "--dispatch", "unit", fakes=True)
    assert result.returncode == 0, result.stdout
    last = result.stdout.splitlines()[-1]
    assert "2 passed" in last and f"({CLAUDE_DONE_TOKENS}, $0.02)" in last


def test_usage_totals_count_each_agent_run_once():
    shared = Usage(input_tokens=100, output_tokens=20, cost_usd=0.5)
    reports = [
        TaskReport("s::1.1", "1.1", "a", Outcome.PASSED, dispatch_id="r:s::1", usage=shared),
        TaskReport("s::1.2", "1.2", "b", Outcome.PASSED, dispatch_id="r:s::1", usage=shared),
        TaskReport("s::2", "2", "c", Outcome.FAILED, dispatch_id="r:s::2", usage=Usage(output_tokens=5)),
        TaskReport("s::3", "3", "d", Outcome.SKIPPED),
    ]
    assert usage_totals(reports) == (125, 0.5)


# -- the FAILURES section, the resume announcement, the rerun's reason --------------------------------

#: An agent that answers per task id from answers.json (the n-th call of a
#: task gets its n-th answer, the last one after that) and notes each call in
#: ran.txt. ``SLEEP:S text`` sleeps S seconds first.
SCRIPTED_AGENT = """\
import json, pathlib, sys, time
here = pathlib.Path(__file__).resolve().parent
task = sys.argv[1]
with open(here / "ran.txt", "a") as f:
    f.write(task + "\\n")
calls = (here / "ran.txt").read_text().split().count(task)
answers = json.loads((here / "answers.json").read_text())[task]
answer = answers[min(calls, len(answers)) - 1]
if answer.startswith("SLEEP:"):
    pause, answer = answer[6:].split(" ", 1)
    time.sleep(float(pause))
print(answer)
"""
DONE = "<promise>TASK_DONE</promise>"
LAST_WORDS = "I could not make the tests pass."
#: Settings from seqrun.toml, so that the printed rerun command needs no option.
QUIET_COMMAND = 'backend = "command"\nno_tmux = true\ndelay = 0\n'


def scripted_agent(project: Path, answers: dict[str, list[str]], toml_top: str = QUIET_COMMAND) -> None:
    (project / "answers.json").write_text(json.dumps(answers), encoding="utf-8")
    use_command_agent(project, SCRIPTED_AGENT, "{task_id}", toml_top=toml_top)


def ran(project: Path) -> list[str]:
    path = project / "ran.txt"
    return path.read_text().split() if path.exists() else []


def blocks(lines: list[str]) -> dict[str, list[str]]:
    """The FAILURES section's blocks by node id (the ``___ nodeid ___`` rules)."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        header = re.fullmatch(r"_{2,} (.+) _{2,}", line)
        if header:
            current = found[header.group(1)] = []
        else:
            current.append(line)
    return found


def test_a_failed_run_shows_the_agents_last_words_and_the_command_that_reruns_it(make_spec, project,
                                                                                run_seqrun):
    make_spec("- [ ] 1. First task\n- [ ] 2. Second task\n- [ ] 3. Third task\n- [ ] 4. Never reached\n")
    scripted_agent(project, {"1": [DONE], "2": ["Tried twice.\n" + LAST_WORDS],
                             "3": ["<promise>HALT</promise> the staging database is gone"], "4": [DONE]})
    result = run_seqrun("--reruns", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "\x1b" not in result.stdout
    failures = section(result.stdout, "FAILURES")
    found = blocks(failures)
    assert list(found) == [".kiro/specs/feature::2", ".kiro/specs/feature::3"]
    second = found[".kiro/specs/feature::2"]
    assert second[:2] == ["Second task", "FAILED [no-marker] attempt 2: no TASK_DONE marker in the final message"]
    assert re.fullmatch(r"attempt 1: failed \[no-marker\] \(\d+\.\ds\) - no TASK_DONE marker in the final message",
                        second[2]), second
    assert second[3:] == [
        "agent's last words:",
        "    Tried twice.",
        f"    {LAST_WORDS}",
        "log: .kiro/specs/.seqrun/logs/feature/2/2.log",
        "rerun: seqrun .kiro/specs/feature::2",
    ]
    # A halted task has its block too, with the agent's words.
    assert found[".kiro/specs/feature::3"] == [
        "Third task",
        "HALTED [halted] attempt 1: agent asked to halt",
        "agent's last words:",
        "    <promise>HALT</promise> the staging database is gone",
        "log: .kiro/specs/.seqrun/logs/feature/3/1.log",
        "rerun: seqrun .kiro/specs/feature::3",
    ]
    # pytest's order: FAILURES, then the short summary, then the counts.
    lines = result.stdout.splitlines()
    assert lines.index(next(line for line in lines if " FAILURES " in line)) < lines.index(
        next(line for line in lines if " short task summary info " in line))
    assert (project / ".kiro/specs/.seqrun/logs/feature/2/2.log").is_file()
    # The command runs that task and no other.
    assert ran(project) == ["1", "2", "2", "3"]
    command = shlex.split(second[-1].removeprefix("rerun: "))
    assert command[0] == "seqrun"
    again = run_seqrun(*command[1:])
    assert ran(project) == ["1", "2", "2", "3", "2", "2"]  # attempts 3 and 4 (--reruns 1)
    assert again.stdout.startswith("collected 1 task / 3 deselected\n"), again.stdout
    assert "RUN     .kiro/specs/feature::2 Second task [command] (attempt 3)\n" in again.stdout
    assert again.returncode == 1, again.stdout + again.stderr


def test_tb_line_gives_one_line_per_task_and_tb_no_none(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First task\n- [ ] 2. Second task\n")
    scripted_agent(project, {"1": [LAST_WORDS], "2": ["<promise>HALT</promise> stop"]},
                   toml_top=QUIET_COMMAND + 'tb = "line"\n')
    result = run_seqrun("--reruns", "0")  # tb from seqrun.toml
    assert result.returncode == 2, result.stdout + result.stderr
    assert section(result.stdout, "FAILURES") == [
        ".kiro/specs/feature::1: FAILED [no-marker] no TASK_DONE marker in the final message",
        ".kiro/specs/feature::2: HALTED [halted] agent asked to halt",
    ]
    assert LAST_WORDS not in result.stdout
    quiet = run_seqrun("--reruns", "0", "--tb", "no")  # the command line wins
    assert quiet.returncode == 2, quiet.stdout + quiet.stderr
    assert " FAILURES " not in quiet.stdout and "rerun: " not in quiet.stdout
    assert "FAILED .kiro/specs/feature::1 - no TASK_DONE marker" in quiet.stdout  # -r stays as it was


def test_a_failed_verification_shows_its_output_tail(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. Make the tests pass\n")
    scripted_agent(project, {"1": ["All green. " + DONE]})
    check = "sh -c 'seq 101 130; echo LAST-LINE-OF-CHECK; exit 3'"
    short = run_seqrun("--reruns", "0", "--verify", check)
    assert short.returncode == 1, short.stdout + short.stderr
    (block,) = blocks(section(short.stdout, "FAILURES")).values()
    at = block.index(f"verification: {check} (exit 3):")
    # --tb short (the default): the last ten lines, and how many are not shown.
    assert block[at + 1:at + 13] == ["    … (21 lines above; --tb long shows them)",
                                     *(f"    {n}" for n in range(122, 131)), "    LAST-LINE-OF-CHECK",
                                     "log: .kiro/specs/.seqrun/logs/feature/1/1.log"]
    assert block[block.index("agent's last words:") + 1] == "    All green. <promise>TASK_DONE</promise>"
    long = run_seqrun("--reruns", "0", "--verify", check, "--tb", "long")
    (block,) = blocks(section(long.stdout, "FAILURES")).values()
    at = block.index(f"verification: {check} (exit 3):")
    assert block[at + 1:at + 32] == [*(f"    {n}" for n in range(101, 131)), "    LAST-LINE-OF-CHECK"]
    assert block[1] == f"FAILED [verification] attempt 2: verification failed: `{check}` exited 3 (LAST-LINE-OF-CHECK)"
    assert block[2] == "after 1 attempt in earlier runs"


SETUP_RAISES = """\
from seqrun.hookspec import hookimpl

def check_database():
    raise RuntimeError("database offline")

@hookimpl
def seqrun_runtest_setup(item):
    if item.id == "1":
        check_database()
"""


def test_an_error_shows_the_end_of_its_traceback(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First task\n- [ ] 2. Second task\n")
    (project / ".kiro/specs/conftest.py").write_text(SETUP_RAISES, encoding="utf-8")
    scripted_agent(project, {"1": [DONE], "2": [DONE]})
    result = run_seqrun()
    assert result.returncode == 1, result.stdout + result.stderr
    found = blocks(section(result.stdout, "FAILURES"))
    assert list(found) == [".kiro/specs/feature::1"]
    block = found[".kiro/specs/feature::1"]
    assert block[:3] == ["First task", "ERROR [setup-error]: setup failed: RuntimeError: database offline",
                         "explanation:"]
    assert block[-3:] == ['        raise RuntimeError("database offline")', "    RuntimeError: database offline",
                          "rerun: seqrun .kiro/specs/feature::1"]
    assert ran(project) == ["2"]


#: Task 1 is done at once; task 2 works until it is killed.
SLOW_SECOND = {"1": [DONE], "2": ["SLEEP:60 never"]}


def test_the_run_after_a_killed_one_announces_what_it_resumes(make_spec, project, run_seqrun):
    make_spec("- [ ] 1. First task\n- [ ] 2. Second task\n- [ ] 3. Third task\n")
    scripted_agent(project, SLOW_SECOND)
    proc = subprocess.Popen([sys.executable, "-m", "seqrun", "--kill-grace", "1"], cwd=project,
                            env=seqrun_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert wait_for(lambda: ran(project) == ["1", "2"], timeout=30)
    state = project / ".kiro/specs/SEQUENTIAL_STATE.json"
    assert wait_for(lambda: json.loads(state.read_text())["specs"]["feature"]["tasks"]["2"]["status"]
                    == "running", timeout=30)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    (project / "answers.json").write_text(json.dumps({"1": [DONE], "2": [DONE], "3": [DONE]}))
    result = run_seqrun()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "collected 3 tasks",
        "resuming: 1 done, 1 interrupted (2, attempt 1)",
        "RUN     .kiro/specs/feature::2 Second task [command] (attempt 2)",
        "        previous attempt 1: interrupted - interrupted: seqrun stopped while this task ran "
        "(killed, crashed or power cut)",
    ]
    assert ran(project) == ["1", "2", "2", "3"]
    # Nothing left to resume: no announcement; -q never shows it.
    assert "resuming" not in run_seqrun("-q").stdout


def test_a_rerun_on_the_terminal_shows_why_the_previous_attempt_failed(make_spec, project):
    make_spec("- [ ] 1. First task\n")
    scripted_agent(project, {"1": ["Gave up on the flaky fixture.", f"SLEEP:2 {DONE}"]})
    out, status = run_in_terminal(project, "--reruns", "1")
    assert status == 0, out
    assert "\x1b[" in out and "RUN     " not in out  # the live view, not the plain lines
    assert "command · attempt 2" in out
    assert "previous attempt 1: no-marker - no TASK_DONE marker in the final message" in out


# -- GitHub Actions job summary ---------------------------------------------------------------------


def test_github_step_summary_is_appended(make_spec, run_seqrun, project):
    make_spec(TWO)
    script = project / "script.json"
    script.write_text(json.dumps({"1": "done", "2": "failed"}))
    summary = project / "summary.md"
    summary.write_text("previous\n")
    result = run_seqrun(*gh_plugin_args(), "--backend", "claude", "--no-tmux", "--delay", "0",
                        "--reruns", "0", fakes=True,
                        env={"SEQRUN_FAKE_SCRIPT": str(script), "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 1
    text = summary.read_text()
    assert text.startswith("previous\n\n## ❌ seqrun: tasks failed (exit 1): feature\n")
    assert "| outcome | tasks |\n| --- | ---: |\n| passed | 1 |\n| failed | 1 |\n" in text
    assert "| task | title | outcome | attempts | reason | log |\n" in text
    row = next(line for line in text.splitlines() if line.startswith("| .kiro/specs/feature::2 |"))
    assert row.startswith("| .kiro/specs/feature::2 | Second task | failed | 1 | HTTP 500: API Error: 500 ")
    assert "feature::1" not in text
    assert re.search(r"\n\*\*Totals:\*\* 2,954 tokens · \$0\.02 · \d+\.\ds\n\Z", text), text
    # A second run appends again; nothing is lost.
    second = run_seqrun(*gh_plugin_args(), "--backend", "claude", "--no-tmux", "--delay", "0", fakes=True,
                        env={"SEQRUN_FAKE_SCRIPT": str(script), "GITHUB_STEP_SUMMARY": str(summary)})
    assert second.returncode == 1, second.stdout + second.stderr  # task 2 fails again
    again = summary.read_text()
    assert again.startswith(text) and again.count("\n## ") == 2


def test_no_github_summary_without_the_variable(make_spec, run_seqrun, project):
    make_spec(TWO)
    result = run_seqrun(*gh_plugin_args(), *DEMO, "--delay", "0",
                        env={"SEQRUN_DEMO_DELAY": "0", "GITHUB_STEP_SUMMARY": ""})
    assert result.returncode == 0
    assert sorted(p.name for p in project.iterdir()) == [".kiro", "demo-output.txt"]


def test_github_summary_markdown_cannot_be_injected():
    evil = TaskReport(".kiro/specs/x::1", "1", "a | b <img src=x> [link](http://e) `code`",
                      Outcome.HALTED, reason="line one\nline two | cell\x1b[31m", attempt_number=2)
    text = render_summary([evil], 2, specs=["x"], elapsed=75.0, halted=True,
                          stopped="halted by task 1: line one")
    assert text == (
        "\n## ⏹️ seqrun: halted (exit 2): x\n"
        "\nStopped: halted by task 1: line one\n"
        "\n| outcome | tasks |\n| --- | ---: |\n| halted | 1 |\n"
        "\n### Failed and halted tasks\n\n"
        "| task | title | outcome | attempts | reason | log |\n"
        "| --- | --- | --- | ---: | --- | --- |\n"
        "| .kiro/specs/x::1 | a \\| b &lt;img src=x&gt; \\[link\\](http://e) \\`code\\` | halted | 2 "
        "| line one line two \\| cell |  |\n"
        "\n**Totals:** 75.0s (0:01:15)\n"
    )


# -- the pieces of the live view --------------------------------------------------------------------


def test_printable_removes_escape_sequences_whole():
    assert printable("\x1b[1;31mred\x1b[0m") == "red"
    assert printable("a\x1b]0;PWNED\x07b") == "ab"
    assert printable("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b") == "alinkb"
    assert printable("tab\there\rbell\x07") == "tab herebell"
    assert printable("[red]markup[/red] ✓ 日本") == "[red]markup[/red] ✓ 日本"


def test_live_rows_for_a_running_task_and_a_wait(tmp_path):
    log = tmp_path / "1.1.log"
    log.write_bytes(b"an earlier run's last line\n")
    start = log.stat().st_size
    with log.open("ab") as f:
        f.write(b"compiling\r\n\x1b[32m50%\x1b[0m\r\x1b[32m90%\x1b[0m\r\n\n")
    status = LiveStatus(lambda: "sequential-feature")
    status.running = Running(".kiro/specs/f::1", "Add greeting", "codex", 2, started=100.0,
                             log_path=log, log_start=start, position="[3/7]")
    rows = [text for text, _ in status.rows(now=165.0)]
    assert rows[0].endswith(" [3/7] .kiro/specs/f::1 Add greeting")
    assert rows[1:] == ["  codex · attempt 2 · 1m05s", "  > 90%",
                        "  watch: tmux attach -t sequential-feature"]
    status.waiting = Waiting(deadline=200.0, reason="rate limited: 429", kind="rate-limit")
    assert [t for t, _ in status.rows(now=110.5)][-1] == "  rate limited: 429 - retry in 1m30s"
    status.running = None
    status.upcoming = (".kiro/specs/f::2", "Next one")
    status.waiting = Waiting(deadline=120.0, reason="delay between dispatches")
    rows = [t for t, _ in status.rows(now=115.2)]
    assert rows[0].endswith(" next task in 5s (delay between dispatches)")
    assert rows[1] == "  up next: .kiro/specs/f::2 Next one"


def test_last_output_line_reads_agent_json_streams(tmp_path):
    log = tmp_path / "a.log"
    assert last_output_line(log) == ""  # not started yet
    log.write_text(
        '{"type":"assistant","message":{"content":[{"type":"text","text":"Editing   README\\nnow"}]}}\n'
        '{"type":"user","message":{"content":[{"type":"tool_result","content":[]}]}}\n')
    assert last_output_line(log) == "[assistant] Editing README now"
    assert describe_json_line('{"type":"item.completed","item":{"command":"ls -la"}}') == (
        "item.completed", "ls -la")
    assert describe_json_line("not json") is None
