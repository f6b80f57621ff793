"""The cache between runs: ``--lf``, ``--ff``, ``--sw``, as pytest's cacheprovider and stepwise.

Kept in ``<specs root>/.seqrun/cache/`` (the specs root is the folder that
holds the spec folders, ``.kiro/specs``) next to a ``.gitignore`` of ``*``
and a ``CACHEDIR.TAG``; the files are written atomically when the session
finishes (not after ``--collect-only``), only when something changed. A
missing or damaged file reads as an empty cache.

Several runs (of several specs under one specs root) share the folder:
``lastfailed.json`` is written by :func:`seqrun.sharedjson.update_json`,
which re-reads it under a lock and applies only the entries this run added
or removed, so two runs that end together keep each other's failures.

``lastfailed.json``
    ``{"<key>": true, ...}`` for every task whose last run failed or halted.
    A task that passes is removed; a task skipped because it is already done
    is removed; any other skip (optional, dependency, not reached) and any
    task not selected this time leave their entry as it was.
``stepwise.json``
    ``{"last_failed": "<key>" | null}``, written by ``--sw`` runs only (one
    value per specs root: the ``--sw`` run that ends last sets it).

A key is the spec's name and the task's id (``my-feature::2.1``;
``docs/tasks-list.md::3`` for a lone tasks file): the spec's path relative to
the specs root, as in the state file, so the cache works from whichever
folder seqrun is started.

Options:

``--lf, --last-failed``
    Run only the tasks that failed last time. When none of the selected tasks
    did, ``--lfnf all`` (default) runs them all, ``--lfnf none`` runs none.
``--ff, --failed-first``
    Run the tasks that failed last time first, then the rest in file order.
``--sw, --stepwise``
    Stop at the first failing task; the next ``--sw`` run starts from it
    (the tasks before it are deselected). ``--sw-skip`` also turns ``--sw``
    on and lets the first failing task pass by, stopping at the next.
``--cache-clear``
    Empty the cache folders of the specs being run before reading them.
``--cache-show``
    Print what the cache holds for the given specs, and run nothing.

Selection happens in ``seqrun_collection_modifyitems`` with ``trylast``, so
it applies to what node ids and ``-k`` (:mod:`seqrun.select`) kept, in this
order: ``--lf``, ``--ff``, then ``--sw``. Removed tasks are reported through
``seqrun_deselected``.

The files are read and written by :mod:`seqrun.reports.cachefiles`, loaded
when one of those options asks, or a task's report comes: a listing without
them reads no cache file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.nodes import Spec, Task
from seqrun.outcome import Kind, Outcome

if TYPE_CHECKING:
    from seqrun.outcome import TaskReport
    from seqrun.main import Session
    from seqrun.reports.cachefiles import Cache

CACHE_DIR = Path(".seqrun") / "cache"
#: What ``--lf`` runs again. An interrupted task is not among them: it was
#: never judged, and runs again anyway; its earlier entry is left as it was.
FAILED_OUTCOMES = (Outcome.FAILED, Outcome.ERROR, Outcome.HALTED)


#: The names of :mod:`seqrun.reports.cachefiles` still importable from here.
_CACHEFILES = frozenset({"Cache", "LASTFAILED", "STEPWISE", "GITIGNORE", "CACHEDIR_TAG"})


__getattr__ = moved_names(__name__, "seqrun.reports.cachefiles", _CACHEFILES)


def specs_root(spec: Spec) -> Path:
    """The folder holding the spec folder: where ``.seqrun/`` lives."""
    return spec.folder.resolve().parent


def cache_dir(root: Path) -> Path:
    return root / CACHE_DIR


def spec_key(spec: Spec) -> str:
    """The spec's part of a cache key: its name, which is its folder (or lone
    tasks file) relative to the specs root (:func:`seqrun.kiro.spec_name`)."""
    return spec.name


def task_key(task: Task) -> str:
    assert task.spec is not None
    return f"{spec_key(task.spec)}::{task.id}"


class CachePlugin:
    """Applies ``--lf``/``--ff``/``--sw`` and records what failed."""

    def __init__(self, config: Config) -> None:
        self.config = config
        opt = config.option
        self.last_failed: bool = bool(opt.last_failed)
        self.failed_first: bool = bool(opt.failed_first)
        self.lfnf: str = opt.last_failed_no_failures
        self.stepwise_skip: bool = bool(opt.stepwise_skip)
        self.stepwise: bool = bool(opt.stepwise) or self.stepwise_skip
        self.session: Session | None = None
        self.caches: dict[Path, Cache] = {}
        self.by_spec: dict[Spec, Cache] = {}
        """The same caches by spec: a task's report finds its cache without
        resolving the spec's folder (a syscall per path component) again."""
        self.specs: dict[str, Spec] = {}
        self.status: list[str] = []

    def cache_for(self, spec: Spec) -> Cache:
        cache = self.by_spec.get(spec)
        if cache is not None:
            return cache
        root = specs_root(spec)
        cache = self.caches.get(root)
        if cache is None:
            from seqrun.reports.cachefiles import Cache

            cache = Cache.load(root)
            if self.config.option.cache_clear:
                cache.clear()
            self.caches[root] = cache
        self.by_spec[spec] = cache
        return cache

    def failed_before(self, task: Task) -> bool:
        return task.spec is not None and task_key(task) in self.cache_for(task.spec).lastfailed

    # -- selection ------------------------------------------------------------------

    @hookimpl
    def seqrun_sessionstart(self, session: Session) -> None:
        self.session = session

    @hookimpl(trylast=True)
    def seqrun_collection_modifyitems(self, session: Session, config: Config, items: list[Task]) -> None:
        # trylast: node ids and -k (seqrun.select) have already narrowed `items`.
        self.session = session
        for spec in session.specs:
            self.specs[spec.nodeid] = spec
            if self.last_failed or self.failed_first or self.stepwise or self.config.option.cache_clear:
                self.cache_for(spec)  # else read when a task's report comes: a listing reads nothing
        if self.last_failed or self.failed_first:
            self._last_failed(config, items)
        if self.stepwise:
            self._stepwise(config, items)

    def _last_failed(self, config: Config, items: list[Task]) -> None:
        failed = [item for item in items if self.failed_before(item)]
        known = sum(len(c.lastfailed) for c in self.caches.values())
        if not failed:
            if not known:
                what = "no previously failed tasks"
            else:
                what = f"{known} known failure{'s' if known != 1 else ''} not in the selected tasks"
            if self.last_failed and self.lfnf == "none":
                self.status.append(f"run-last-failure: {what}, deselecting all tasks (--lfnf none)")
                if items:
                    config.hook.seqrun_deselected(items=list(items))
                    items[:] = []
            else:
                self.status.append(f"run-last-failure: {what}, running all")
            return
        n = len(failed)
        noun = f"failure{'s' if n != 1 else ''}"
        if self.last_failed:
            others = [item for item in items if not self.failed_before(item)]
            self.status.append(f"run-last-failure: rerun previous {n} {noun}"
                               + (f" (deselected {len(others)} other tasks)" if others else ""))
            if others:
                config.hook.seqrun_deselected(items=others)
            items[:] = failed
        else:
            others = [item for item in items if not self.failed_before(item)]
            self.status.append(f"run-last-failure: rerun previous {n} {noun} first")
            items[:] = failed + others

    def _stepwise(self, config: Config, items: list[Task]) -> None:
        stored = {root: c.stepwise for root, c in self.caches.items() if c.stepwise}
        if not stored:
            self.status.append("stepwise: no previously failed task, not skipping")
            return
        for index, item in enumerate(items):
            if item.spec is not None and stored.get(specs_root(item.spec)) == task_key(item):
                if index:
                    config.hook.seqrun_deselected(items=items[:index])
                    del items[:index]
                self.status.append(f"stepwise: skipping {index} already passed task{'s' if index != 1 else ''}")
                return
        self.status.append("stepwise: previously failed task not found, not skipping")

    @hookimpl(trylast=True)
    def seqrun_collection_finish(self, session: Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or getattr(reporter, "verbosity", 0) < 0:
            return
        for line in self.status:
            reporter.line(line)

    # -- recording ------------------------------------------------------------------

    @hookimpl
    def seqrun_runtest_logreport(self, report: TaskReport) -> None:
        spec = self.specs.get(report.spec_nodeid)
        if spec is None:
            return
        cache = self.cache_for(spec)
        key = f"{spec_key(spec)}::{report.task_id}"
        failed = report.outcome in FAILED_OUTCOMES
        if failed:
            cache.record_failed(key)
        elif report.passed or report.kind is Kind.ALREADY_DONE:
            cache.forget_failed(key)
        if not self.stepwise:
            return
        if failed:
            if self.stepwise_skip:
                # --sw-skip: let this first failure pass, stop at the next one.
                self.stepwise_skip = False
                if cache.stepwise == key:
                    cache.stepwise = None
                return
            cache.stepwise = key
            if self.session is not None:
                self.session.shouldstop = (f"stepwise: task {report.task_id} failed; "
                                           "the next --sw run starts from it")
        elif report.passed and cache.stepwise == key:
            cache.stepwise = None

    @hookimpl
    def seqrun_sessionfinish(self, session: Session, exitstatus: int) -> None:
        if self.config.option.collectonly:
            return
        for cache in self.caches.values():
            cache.save(with_stepwise=self.stepwise)


# -- --cache-show ---------------------------------------------------------------------


def show_cache(config: Config) -> int:
    """Print the cache of every specs root the command line names."""
    import json

    from seqrun.main import find_task_files

    roots: list[Path] = []
    for arg in config.args or [str(p) for p in config.default_paths()]:
        path = Path(arg.partition("::")[0])
        if not path.is_absolute():
            path = config.invocation_dir / path
        for tasks_file in find_task_files(path):
            root = tasks_file.resolve().parent.parent
            if root not in roots:
                roots.append(root)
    for root in roots:
        folder = cache_dir(root)
        print(f"cachedir: {folder}")
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not files:
            print("  (empty)")
        for file in files:
            print(f"  {file.name} contains:")
            try:
                text = json.dumps(json.loads(file.read_text("utf-8")), indent=2)
            except (OSError, ValueError) as exc:
                text = f"(unreadable: {exc})"
            for line in text.splitlines():
                print(f"    {line}")
    return 0


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    # As in pytest, rerunning what failed is a general option; the rest is the cache's.
    general = parser.add_argument_group("general")
    general.add_argument("--lf", "--last-failed", dest="last_failed", action="store_true",
                         help="run only the tasks that failed (or halted) last time; see --lfnf")
    general.add_argument("--ff", "--failed-first", dest="failed_first", action="store_true",
                         help="run the tasks that failed last time first, then the rest")
    general.add_argument("--sw", "--stepwise", dest="stepwise", action="store_true",
                         help="stop at the first failing task; the next --sw run starts from it")
    group = parser.add_argument_group("cache (<specs root>/.seqrun/cache)")
    group.add_argument("--lfnf", "--last-failed-no-failures", dest="last_failed_no_failures",
                       choices=("all", "none"), default="all",
                       help="with --lf and no known failure among the selected tasks: run all "
                       "(default) or none")
    group.add_argument("--sw-skip", "--stepwise-skip", dest="stepwise_skip", action="store_true",
                       help="like --sw, but let the first failing task pass and stop at the next")
    group.add_argument("--cache-clear", dest="cache_clear", action="store_true",
                       help="empty the cache of the specs being run before reading it")
    group.add_argument("--cache-show", dest="cache_show", action="store_true",
                       help="show the cache of the given specs and run nothing")


@hookimpl
def seqrun_configure(config: Config) -> None:
    lfnf = config.getoption("last_failed_no_failures")
    if lfnf not in ("all", "none"):  # a config-file value skips argparse's choices
        raise UsageError(f"--lfnf must be 'all' or 'none', got {lfnf!r}")
    config.pluginmanager.register(CachePlugin(config), "cacheprovider-plugin")


@hookimpl(tryfirst=True)
def seqrun_cmdline_main(config: Config) -> int | None:
    if not config.getoption("cache_show"):
        return None
    try:
        return show_cache(config)
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
