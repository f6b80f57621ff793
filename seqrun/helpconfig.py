"""``--version``, ``--init``, ``--debug`` and the plugin options."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pluggy

import seqrun
from seqrun.atomicfile import atomic_write
from seqrun.config import Config, HelpAction, UsageError, build_parser
from seqrun.hookspec import hookimpl

#: The starter seqrun.toml: (key, example, comment). Each key is written with
#: its option's default (through tomli-w, so the file is always valid TOML),
#: which therefore can never disagree with ``--help``; an option without a
#: default (``None``) is written commented out, with the example.
STARTER_OPTIONS: list[tuple[str, Any, str]] = [
    ("backend", "claude", "agent CLI: codex, claude, gemini, opencode, kiro, codeagent-wrapper, command, demo"),
    ("model", "", "model passed to the CLI (empty: the CLI's default)"),
    ("dispatch", "leaf", "leaf: one agent run per leaf task; unit: one per parent task (the seed's way)"),
    ("delay", 5.0, "seconds to wait between two dispatches"),
    ("max_iterations", 50, "most agent dispatches in one run (rate-limited retries not counted)"),
    ("timeout", 7200.0, "seconds one agent run may take before its process tree is ended"),
    ("idle_timeout", 0.0, "end an agent that prints nothing for this many seconds (0: never)"),
    ("reruns", 1, "how many times a failed task is run again"),
    ("rate_limit_margin", 30.0, "seconds added to the reset time a CLI reports"),
    ("max_rate_limit_wait", 21600.0, "halt instead of waiting longer than this for a rate limit"),
    ("include_optional", False, "also run optional tasks (- [ ]*)"),
    ("verify", "pytest -q", "command that must exit 0 after a task the agent called done"),
    ("max_runtime", "8h", "stop starting tasks after this long (unset: no limit)"),
    ("max_cost", 20.0, "stop once the backends report this many US dollars spent (unset: no limit)"),
]


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.getgroup("help", order=90, common=True)  # type: ignore[attr-defined]
    group.add_argument("-h", "--help", action=HelpAction,
                       help="show the common options and exit (--help-all: every option)")
    group.add_argument("--help-all", action=HelpAction, full=True, help="show every option and exit")
    group.add_argument("--version", "-V", action="store_true", help="print the version and exit")
    group.add_argument("--init", action="store_true",
                       help="write a commented starter seqrun.toml in the project root (the folder "
                       "holding .kiro/specs, else the current folder) and exit")
    group = parser.getgroup("plugins and debugging", order=95)  # type: ignore[attr-defined]
    group.add_argument("--debug", action="store_true",
                       help="show tracebacks of internal errors")
    group.add_argument("-p", dest="plugins", action="append", default=[], metavar="NAME",
                       help="load plugin module NAME early; -p no:NAME disables a plugin")
    group.add_argument("--noconftest", action="store_true", help="do not load any conftest.py")


@hookimpl(tryfirst=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    if config.option.version:
        print(f"seqrun {seqrun.__version__}")
        return 0
    if config.option.init:
        # Beside .kiro, where it is found from every sub-folder of the project.
        defaults = build_parser(config.pluginmanager)
        path = write_starter_config(config.rootpath or config.invocation_dir, defaults)
        print(f"wrote {path}")
        return 0
    return None


def starter_config_text(defaults: argparse.ArgumentParser) -> str:
    import tomli_w

    lines = [
        "# seqrun configuration: every key is also a command-line option",
        "# (--max-iterations on the command line is max_iterations here).",
        "# The command line wins over this file.",
        "",
    ]
    for key, example, comment in STARTER_OPTIONS:
        value = defaults.get_default(key)
        lines.append(f"# {comment}")
        if value is None:
            lines.append("# " + tomli_w.dumps({key: example}).rstrip("\n"))
        else:
            lines.append(tomli_w.dumps({key: value}).rstrip("\n"))
        lines.append("")
    lines += [
        "# Settings of one backend, e.g. the argv of the generic `command` backend:",
        "# [backends.command]",
        '# argv = ["my-agent", "--prompt-file", "{prompt_file}", "--cwd", "{workdir}"]',
        "",
        "# --assign-backend: which backend runs each owner the classifier picks",
        "# [owners]",
        '# codex = "codex"',
        '# gemini = "gemini"',
        '# codex-review = "codex"',
        "",
    ]
    return "\n".join(lines)


def write_starter_config(folder: Path, defaults: argparse.ArgumentParser) -> Path:
    path = folder / "seqrun.toml"
    if path.exists():
        raise UsageError(f"{path} already exists; not overwriting it")
    atomic_write(path, starter_config_text(defaults).encode("utf-8"))
    return path

