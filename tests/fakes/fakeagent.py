"""Fake agent CLIs for end-to-end tests: each replays a real transcript.

``tests/fakes/bin/`` holds one small executable per CLI (``codex``,
``claude``, ``gemini``, ``opencode``, ``kiro-cli``, ``codeagent-wrapper``);
put that folder first on PATH. Each one reads its prompt the way the real CLI
would (argv or stdin, see :data:`PROMPT_READERS`), then prints a transcript
from ``tests/data/agent-transcripts/<cli>/`` in that CLI's real format and
exits with the recorded exit status.

Environment:

``SEQRUN_FAKE_SCENARIO``
    The case to replay: ``done`` (default), ``halt``, ``failed``,
    ``rate_limited``, ``echo_not_done`` (alias ``not_done``), or any other case
    name of that CLI in ``cases.json``. ``sequence:<file>`` takes the first
    line of ``<file>`` and removes it, so successive calls replay successive
    scenarios ("rate_limited" then "done").
``SEQRUN_FAKE_SCRIPT``
    A JSON file mapping task ids to scenarios (a name, ``sequence:<file>``,
    or a list consumed one per call). The task id is the one after ``Task ID:``
    in the prompt, else the mapping key found first in the prompt; the key
    ``*`` is the fallback. Takes precedence over ``SEQRUN_FAKE_SCENARIO``.
``SEQRUN_FAKE_SLEEP``
    Seconds to wait before the last line of output (a scenario written
    ``done@sleep=30`` waits so in that call only).
``SEQRUN_FAKE_RESET_IN``
    For rate limits: seconds until the reset, written in the CLI's own format
    (claude ``resetsAt`` and "resets 4:11am (UTC)"; codex "try again at 3:26
    AM", minute resolution, rounded up; gemini "Please retry in Ns."; opencode
    ``retry-after``). kiro reports no reset time. Without it the recorded
    times stay, e.g. codex's "3:26 AM" local time, which may be a day away.
``SEQRUN_FAKE_LOG``
    A file to append one JSON line per call to: cli, argv, cwd, whether stdin
    was a tty, the prompt, the task id and the scenario.

The echoed prompt (gemini's ``role=user`` message, tool outputs that ``cat``
the task file) is replaced with the real prompt, so echoes hold whatever
markers the real prompt holds.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "data" / "agent-transcripts"

#: Fake executable name -> transcript folder.
FOLDERS = {
    "codex": "codex",
    "claude": "claude",
    "gemini": "gemini",
    "opencode": "opencode",
    "kiro-cli": "kiro",
    "codeagent-wrapper": "codeagent-wrapper",
}
ALIASES = {"not_done": "echo_not_done"}


# -- reading the prompt as the real CLI does ---------------------------------------


def _stdin() -> str:
    if os.isatty(0):
        return ""
    try:
        return sys.stdin.read()
    except (OSError, ValueError):
        return ""


def _positionals(args: list[str], takes_value: set[str]) -> list[str]:
    found: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--":
            found += args[i + 1 :]
            break
        if arg.startswith("-") and arg != "-":
            skip = arg in takes_value
            continue
        found.append(arg)
    return found


def _codex(args: list[str]) -> str:
    pos = _positionals(args, {"-C", "--cd", "-m", "--model", "-c", "--config", "-s", "--sandbox", "-o", "--output-last-message", "-p", "--profile", "-i", "--image"})
    pos = [p for p in pos if p != "exec" and p != "e"]
    if not pos or pos[-1] == "-":
        return _stdin()
    return pos[-1]


def _claude(args: list[str]) -> str:
    pos = _positionals(
        args,
        {"--output-format", "--input-format", "--model", "--resume", "-r", "--append-system-prompt", "--system-prompt", "--max-turns",
         "--allowedTools", "--disallowedTools", "--permission-mode", "--session-id", "--settings", "--add-dir", "--mcp-config", "--fallback-model"},
    )
    return pos[-1] if pos else _stdin()


def _gemini(args: list[str]) -> str:
    prompt = ""
    for i, arg in enumerate(args):
        if arg in ("-p", "--prompt") and i + 1 < len(args):
            prompt = args[i + 1]
        elif arg.startswith("--prompt="):
            prompt = arg.split("=", 1)[1]
    piped = _stdin()  # gemini adds a piped stdin to the -p text
    return f"{prompt}\n\n{piped}" if piped else prompt


def _opencode(args: list[str]) -> str:
    pos = _positionals(args, {"--format", "--dir", "-m", "--model", "-s", "--session", "--agent", "-f", "--file", "--title", "--port", "--attach", "--variant"})
    message = " ".join(pos[1:] if pos[:1] == ["run"] else pos)
    piped = _stdin()  # opencode reads a piped stdin into the message
    return f"{message}\n\n{piped}" if piped else message


def _kiro(args: list[str]) -> str:
    pos = _positionals(args, {"--model", "--agent", "--trust-tools", "--resume-id"})
    pos = pos[1:] if pos[:1] == ["chat"] else pos
    return " ".join(pos)


def _wrapper(args: list[str]) -> str:
    pos = _positionals(args, {"--backend", "--model", "--agent", "--prompt-file", "--reasoning-effort", "--config", "--tmux-session", "--window-for", "--state-file"})
    if pos[:1] == ["resume"]:
        pos = pos[2:]
    if not pos or pos[0] == "-":
        return _stdin()
    return pos[0]


PROMPT_READERS: dict[str, Callable[[list[str]], str]] = {
    "codex": _codex,
    "claude": _claude,
    "gemini": _gemini,
    "opencode": _opencode,
    "kiro-cli": _kiro,
    "codeagent-wrapper": _wrapper,
}


# -- choosing the scenario -------------------------------------------------------


def task_id_in(prompt: str, candidates: list[str]) -> str | None:
    m = re.search(r"Task[ _-]?ID\s*[:=]\s*`?([^\s`]+)", prompt, re.IGNORECASE)
    if m:
        return m.group(1).rstrip(".,;:")
    best: tuple[int, str] | None = None
    for key in candidates:
        hit = re.search(rf"(?<![\w.]){re.escape(key)}(?![\w]|\.\d)", prompt)
        if hit and (best is None or hit.start() < best[0]):
            best = (hit.start(), key)
    return best[1] if best else None


def _pop_line(path: str) -> str:
    file = Path(path)
    lines = [line for line in file.read_text().splitlines() if line.strip()] if file.exists() else []
    if not lines:
        return "done"
    file.write_text("".join(line + "\n" for line in lines[1:]))
    return lines[0].strip()


def _resolve(value: Any, counter_key: str, script: Path | None) -> str:
    if isinstance(value, list):
        # A list is consumed one entry per call; the count lives next to the script.
        assert script is not None
        state_file = script.with_name(script.name + ".calls")
        counts = json.loads(state_file.read_text()) if state_file.exists() else {}
        n = counts.get(counter_key, 0)
        counts[counter_key] = n + 1
        state_file.write_text(json.dumps(counts))
        value = value[min(n, len(value) - 1)] if value else "done"
    value = str(value or "done")
    if value.startswith("sequence:"):
        return _pop_line(value.split(":", 1)[1])
    return value


def choose_scenario(prompt: str) -> tuple[str, str | None]:
    script_path = os.environ.get("SEQRUN_FAKE_SCRIPT")
    if script_path:
        script = Path(script_path)
        mapping = json.loads(script.read_text())
        task = task_id_in(prompt, [k for k in mapping if k != "*"])
        if task is not None and task in mapping:
            return _resolve(mapping[task], task, script), task
        if "*" in mapping:
            return _resolve(mapping["*"], "*", script), task
    else:
        task = task_id_in(prompt, [])
    return _resolve(os.environ.get("SEQRUN_FAKE_SCENARIO", "done"), "", None), task


def find_case(cli: str, scenario: str) -> dict[str, Any]:
    folder = FOLDERS[cli]
    name = ALIASES.get(scenario, scenario)
    cases = json.loads((TRANSCRIPTS / "cases.json").read_text())["cases"]
    local = TRANSCRIPTS / folder / "cases.json"
    if local.exists():
        cases += json.loads(local.read_text())["cases"]
    for case in cases:
        if case["cli"] in (folder, cli) and case["case"] == name:
            return case
    have = sorted(c["case"] for c in cases if c["cli"] in (folder, cli))
    raise LookupError(f"fake {cli}: no scenario {scenario!r} (have: {', '.join(have)})")


# -- rewriting the transcript ----------------------------------------------------


def _ordinal(day: int) -> str:
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def text_rewriter(task_text: str, prompt: str, reset_in: float | None) -> Callable[[str], str]:
    """Rewrites one piece of transcript text: the prompt echo, the reset times."""
    reset = time.time() + reset_in if reset_in is not None else None

    def rewrite(text: str) -> str:
        if prompt and task_text and task_text in text:
            text = text.replace(task_text, prompt)
        if reset is None:
            return text
        utc = datetime.fromtimestamp(math.ceil(reset / 60) * 60, timezone.utc)
        same_day = utc.date() == datetime.now(timezone.utc).date()
        clock = f"{utc.hour % 12 or 12}:{utc.minute:02d}{'am' if utc.hour < 12 else 'pm'}"
        claude_when = clock if same_day else f"{utc:%b} {utc.day}, {clock}"
        text = re.sub(r"resets [^()]*?\((UTC)\)", f"resets {claude_when} (UTC)", text)
        local = datetime.fromtimestamp(math.ceil(reset / 60) * 60).astimezone()
        local_clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
        if local.date() != datetime.now().astimezone().date():
            local_clock = f"{local:%b} {local.day}{_ordinal(local.day)}, {local.year} {local_clock}"
        text = re.sub(r"try again at [^.]*?[AP]M\.", f"try again at {local_clock}.", text)
        text = re.sub(r"Please retry in [\dhms.]+?s\.", f"Please retry in {reset_in:g}s.", text)
        return text

    return rewrite


def rewrite_json(value: Any, rewrite: Callable[[str], str], reset_in: float | None) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if reset_in is not None and key == "resetsAt" and value.get("status") == "rejected":
                item = math.ceil(time.time() + reset_in)
            elif reset_in is not None and key == "retry-after":
                item = f"{reset_in:g}"
            elif reset_in is not None and key == "retry-after-ms":
                item = f"{reset_in * 1000:g}"
            else:
                item = rewrite_json(item, rewrite, reset_in)
            out[key] = item
        return out
    if isinstance(value, list):
        return [rewrite_json(v, rewrite, reset_in) for v in value]
    if isinstance(value, str):
        return rewrite(value)
    return value


def render(path: str | None, rewrite: Callable[[str], str], reset_in: float | None) -> list[str]:
    if not path:
        return []
    text = (TRANSCRIPTS / path).read_text(encoding="utf-8")
    if not path.endswith(".jsonl"):
        return rewrite(text).splitlines()
    lines = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            lines.append(rewrite(line))
            continue
        lines.append(json.dumps(rewrite_json(event, rewrite, reset_in), ensure_ascii=False, separators=(",", ":")))
    return lines


# -- main ---------------------------------------------------------------------------


def main(cli: str) -> int:
    args = sys.argv[1:]
    stdin_tty = os.isatty(0)
    prompt = PROMPT_READERS[cli](args)
    try:
        scenario, task = choose_scenario(prompt)
        # "done@sleep=30": this call only waits before its last line (a run to cut off).
        scenario, _, call_sleep = scenario.partition("@sleep=")
        case = find_case(cli, scenario)
    except (LookupError, OSError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    log = os.environ.get("SEQRUN_FAKE_LOG")
    if log:
        entry = {"cli": cli, "argv": args, "cwd": os.getcwd(), "stdin_tty": stdin_tty, "prompt": prompt, "task_id": task, "scenario": scenario, "time": time.time()}
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")

    reset_env = os.environ.get("SEQRUN_FAKE_RESET_IN")
    reset_in = float(reset_env) if reset_env else None
    task_text = (TRANSCRIPTS / "TASK.md").read_text(encoding="utf-8").strip()
    rewrite = text_rewriter(task_text, prompt.strip(), reset_in)
    stdout = render(case.get("stdout"), rewrite, reset_in)
    stderr = render(case.get("stderr"), rewrite, reset_in)
    # kiro prints its reply first and the credits trailer last; the others
    # print their startup noise and errors on stderr before the final events.
    streams = [(sys.stdout, stdout), (sys.stderr, stderr)] if cli == "kiro-cli" else [(sys.stderr, stderr), (sys.stdout, stdout)]
    output = [(stream, line) for stream, lines in streams for line in lines]
    sleep = float(call_sleep or os.environ.get("SEQRUN_FAKE_SLEEP", "0") or 0)
    for i, (stream, line) in enumerate(output):
        if i == len(output) - 1 and sleep > 0:
            time.sleep(sleep)
        stream.write(line + "\n")
        stream.flush()
    if not output and sleep > 0:
        time.sleep(sleep)
    return int(case["exit_code"])
