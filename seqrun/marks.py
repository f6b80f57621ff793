"""Declared per-task settings and ``-m EXPR``, as pytest's marks are.

A task declares a setting the way it declares ``_Verify: CMD_``: a detail
line ``_Key: value_`` or ``**Key**: value``, on the task itself or, failing
that, on its nearest parent task that has one. The keys read here:

``Timeout``  (``30m``, ``2s``, ``1h30m``, seconds; the parser of ``--max-runtime``)
    the time limit of each agent run of the task, instead of ``--timeout``;
``Backend``  (a backend name, as ``--backend`` takes)
    the backend that runs the task; its CLI is checked before the run's first agent;
``Model``  (any text)
    the model of each agent run, instead of ``--model``;
``Reruns``  (a whole number >= 0)
    how many times a failed attempt is run again, instead of ``--reruns``.

Any other key stays a plain detail. A value that cannot be used is a
:class:`~seqrun.config.UsageError` naming the file and line (exit 4) at
collection, before any agent starts.

The settings reach the attempts through hooks, never special cases in the
runner: ``seqrun_attempt_settings`` (timeout, model, reruns),
``seqrun_assign_backend`` (``tryfirst``: a declared backend wins over
``--assign-backend``), ``seqrun_preflight`` (the declared backends' CLIs).

``-m EXPR`` selects by marks with ``-k``'s grammar (``and``, ``or``, ``not``,
parentheses). A task's marks are its tags and its parents' (``[P]`` is ``P``,
``[US1]`` is ``US1``), ``optional``, and the names of the settings it has
(``timeout``, ``backend``, ``model``, ``reruns``); they match whole and
case-insensitively. ``--co`` notes each task's settings and where each comes
from; ``--markers`` lists the marks in use per spec, with counts, and exits.

This module is the plugin (options, hooks, :data:`SETTINGS`); a task's marks
are read by :mod:`seqrun.declared`, and ``-m`` compiled by
:mod:`seqrun.expression`, on first use: a listing of tasks that declare
nothing, without ``-m``, loads neither.
"""
from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Callable

import pluggy

from seqrun.config import Config, UsageError
from seqrun.guardrails import parse_duration
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.nodes import Task
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.declared import Marks
    from seqrun.expression import Expression
    from seqrun.main import Session
    from seqrun.runner import AttemptSettings


# -- the settings ----------------------------------------------------------------------------


def _duration(value: str, config: Config) -> object:
    return parse_duration(value)


def _whole_number(value: str, config: Config) -> object:
    if not re.fullmatch(r"\d+", value):
        raise ValueError(f"not a whole number >= 0: {value!r}")
    return int(value)


def _backend(value: str, config: Config) -> object:
    from seqrun.backends.registry import registry

    try:
        return registry(config).resolve(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _text(value: str, config: Config) -> object:
    if not value:
        raise ValueError("empty")
    return value


#: Declared setting name -> how its value is read (raises ValueError).
SETTINGS: dict[str, Callable[[str, Config], object]] = {
    "timeout": _duration,
    "backend": _backend,
    "model": _text,
    "reruns": _whole_number,
}


#: The names of :mod:`seqrun.declared` still importable from here.
_DECLARED = frozenset({"Declared", "Marks", "declared", "marks_of", "field_line", "markers_listing"})


# A task's marks are read only when asked (-m, --markers, a file that
# names a setting): a plain listing never builds their classes.
__getattr__ = moved_names(__name__, "seqrun.declared", _DECLARED)


# -- the plugin -----------------------------------------------------------------------------


class MarksPlugin:
    """Reads a task's marks once, and applies them. At collection it reads
    those of every task that may declare a setting (a bad value is an error
    before any agent starts); the others' are read when asked."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.marks: dict[Task, Marks] = {}
        self.expression: Expression | None = None
        if config.option.markexpr:  # the grammar is loaded for an expression only
            from seqrun import expression

            self.expression = expression.Expression(config.option.markexpr, option="-m")

    def of(self, task: Task) -> Marks:
        marks = self.marks.get(task)
        if marks is None:
            from seqrun.declared import marks_of

            marks = self.marks[task] = marks_of(task, self.config)
        return marks

    @hookimpl(tryfirst=True)  # a bad value is an error whatever the other filters leave
    def seqrun_collection_modifyitems(self, session: Session, config: Config, items: list[Task]) -> None:
        if self.expression is None:
            # Only the tasks of a file that names a setting somewhere can declare
            # one: the marks of the others are read when asked (one test per file).
            may_declare = {spec: spec.mentions(SETTINGS) for spec in session.specs}
            for item in items:
                if item.spec is None or may_declare.get(item.spec, True):
                    self.of(item)
            return
        from seqrun.declared import _matcher

        for item in items:
            self.of(item)
        expr = self.expression
        kept = [t for t in items if expr.evaluate(_matcher(self.of(t)))]
        chosen = set(kept)
        deselected = [t for t in items if t not in chosen]
        if deselected:
            config.hook.seqrun_deselected(items=deselected)
            items[:] = kept

    @hookimpl
    def seqrun_collect_item_note(self, item: Task, config: Config) -> str | None:
        if not item.is_leaf:
            return None
        settings = self.of(item).settings
        if not settings:
            return None
        return "[" + ", ".join(f"{d.name}={d.written} ({d.source(item)})" for d in settings) + "]"

    @hookimpl(tryfirst=True)
    def seqrun_report_collectionfinish(self, session: Session) -> bool | None:
        if not self.config.option.markers:
            return None
        from seqrun.declared import markers_listing

        for line in markers_listing(session, self.of):
            print(line)
        return True

    @hookimpl
    def seqrun_attempt_settings(self, item: Task, session: Session) -> AttemptSettings | None:
        marks = self.of(item)
        if not marks.settings:
            return None
        from seqrun.runner import AttemptSettings  # with the run's machinery: not for --co

        opt = session.config.option
        timeout, model, reruns = marks.get("timeout"), marks.get("model"), marks.get("reruns")
        return AttemptSettings(
            timeout=float(timeout) if isinstance(timeout, float) else opt.timeout,
            model=str(model) if model is not None else (opt.model or None),
            reruns=int(reruns) if isinstance(reruns, int) else getattr(opt, "reruns", 0),
        )

    @hookimpl(tryfirst=True)  # what the task's file says wins over a classifier's guess
    def seqrun_assign_backend(self, task: Task, session: Session) -> str | None:
        backend = self.of(task).get("backend")
        return str(backend) if backend is not None else None

    @hookimpl
    def seqrun_preflight(self, session: Session) -> None:
        from seqrun.backends.registry import check_backend

        for name in sorted({str(b) for t in session.items if (b := self.of(t).get("backend")) is not None}):
            check_backend(session.config, name)


markers_key = StashKey[MarksPlugin]()


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.getgroup("general")  # type: ignore[attr-defined]
    group.add_argument("-m", dest="markexpr", default="", metavar="EXPR",
                       help="only tasks whose marks match EXPR ('and', 'or', 'not', parentheses): "
                       "tags such as P or US1, optional, and declared settings (timeout, backend, "
                       "model, reruns)")
    marks = parser.getgroup("marks", order=90, common=False)  # type: ignore[attr-defined]
    marks.add_argument("--markers", action="store_true",
                       help="list the marks the tasks use (per spec, with counts) and run nothing")


@hookimpl
def seqrun_configure(config: Config) -> None:
    if config.option.markers:
        config.option.collectonly = True
    plugin = MarksPlugin(config)  # compiles -m: a bad expression is an error before anything runs
    config.stash[markers_key] = plugin
    config.pluginmanager.register(plugin, "marks-plugin")
