"""A task's marks and declared settings, as :mod:`seqrun.marks` reads them.

What a task may declare, and how each value is read, is told (and kept, in
:data:`seqrun.marks.SETTINGS`) in :mod:`seqrun.marks`; this module reads a
task's lines into :class:`Marks`. It is imported when a task's marks are
first asked for (``-m``, ``--markers``, ``--co`` notes, a file that names a
setting): a plain listing never loads it.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from seqrun.config import Config, UsageError
from seqrun.marks import SETTINGS
from seqrun.nodes import Task

if TYPE_CHECKING:
    from seqrun.main import Session


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
