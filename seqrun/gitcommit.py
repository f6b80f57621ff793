"""``--git-commit`` and ``--git-branch``: one commit per passed task.

After a task passes (verification included), every change in the git work
tree is committed, the tick seqrun put in tasks.md with it, under the message
``seqrun: <spec> <task id> <title>``. Nothing is committed for a task that
did not pass, nor when the task changed nothing. With ``--dispatch unit`` one
agent run covers several subtasks: they get one commit, naming the parent
task and listing the subtasks.

Never committed: seqrun's run files (``SEQUENTIAL_STATE.json``,
``SEQUENTIAL_PROGRESS.md``, ``.seqrun/`` beside the specs, and the
``--junitxml``, ``--report-log``, ``--html`` and ``--detach-log`` files): they are rewritten after the
commit, so they would always be one task behind.

Checked before anything runs (a usage error, exit 4, otherwise): git is
installed, the working directory is inside a git work tree, and, for
``--git-commit``, the tree has no changes outside the spec folders being run
(those, such as a tasks.md just written, go into the first commit) — other
changes would end up in a task's commit, so commit or stash them first.

The changes of a task that ran and did not pass (failed, halted,
interrupted) are put aside with ``git stash`` (message ``seqrun: failed
<spec> <id> <title>``; ``git stash list`` shows them), so the work tree is
always the last passed task's commit: the next task starts from there and its
commit holds only its own work.

``--git-branch NAME`` switches to branch NAME before collection, creating it
from the current HEAD when it does not exist. If a commit fails (a pre-commit
hook rejects it), the task is reported as an error (``teardown-error``) with
git's message, its changes are left in the work tree, and the run stops.

This module is the plugin's light part (its options and registration); the
committer is :mod:`seqrun.gitcommitter`, imported when one of the options
registers it: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse
import shutil

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names


GIT_TIMEOUT = 300.0
RUN_FILES = ("SEQUENTIAL_STATE.json", "SEQUENTIAL_PROGRESS.md", ".seqrun")


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("git")
    group.add_argument("--git-commit", action="store_true",
                       help="commit all changes after each passed task (message: seqrun: <spec> "
                       "<task id> <title>); refuses to start with unrelated uncommitted changes")
    group.add_argument("--git-branch", default=None, metavar="NAME",
                       help="run on branch NAME, created from HEAD when missing")


@hookimpl
def seqrun_configure(config: Config) -> None:
    opt = config.option
    if opt.collectonly or not (opt.git_commit or opt.git_branch):
        return
    if shutil.which("git") is None:
        raise UsageError("--git-commit/--git-branch: git not found on PATH")
    from seqrun.gitcommitter import GitCommitter

    config.pluginmanager.register(GitCommitter(config), "gitcommitter")


#: The committer's names, importable from here as before (see the module docstring).
_GITCOMMITTER = frozenset({"GitError", "git", "commit_subject", "GitCommitter"})


__getattr__ = moved_names(__name__, "seqrun.gitcommitter", _GITCOMMITTER)
