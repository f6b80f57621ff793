"""The committer behind :mod:`seqrun.gitcommit`: git run as argv, one commit
per passed task, the failed task's changes stashed.

:mod:`seqrun.gitcommit`'s docstring states what it guarantees; this module
is imported when ``--git-commit`` or ``--git-branch`` registers the plugin
(or a report asks git a question): ``seqrun --co`` never loads it. Its names
stay importable from :mod:`seqrun.gitcommit`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from seqrun.config import Config, UsageError, spec_paths
from seqrun.gitcommit import GIT_TIMEOUT, RUN_FILES
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task, Unit
from seqrun.outcome import Outcome
from seqrun.text import LazyPattern

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport
    import subprocess

    from seqrun.main import Session


_CONTROL = LazyPattern(r"[\x00-\x1f\x7f-\x9f]")


class GitError(Exception):
    """A git command failed; the message is git's own, on one line."""


def git(args: Sequence[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``cwd`` (argv, never a shell; no pager, no prompt)."""
    import subprocess  # only with --git-commit/--git-branch: startup time

    env_args = ["git", "-c", "core.quotepath=off", *args]
    try:
        result = subprocess.run(env_args, cwd=cwd, text=True, capture_output=True, errors="replace",
                                stdin=subprocess.DEVNULL, timeout=GIT_TIMEOUT,
                                env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} failed: {exc}") from None
    if check and result.returncode != 0:
        message = " ".join((result.stderr or result.stdout).split()) or f"exit {result.returncode}"
        raise GitError(f"git {args[0]} failed: {message}")
    return result


def commit_subject(spec: str, task: Task) -> str:
    """``seqrun: <spec> <id> <title>`` on one line, without control characters."""
    title = " ".join(_CONTROL.sub(" ", task.title).split())
    subject = f"seqrun: {spec} {task.id} {title}".strip()
    return subject if len(subject) <= 200 else subject[:199] + "…"


class GitCommitter:
    """Commits the work tree after each passed task (``--git-commit``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.toplevel: Path | None = None
        self.commits: list[str] = []
        self.stashed: list[str] = []
        self.branch_note: str | None = None

    # -- paths --------------------------------------------------------------------------------

    def _rel(self, path: Path) -> str | None:
        """``path`` relative to the work tree's top, or None when outside it."""
        assert self.toplevel is not None
        try:
            return path.resolve().relative_to(self.toplevel).as_posix() or "."
        except ValueError:
            return None

    def _excluded(self, roots: Sequence[Path]) -> list[str]:
        """Pathspecs of the files seqrun writes for itself."""
        paths = [root / name for root in roots for name in RUN_FILES]
        opt = self.config.option
        detach_log = getattr(opt, "detach_log", None) if getattr(opt, "detach", False) else None
        for report in (getattr(opt, "junit_xml", None), getattr(opt, "report_log", None),
                       getattr(opt, "html", None), detach_log):
            if report:
                paths.append(self.config.invocation_dir / report)
        rels = (self._rel(p) for p in paths)
        return [f":(exclude){rel}" for rel in dict.fromkeys(r for r in rels if r and r != ".")]

    def _spec_folders(self) -> list[Path]:
        """The folders the PATH arguments name (a spec, or a folder of specs)."""
        folders = []
        args = self.config.args
        for path in spec_paths(args, []) if args else self.config.default_paths():
            path = path if path.is_absolute() else self.config.invocation_dir / path
            folders.append(path.parent if path.is_file() else path)
        return folders

    def _spec_roots(self) -> list[Path]:
        """Where the state files and ``.seqrun/`` may live for those PATHs: the
        folder itself (a specs root) or its parent (a spec folder's)."""
        return [root for folder in self._spec_folders() for root in (folder, folder.parent)]

    # -- session start: checks and the branch ---------------------------------------------------

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        from seqrun.paths import workdir

        cwd = workdir(self.config)
        opt = self.config.option
        flag = "--git-commit" if opt.git_commit else "--git-branch"
        inside = git(["rev-parse", "--is-inside-work-tree"], cwd, check=False)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            raise UsageError(f"{flag}: {cwd} is not inside a git work tree "
                             "(run `git init` there, or leave out --git-commit/--git-branch)")
        top = git(["rev-parse", "--show-toplevel"], cwd).stdout.strip()
        self.toplevel = Path(top).resolve()
        if opt.git_commit:
            self._refuse_unrelated_changes()
        if opt.git_branch:
            self._switch_branch(opt.git_branch)

    def _refuse_unrelated_changes(self) -> None:
        assert self.toplevel is not None
        rels = (self._rel(folder) for folder in self._spec_folders())
        allowed = [f":(exclude){rel}" for rel in dict.fromkeys(r for r in rels if r and r != ".")]
        status = git(["status", "--porcelain", "--untracked-files=all", "--", ".",
                      *self._excluded(self._spec_roots()), *allowed], self.toplevel)
        changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise UsageError(f"--git-commit: the work tree has uncommitted changes outside the specs "
                             f"({shown}); commit or stash them first, or they would go into a task's commit")

    def _switch_branch(self, name: str) -> None:
        assert self.toplevel is not None
        if git(["check-ref-format", "--branch", name], self.toplevel, check=False).returncode != 0:
            raise UsageError(f"--git-branch: {name!r} is not a valid branch name")
        current = git(["symbolic-ref", "--quiet", "--short", "HEAD"], self.toplevel, check=False).stdout.strip()
        if current == name:
            self.branch_note = f"on branch {name}"
            return
        exists = git(["rev-parse", "--verify", "--quiet", f"refs/heads/{name}"], self.toplevel,
                     check=False).returncode == 0
        try:
            if exists:
                git(["checkout", "--quiet", name], self.toplevel)
                self.branch_note = f"switched to branch {name}"
            else:
                git(["checkout", "--quiet", "-b", name], self.toplevel)
                self.branch_note = f"created branch {name} from {current or 'HEAD'}"
        except GitError as exc:
            raise UsageError(f"--git-branch {name}: {exc}") from None

    # -- after each task --------------------------------------------------------------------------

    @hookimpl(trylast=True)
    def seqrun_runtest_teardown(self, item: Task, unit: Unit, session: Session, report: TaskReport) -> None:
        # trylast: after seqrun.writeback ticked tasks.md, so the tick is in the commit.
        if not self.config.option.git_commit or report.outcome is Outcome.SKIPPED or not report.dispatched:
            return
        if unit.subtasks:
            if item is not unit.members[-1]:
                return  # one commit for the whole unit, after its last subtask's tick
            task, subtasks = unit.task, unit.members
        else:
            task, subtasks = item, []
        if report.outcome is not Outcome.PASSED:
            message = self.put_aside(task)
            if message:
                unit.add_report_section(item, "git stash", message)
            return
        try:
            sha = self.commit(task, subtasks, report)
        except GitError:
            session.shouldstop = (f"git commit failed after task {task.id}; its changes are left "
                                  "uncommitted in the work tree")
            raise  # the task's report becomes an error: "git commit failed: <git's message>"
        if sha:
            unit.add_report_section(item, "git commit", sha)

    def commit(self, task: Task, subtasks: Sequence[Task], report: TaskReport) -> str | None:
        """Commit every change; the new commit's short hash, or None if nothing changed."""
        assert self.toplevel is not None and task.spec is not None
        root = task.spec.folder.parent
        git(["add", "--all", "--", ".", *self._excluded([root, *self._spec_roots()])], self.toplevel)
        if git(["diff", "--cached", "--quiet"], self.toplevel, check=False).returncode == 0:
            return None  # the task changed nothing
        subject = commit_subject(task.spec.name, task)
        body = [f"Task: {task.nodeid}"]
        if subtasks:
            body.append("Subtasks: " + ", ".join(f"{t.id} {' '.join(t.title.split())}" for t in subtasks))
        if report.backend:
            body.append(f"Backend: {report.backend}")
        git(["commit", "--quiet", "-m", subject, "-m", "\n".join(body)], self.toplevel)
        sha = git(["rev-parse", "--short", "HEAD"], self.toplevel).stdout.strip()
        self.commits.append(f"{sha} {subject}")
        return sha

    def put_aside(self, task: Task) -> str | None:
        """Stash what a task that did not pass left in the work tree; the stash's message."""
        assert self.toplevel is not None and task.spec is not None
        excluded = self._excluded([task.spec.folder.parent, *self._spec_roots()])
        try:
            status = git(["status", "--porcelain", "--untracked-files=all", "--", ".", *excluded],
                         self.toplevel)
            if not status.stdout.strip():
                return None
            message = "seqrun: failed " + commit_subject(task.spec.name, task).removeprefix("seqrun: ")
            git(["stash", "push", "--include-untracked", "--quiet", "-m", message, "--", ".", *excluded],
                self.toplevel)
        except GitError as exc:
            print(f"WARNING --git-commit: could not stash the changes of task {task.id}: {exc}",
                  file=sys.stderr)
            return None
        self.stashed.append(message)
        return message

    @hookimpl
    def seqrun_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: Config) -> None:
        if not (self.branch_note or self.commits or self.stashed):
            return
        if config.option.git_commit:
            n = len(self.commits)
            terminalreporter.line(f"git: {n} commit{'s' if n != 1 else ''}"
                                  + (f" ({self.branch_note})" if self.branch_note else ""))
        elif self.branch_note:
            terminalreporter.line(f"git: {self.branch_note}")
        for line in self.commits:
            terminalreporter.line(f"  {line}")
        if self.stashed:
            terminalreporter.line(f"git: changes of {len(self.stashed)} task(s) that did not pass "
                                  "were stashed (git stash list):")
            for line in self.stashed:
                terminalreporter.line(f"  {line}")
