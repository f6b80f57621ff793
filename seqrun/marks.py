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
"""
from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import pluggy

from seqrun.config import Config, UsageError
from seqrun.guardrails import parse_duration
from seqrun.hookspec import hookimpl
from seqrun.nodes import Task
from seqrun.select import Expression
from seqrun.stash import StashKey

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class Declared:
    """One setting as a task's line declares it."""

    name: str
    """``timeout``, ``backend``, ``model`` or ``reruns``."""
    value: object
    """Parsed: seconds, a backend name, a model name, a count."""
    written: str
    owner: Task
    """The task whose line declares it: the task or its nearest parent with one."""

    def source(self, task: Task) -> str:
        return "own line" if self.owner is task else f"from {self.owner.id}"


@dataclass(frozen=True)
class Marks:
    """A task's marks: its tags, ``optional`` and its settings."""

    tags: frozenset[str]
    settings: tuple[Declared, ...]

    def get(self, name: str) -> object | None:
        return next((d.value for d in self.settings if d.name == name), None)

    def names(self) -> frozenset[str]:
        return self.tags | {d.name for d in self.settings}


def _written_value(value: str) -> str:
    text = value.strip()
    if len(text) >= 2 and text.startswith("`") and text.endswith("`"):
        text = text.strip("`").strip()
    return text


def field_line(task: Task, key: str) -> int:
    """The 1-based line of ``task``'s ``key`` detail line (its own line if not found)."""
    if task.spec is None:
        return task.line
    try:
        lines = task.spec.tasks_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return task.line
    wanted = re.compile(rf"(?:_|\*\*)\s*{re.escape(key)}\s*(?:\*\*)?\s*:", re.IGNORECASE)
    for number in range(task.line, len(lines)):
        if wanted.search(lines[number]):
            return number + 1
    return task.line


def _shown_path(path: Path, config: Config) -> str:
    """The path as the user would type it from where seqrun runs."""
    try:
        return os.path.relpath(path, config.invocation_dir)
    except ValueError:  # another drive
        return str(path)


def declared(task: Task, config: Config) -> tuple[Declared, ...]:
    """The settings of ``task``: each from the task or its nearest parent that has it."""
    found: dict[str, Declared] = {}
    for node in (task, *task.ancestors()):
        if not node.may_have_field(SETTINGS):
            continue  # no line names a setting: its metadata need not be read
        for key, raw in node.fields.items():
            name = key.strip().casefold()
            if name not in SETTINGS or name in found:
                continue
            written = _written_value(raw)
            try:
                value = SETTINGS[name](written, config)
            except ValueError as exc:
                where = _shown_path(node.spec.tasks_file if node.spec is not None else Path("tasks.md"), config)
                raise UsageError(f"{where}:{field_line(node, key)}: task {node.id}: {key}: {exc}") from None
            found[name] = Declared(name, value, written, node)
    return tuple(found[name] for name in SETTINGS if name in found)


def marks_of(task: Task, config: Config) -> Marks:
    tags = {t for node in (task, *task.ancestors()) for t in node.tags}
    if task.optional:
        tags.add("optional")
    return Marks(frozenset(tags), declared(task, config))


# -- the plugin -----------------------------------------------------------------------------


class MarksPlugin:
    """Reads a task's marks once, and applies them. At collection it reads
    those of every task that may declare a setting (a bad value is an error
    before any agent starts); the others' are read when asked."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.marks: dict[Task, Marks] = {}
        self.expression = Expression(config.option.markexpr, option="-m") if config.option.markexpr else None

    def of(self, task: Task) -> Marks:
        marks = self.marks.get(task)
        if marks is None:
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


def _matcher(marks: Marks) -> Callable[[str], bool]:
    names = {name.casefold() for name in marks.names()}
    return lambda ident: ident.casefold() in names


def markers_listing(session: Session, marks_of_task: Callable[[Task], Marks]) -> Iterable[str]:
    """``--markers``: per spec, each mark of its selected tasks and how many carry it."""
    for spec in session.specs:
        items = [t for t in session.items if t.spec is spec]
        if not items:
            continue
        counts: Counter[str] = Counter()
        values: dict[str, Counter[str]] = {}
        for task in items:
            marks = marks_of_task(task)
            counts.update(marks.tags)
            for d in marks.settings:
                counts[d.name] += 1
                values.setdefault(d.name, Counter())[d.written] += 1
        yield f"<Spec {spec.name} ({spec.nodeid})>: {len(items)} tasks"
        if not counts:
            yield "  no marks"
        for name in sorted(counts):
            shown = ""
            if name in values:
                shown = " (" + ", ".join(f"{v}: {n}" for v, n in sorted(values[name].items())) + ")"
            yield f"  {name}: {counts[name]} task{'s' if counts[name] != 1 else ''}{shown}"


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
