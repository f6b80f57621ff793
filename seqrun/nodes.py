"""The collection tree: a :class:`Spec` holds :class:`Task` nodes.

A task with children is a collector (a parent task, or a numbered heading that
groups tasks); a task without children is an item, the unit the runner
dispatches in ``--dispatch leaf`` mode.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator

from seqrun.stash import Stash

if TYPE_CHECKING:
    from seqrun.metadata import TaskMetadata
    from seqrun.outcome import Attempt, PreviousAttempt


def __getattr__(name: str) -> Any:
    # TaskMetadata lives in seqrun.metadata (a listing never builds it);
    # ``from seqrun.nodes import TaskMetadata`` still finds it, on first use.
    if name == "TaskMetadata":
        from seqrun.metadata import TaskMetadata

        return TaskMetadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TaskState(str, enum.Enum):
    """What tasks.md says about a task before seqrun touches it."""

    PENDING = "pending"
    IN_PROGRESS = "in progress"
    DONE = "done"


class TaskKind(str, enum.Enum):
    """Which kind of markdown line the task was read from."""

    CHECKBOX = "checkbox"  # - [ ] 1.2 Title
    HEADING = "heading"  # ### Task 1.2: Title    (files without checkboxes)
    NUMBERED = "numbered"  # 1.2. Title            (the seed's plain numbered list)
    GROUP = "group"  # ## 1. Setup            (a heading that parents 1.1, 1.2)


@dataclass(frozen=True)
class Step:
    """One checkbox line of a heading task: its 1-based line and mark."""

    line: int
    mark: str
    text: str

    @property
    def done(self) -> bool:
        return self.mark in ("x", "X")


@dataclass(eq=False)
class Task:
    """One task of a spec, as collected from its tasks file.

    seqrun.kiro makes the commonest tasks (``- [ ] 1.2 Title``) without
    ``__init__``: the fields it does not set are read from the class, so a
    new field needs a plain default (``default_factory`` fields are set there).
    """

    id: str
    """Unique within the spec: the written id, ``~2``, ``~3``… appended to a
    repeated id, or a generated ``h`` + hash id for a task written without one."""
    title: str
    line: int
    """1-based line number of the task's own line in the tasks file."""
    kind: TaskKind = TaskKind.CHECKBOX
    state: TaskState = TaskState.PENDING
    mark: str | None = None
    """The character between the brackets (``" "``, ``x``, ``-``…), None when
    the task has no checkbox."""
    written_id: str | None = None
    """The id exactly as the file writes it (without trailing ``.``/``:``)."""
    aliases: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    """The checkbox lines under a heading task (``### Task 3: …`` then
    ``- [ ] step``): parts of the task, not tasks (see seqrun.kiro)."""
    """Other ids the file gives the task (``- **ID**: T-5`` under a heading task)."""
    optional: bool = False
    checklist: bool = False
    """An id-less checkbox under a checklist heading ("Validation", "Acceptance
    Criteria", "Checkpoints") after numbered tasks: a check for a person, kept
    out of runs like an optional task (see seqrun.kiro)."""
    tags: tuple[str, ...] = ()
    """Bracket or paren markers after the id: ``P``, ``US1``…"""
    section: str = ""
    """Text of the nearest heading above the task."""
    parent: Task | None = None
    children: list[Task] = field(default_factory=list)
    spec: Spec | None = field(default=None, repr=False)
    read_metadata: Callable[[], TaskMetadata] | None = field(default=None, repr=False)
    """Reads the body on first use: listing or selecting 5,000 tasks needs only
    their titles, so the collector leaves the rest until a task runs."""
    body: list[str] | None = field(default=None, repr=False)
    """The task's detail lines as the file writes them (None: not known);
    :meth:`may_have_field` looks at them without reading the metadata."""
    _metadata: TaskMetadata | None = field(default=None, repr=False)

    @property
    def metadata(self) -> TaskMetadata:
        if self._metadata is None:
            if self.read_metadata is not None:
                self._metadata = self.read_metadata()
            else:
                from seqrun.metadata import TaskMetadata  # see seqrun.metadata: rarely needed

                self._metadata = TaskMetadata()
            self.read_metadata = None
        return self._metadata

    @property
    def details(self) -> str:
        return self.metadata.details

    @property
    def requirements(self) -> tuple[str, ...]:
        return self.metadata.requirements

    @property
    def depends(self) -> tuple[str, ...]:
        return self.metadata.depends

    @property
    def fields(self) -> dict[str, str]:
        return self.metadata.fields

    def may_have_field(self, keys: Collection[str]) -> bool:
        """Whether :attr:`fields` may have a key that casefolds to one of
        ``keys`` (casefolded words): False is certain, and told from the text
        without reading the metadata, since a key is written on a line."""
        if self._metadata is not None:
            return any(key.strip().casefold() in keys for key in self._metadata.fields)
        if self.spec is not None and not self.spec.mentions(keys):
            return False
        if self.body is None:
            return True
        text = _folded("\n".join(self.body))
        return any(key in text for key in keys)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def nodeid(self) -> str:
        prefix = self.spec.nodeid if self.spec is not None else ""
        return f"{prefix}::{self.id}"

    @property
    def done(self) -> bool:
        return self.state is TaskState.DONE

    @property
    def root(self) -> Task:
        """The top-level task this task belongs to (itself when it has no parent)."""
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def ancestors(self) -> Iterator[Task]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def iter_tree(self) -> Iterator[Task]:
        """This task and its descendants, in file order."""
        return _preorder([self])

    def keywords(self) -> set[str]:
        """Words ``-k`` matches besides titles: tags, state, optional, kind."""
        words = {t.lower() for t in self.tags}
        words.add(self.state.value.replace(" ", "_"))
        if self.optional:
            words.add("optional")
        if self.checklist:
            words.add("checklist")
        return words

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.title[:40]!r}>"


def _preorder(nodes: list[Task]) -> Iterator[Task]:
    """``nodes`` and their descendants, each before its children (a stack,
    not nested generators: a tree of 5,000 tasks is walked often)."""
    stack = nodes[::-1]
    while stack:
        node = stack.pop()
        yield node
        if node.children:
            stack.extend(reversed(node.children))


def _folded(text: str) -> str:
    """``text.casefold()``; ``lower()`` is the same for ASCII, and ten times faster."""
    return text.lower() if text.isascii() else text.casefold()


@dataclass(eq=False)
class Warning_:
    """A collection problem that is not fatal: reported with file:line."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(eq=False)
class Spec:
    """A spec folder (or a lone tasks file) and the tasks read from it."""

    name: str
    tasks_file: Path
    nodeid: str
    """How the command line names the spec, e.g. ``.kiro/specs/my-feature``."""
    roots: list[Task] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)
    newline: str = "\n"
    text: str | None = field(default=None, repr=False)
    """The tasks file's text as collected (None: not known): see :meth:`mentions`."""
    _mentioned: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    @property
    def folder(self) -> Path:
        return self.tasks_file.parent

    def mentions(self, words: Collection[str]) -> bool:
        """Whether the file's text holds one of ``words`` (casefolded), in
        any case: one scan of the file per word answers for all its tasks."""
        if self.text is None:
            return True
        mentioned = self._mentioned
        if any(word not in mentioned for word in words):
            folded = _folded(self.text)
            for word in words:
                mentioned[word] = word in folded
        return any(mentioned[word] for word in words)

    def iter_tasks(self) -> Iterator[Task]:
        """Every node, parents before their children, in file order."""
        return _preorder(self.roots)

    def leaves(self) -> list[Task]:
        """The items: tasks without subtasks, in file order (the run order)."""
        found = [t for t in self.iter_tasks() if not t.children and t.kind is not TaskKind.GROUP]
        return sorted(found, key=lambda t: t.line)

    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.iter_tasks()}


@dataclass(eq=False)
class Unit:
    """What one agent run covers: ``task`` itself, or its ``subtasks``
    (``--dispatch unit``), and what happened to it in this session."""

    task: Task
    subtasks: list[Task] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    """This session's attempts, in order (appended as each one ends)."""
    past_attempts: int = 0
    """Attempts made in earlier runs (from the state file): numbering continues."""
    previous: PreviousAttempt | None = None
    """The last attempt of an earlier run, when it did not pass (from the
    state file): the first attempt of this run learns from it."""
    stash: Stash = field(default_factory=Stash)
    """Per-unit storage for plugins (retry counters, baselines)."""
    sections: dict[Task, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def members(self) -> list[Task]:
        return self.subtasks or [self.task]

    @property
    def last_attempt(self) -> PreviousAttempt | None:
        """The attempt the next one follows: this run's last, else an earlier run's."""
        from seqrun.outcome import Kind, PreviousAttempt

        for attempt in reversed(self.attempts):
            if attempt.kind is not Kind.SESSION_GONE:  # it taught nothing: the one before did
                return PreviousAttempt.from_attempt(attempt)
        return self.previous

    def add_report_section(self, task: Task, key: str, content: str) -> None:
        """Add a titled block of text to ``task``'s report (as pytest's ``item.add_report_section``)."""
        self.sections.setdefault(task, []).append((key, content))
