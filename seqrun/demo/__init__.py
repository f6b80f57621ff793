"""``seqrun --demo``: run a bundled three-task spec with a scripted agent.

Needs no agent CLI: the ``demo`` backend's agent is a small Python script
that prints Claude's stream-json format and finishes each task with the done
marker. A newcomer sees collection, a tmux window per task (when tmux is
installed), the state and progress files, tasks.md ticked, a JUnit report and an HTML report (``report.html``).
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl

PROJECT = Path(__file__).parent / "project"


def copy_project(target: Path) -> Path:
    """Copy the demo project to ``target`` (``kiro/`` becomes ``.kiro/``)."""
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty; pass --demo-dir with a new folder")
    shutil.copytree(PROJECT, target, dirs_exist_ok=True)
    (target / "kiro").rename(target / ".kiro")
    return target


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("help")
    group.add_argument("--demo", action="store_true",
                       help="copy a small demo project to --demo-dir and run it with a scripted agent")
    group.add_argument("--demo-dir", default="seqrun-demo", metavar="DIR",
                       help="where --demo puts its project (default ./seqrun-demo)")


@hookimpl(tryfirst=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    if not config.option.demo:
        return None
    from seqrun.main import main

    target = copy_project((config.invocation_dir / config.option.demo_dir).resolve())
    print(f"demo project: {target}")
    os.chdir(target)
    argv = [".kiro/specs/greeting"]  # backend and delay come from the project's seqrun.toml
    # Reports only when their plugins are there (-p no:junitxml disables one).
    if hasattr(config.option, "junit_xml"):
        argv += ["--junitxml", "report.xml"]
    if hasattr(config.option, "report_log"):
        argv += ["--report-log", "report-log.jsonl"]
    if hasattr(config.option, "html"):
        argv += ["--html", "report.html"]
    if config.option.no_tmux:
        argv.append("--no-tmux")
    code = main(argv)
    if code > 2:
        return code
    print()
    print("what the run left behind:")
    for name in (".kiro/specs/greeting/tasks.md", ".kiro/specs/SEQUENTIAL_STATE.json",
                 ".kiro/specs/SEQUENTIAL_PROGRESS.md", "report.xml", "report.html", "report-log.jsonl",
                 "demo-output.txt", ".kiro/specs/.seqrun/logs/greeting/"):
        if (target / name).exists():
            print(f"  {target / name}")
    print(f"run `seqrun` again in {target} and nothing is redone; `seqrun --co` shows the tree")
    return code
