"""Agents that misbehave still get a definite verdict, bounded memory, and no
process left behind (seqrun run end to end with the `command` backend)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import gone, seqrun_env

DONE = "<promise>TASK_DONE</promise>"
HALT = "<promise>HALT</promise>"

AGENTS = {
    # name: (agent source, expected outcome, words expected in the reason)
    "exit0-no-marker": ("print('all good, finished')", "failed", "no TASK_DONE marker"),
    "both-markers": (f"print('{DONE} but also {HALT}')", "halted", "halt"),
    "marker-then-error-exit": (f"print('{DONE}'); raise SystemExit(3)", "failed", "exit status 3"),
    # One 10 MB line: lines are cut at 4 MiB to bound memory, so the marker at
    # its very end is not seen. A definite (if strict) verdict, in bounded memory.
    "no-newline-ever": (
        "import sys\nfor _ in range(2000): sys.stdout.write('x' * 5000)\n"
        f"sys.stdout.write(' {DONE}'); sys.stdout.flush()", "failed", "no TASK_DONE marker"),
    "closes-stdout-keeps-running": (
        f"import os, sys, time\nprint('{DONE}', flush=True)\nos.close(1); os.close(2)\ntime.sleep(2)",
        "passed", ""),
    "child-outlives-it": (
        # nohup-style: the child ignores the SIGHUP the kernel sends when the
        # agent, its session leader, exits; only seqrun's tree cleanup ends it.
        "import os, subprocess, sys, time\n"
        "ready = sys.argv[2] + '.ready'\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import signal, sys, time; "
        "signal.signal(signal.SIGHUP, signal.SIG_IGN); open(sys.argv[1], \"w\").close(); "
        "time.sleep(600)', ready])\n"
        "while not os.path.exists(ready): time.sleep(0.01)\n"
        "open(sys.argv[2], 'w').write(str(p.pid))\n"
        f"print('{DONE}')", "passed", ""),
    "ignores-sigterm-and-hangs": (
        "import os, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[2], 'w').write(str(os.getpid()))\nprint('working', flush=True)\ntime.sleep(600)",
        "failed", "timeout"),
}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _configure(project: Path, source: str) -> Path:
    agent = project / "agent.py"
    agent.write_text(source + "\n")
    pidfile = project / "agent.pid"
    (project / "seqrun.toml").write_text(
        'backend = "command"\nno_tmux = true\ndelay = 0.0\nreruns = 0\nkill_grace = 1.0\n'
        f'[backends.command]\nargv = [{json.dumps(sys.executable)}, {json.dumps(str(agent))}, '
        f'"{{prompt_file}}", {json.dumps(str(pidfile))}]\n')
    return pidfile


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_misbehaving_agent_gets_a_definite_verdict(name, make_spec, run_seqrun, project):
    source, outcome, words = AGENTS[name]
    make_spec("- [ ] 1. Task\n")
    pidfile = _configure(project, source)
    start = time.monotonic()
    result = run_seqrun("--timeout", "3")
    took = time.monotonic() - start
    state = json.loads((project / ".kiro" / "specs" / "SEQUENTIAL_STATE.json").read_text())
    task = state["specs"]["feature"]["tasks"]["1"]
    assert task["status"] == outcome, (task, result.stdout[-1000:])
    assert words.lower() in (task["last_error"] or "").lower()
    assert result.returncode == {"passed": 0, "failed": 1, "halted": 2}[outcome]
    assert took < 30
    if pidfile.exists():
        assert not _alive(int(pidfile.read_text()))


def test_huge_output_keeps_memory_bounded(make_spec, project):
    """500 MB of agent output: the log gets every byte, seqrun stays small."""
    make_spec("- [ ] 1. Chatty\n")
    _configure(project, textwrap.dedent(f"""
        import sys
        line = b"y" * 1023 + b"\\n"
        block = line * 1024
        for _ in range(500):
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.write(b"{DONE}\\n")
    """))
    probe = project / "probe.py"
    probe.write_text(textwrap.dedent("""
        import resource, subprocess, sys
        proc = subprocess.run([sys.executable, "-m", "seqrun"], stdout=subprocess.DEVNULL)
        # ru_maxrss of the children: seqrun itself (the agent is its child, reaped by it).
        print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """))
    out = subprocess.run([sys.executable, str(probe)], cwd=project, env=seqrun_env(),
                         capture_output=True, text=True, timeout=300)
    code, maxrss_kb = out.stdout.split()
    assert code == "0", out.stderr
    assert int(maxrss_kb) < 120 * 1024, f"peak RSS {int(maxrss_kb) // 1024} MB"
    log = next((project / ".kiro" / "specs" / ".seqrun" / "logs").rglob("*.log"))
    assert log.stat().st_size == 500 * 1024 * 1024 + len(DONE) + 1



#: A daemon the way a hostile agent makes one: fork, ``setsid``, fork again
#: (its parent exits at once), exec with an empty environment (so it loses
#: ``SEQRUN_TREE_TOKEN``) and its output on /dev/null, ignoring TERM and HUP.
#: Its pid goes to argv[2] once it runs and ignores those signals.
ESCAPING_DAEMON = textwrap.dedent(f"""
    import os, sys, time
    pidfile = sys.argv[2]
    DAEMON = (
        "import os, signal, sys, time\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\\n"
        "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\\n"
        "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\\n"
        "time.sleep(600)\\n"
    )
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execve(sys.executable, [sys.executable, "-c", DAEMON, pidfile], {{}})
        os._exit(0)
    while not os.path.exists(pidfile):
        time.sleep(0.01)
    print("{DONE}")
""")



@pytest.mark.parametrize("mode", ["pty", "tmux"])
def test_a_daemon_that_double_forks_with_a_clean_environment_is_ended(mode, make_spec, run_seqrun,
                                                                     project, request):
    """setsid + double fork + empty environment + TERM/HUP ignored: the
    orphan reparents to seqrun (a child subreaper) and is ended with the tree."""
    make_spec("- [ ] 1. Start a daemon\n")
    pidfile = _configure(project, ESCAPING_DAEMON)
    env = None
    if mode == "tmux":
        env = request.getfixturevalue("tmux_env")
        config = project / "seqrun.toml"
        config.write_text(config.read_text().replace("no_tmux = true\n", ""))
    result = run_seqrun("--kill-grace", "0.5", env=env)
    daemon = int(pidfile.read_text())
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        if mode == "tmux":
            windows = subprocess.run(["tmux", "list-windows", "-a", "-F", "#{window_name}"],
                                     env=seqrun_env(env), capture_output=True, text=True).stdout
            assert windows.split() == ["task-1"]
        assert gone(daemon), f"daemon {daemon} outlived seqrun"
    finally:
        if not gone(daemon):
            os.kill(daemon, signal.SIGKILL)
