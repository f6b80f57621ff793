"""Read a Kiro-style ``tasks.md`` (and its spec-kit and numbered cousins) into a tree.

Real task lists are messy, so the reader is forgiving: it never raises on
content it does not understand, it records a warning with ``file:line`` instead.
A file is read in one of three *modes*:

* **checkbox** — every ``- [ ] …`` line is a task (Kiro, spec-kit, cc-sdd);
* **heading** — tasks are headings such as ``### Task 1.1: Title ✅`` or
  ``### T001 [P] Title`` (older spec-kit, spec-workflow), chosen when such
  headings outnumber checkbox lines, or when no checkbox line has an id of its
  own (ralphex plans: ``### Task 3: Title`` then ``- [ ] step``). A heading
  task's checkbox lines are its *steps*, not tasks: they stay in its details
  (so the prompt shows them), the task is done when every step is ticked, and
  a ``- **ID**: T-5`` field is another id to select it by;
* **numbered** — a plain numbered list (``1. Task``, ``   2.1. Subtask``), the
  format of the seed script, when there is neither.

In checkbox mode, ``3. [ ] Title`` takes its list number as its id. An
id-less checkbox under a checklist heading ("Validation", "Acceptance
Criteria", "Checkpoints", "… Checklist") that follows numbered tasks is a
*checklist item*: a check for a person, listed as such and kept out of runs
like an optional task. "(Optional)" marks a task optional only at the start
or end of its title; inside it, it is a word.

Nesting comes from the ids (``1.2`` belongs to the nearest ``1`` above it), not
from indentation, because real files put subtasks at every indent, including
none. Indentation matters only for tasks written without an id.

What is not a task list is refused when it is collected (:func:`not_a_task_list`,
a usage error before any agent starts), rather than turned into guessed tasks:

* a spec's other documents, ``requirements.md`` and ``design.md``, by name:
  whatever numbered lists they hold are not work to dispatch;
* any file whose tasks all come from the numbered-list guess and mostly read
  as requirements — EARS acceptance criteria (``WHEN … THE SYSTEM SHALL …``)
  or items under ``Requirement``/``Acceptance Criteria``/``User Story``
  headings. Checkbox and heading task lists are never refused: their syntax
  says they are tasks.

:func:`collect_text` itself reads any text, as it always has.
"""
from __future__ import annotations

import gc
import os
import re
from itertools import islice
from pathlib import Path
from types import MethodType
from typing import TYPE_CHECKING

from seqrun.hookspec import hookimpl
from seqrun.nodes import Spec, Step, Task, TaskKind, TaskState, Warning_
from seqrun.text import LazyPattern

if TYPE_CHECKING:
    from collections.abc import Sequence

    from seqrun.config import Config
    from seqrun.metadata import TaskMetadata

TASK_FILE_NAMES = ("tasks.md",)
#: The other documents of a Kiro spec, beside tasks.md: never a task list.
SPEC_DOCUMENTS = {"requirements.md": "requirements", "design.md": "design"}
# Only the patterns every listing of a common file uses (_CHECKBOX,
# _COMMON_CHECKBOX, _HEADING, _BULLET) are compiled at import; the others
# serve rarer lines (ids of headings and of uncommon task lines, fences, tags,
# numbered lists, metadata) and compile on first use (text.LazyPattern).
#: A numbered item that states a requirement: EARS ("… SHALL …") or under a
#: requirements heading (Kiro's "### Requirement 1" / "#### Acceptance Criteria").
_REQUIREMENT_TEXT = LazyPattern(r"\bSHALL\b")
_REQUIREMENT_SECTION = LazyPattern(
    r"\b(?:requirements?|acceptance criteria|user stor(?:y|ies))\b|要件|受け入れ基準|需求|验收标准|요구사항",
    re.IGNORECASE)

_STATES = {
    " ": TaskState.PENDING,
    "x": TaskState.DONE,
    "X": TaskState.DONE,
    "-": TaskState.IN_PROGRESS,
    "~": TaskState.IN_PROGRESS,
    "/": TaskState.IN_PROGRESS,
}

_FENCE = LazyPattern(r"^[ \t]*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
#: A task's id at the start of its text: ``1.2``, ``T001:``, ``**Task 3**``.
_ID_PATTERN = (
    r"(?P<bold>\*\*)?"
    r"(?P<word>(?:Task|TASK|task|任务|任務|タスク|작업)[ \t]*)?"
    r"(?P<id>(?:T\d+[a-z]?|\d+[a-z]?)(?:\.\d+[a-z]?)*)"
    r"(?:[:：]|\.?(?=[ \t]|\*\*|$))"
)
_ID = LazyPattern("^" + _ID_PATTERN)
#: What an id can start with (``\d`` is any decimal digit: isdigit() is more):
#: a heading that starts with none of it is not matched against _ID (see _heading_id).
_ID_STARTS = frozenset("*Tt任タ작")
# The text is the rest of the line, its id read on the way (as _ID reads it:
# only blanks can follow the text, and they end an id as its end does); the
# reader strips the trailing blanks (a lazy ``.*?[ \t]*$`` would try every
# end: three times slower per task line).
_CHECKBOX = re.compile(
    r"(?P<indent>[ \t]*)"
    r"(?:#{1,6}[ \t]+)?"
    r"(?:(?:[-*+]|(?P<number>\d{1,4})[.)])[ \t]+)?"
    r"\[(?P<mark>[ xX~/-])\]"
    r"(?P<opt>\\?\*)?"
    r"[ \t]*(?P<text>(?:" + _ID_PATTERN + r")?(?P<rest>.*))"
)
#: The commonest checkbox line, ``  - [ ] 1.2 Title``, in a pattern half of
#: _CHECKBOX's cost: where it matches a line without ``✅`` (scan tests that:
#: in the pattern, it would double its compile time), _CHECKBOX reads the
#: same mark, id and rest (less rest's first space), its indent is the
#: spaces before ``- [`` (no bold, tag, tab or marker: the pass's short way).
#: Only the groups the pass uses are captured: each is a string per task.
_COMMON_CHECKBOX = re.compile(r" *- \[(?P<mark>[ xX~/-])\] (?P<id>\d+(?:\.\d+)*)\.? (?P<rest>[^[(*]*)$")
# Something that looks like a checkbox but is not one we know: worth a warning.
_LOOSE_CHECKBOX = LazyPattern(r"^[ \t]*(?:[-*+][ \t]+)?\[(?P<inner>[^\]]{0,3})\][ \t]+\S")
_NUMBERED = LazyPattern(
    r"^(?P<indent>[ \t]*)(?P<id>\d{1,4}(?:\.\d{1,4})+\.?|\d{1,4}[.)])[ \t]+(?P<text>\S.*?)[ \t]*$"
)
_TAG = LazyPattern(r"^[ \t]*(?:\[(?P<tag>P|US\d+(?:[+,][ \t]*US\d+)*|Story)\]|\((?P<paren>P)\))")
# "(Optional)" is a marker only at either end of a title; inside one it is a
# word ("Add field (Optional) to model" is a required task about a field).
_OPTIONAL_IN_TITLE = LazyPattern(
    r"^[ \t]*[\[(]optional[\])][ \t]*|[ \t]*[\[(]optional[\])](?=[ \t*✅]*$)", re.IGNORECASE)
_DEPENDS_IN_TITLE = LazyPattern(r"\(depends on ([^)]*)\)", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*+]|\d{1,4}[.)])[ \t]+")
_UNDERSCORE_KEY = LazyPattern(r"^_(?P<key>[^_:：]{1,40}?)[ \t]*[:：][ \t]*(?P<rest>.*)$")
_BOLD_KEY = LazyPattern(r"^\*\*(?P<key>[^*:：]{1,80}?)(?:\*\*[ \t]*[:：]|[ \t]*[:：][ \t]*\*\*)[ \t]*(?P<rest>.*)$")
_PLAIN_KEY = LazyPattern(
    r"^(?P<key>requirements?|depends on|dependencies|dependency)[ \t]*[:：][ \t]*(?P<rest>.*)$",
    re.IGNORECASE,
)
_ID_ONLY = LazyPattern(r"^(?:T\d+[a-z]?|\d+[a-z]?)(?:\.\d+[a-z]?)*$")
#: A heading task's ``- **ID**: T-5`` field: another id to select it by.
_ALIAS = LazyPattern(r"^[A-Za-z]{1,4}-?\d+[a-z]?(?:\.\d+[a-z]?)*$")
_LIST_SPLIT = LazyPattern(r"[,，、;；]|\band\b")
#: Headings of checklists that follow a file's numbered tasks: a person's
#: checks ("## Validation Checklist", "### Acceptance Criteria"), not work.
_CHECKLIST_SECTION = LazyPattern(
    r"^[^A-Za-z]*(?:(?:final|manual)[ \t]+)?(?:validation|verification|acceptance criteria|checkpoints?"
    r"|definition of done|success criteria)[ \t]*(?:[(:：].*)?$|\bcheck ?list\b", re.IGNORECASE)
_DONE_WORDS = LazyPattern(r"^(?:completed?|done|finished|完成|已完成|完了|✅.*)", re.IGNORECASE)

REQUIREMENT_KEYS = frozenset(
    k.casefold()
    for k in (
        "Requirements", "Requirement", "要件", "需求", "요구사항", "Requisitos", "Requisito",
        "Требования", "Exigences", "Yêu cầu", "Anforderungen", "Requisiti",
    )
)
DEPENDENCY_KEYS = frozenset(("depends", "depends on", "dependencies", "dependency"))


def _indent_width(indent: str) -> int:
    return len(indent.expandtabs(4)) if "\t" in indent else len(indent)


#: First characters of a list bullet (``-``, ``*``, ``+``, ``1.``, ``2)``).
_BULLET_START = frozenset("-*+0123456789")


class _Draft:
    """A task while its details are still being read (one per task: slots);
    then the task's ``read_metadata``, which reads them on first use."""

    __slots__ = ("task", "indent", "detail_lines", "title_open", "title_depends", "steps")

    def __init__(self, task: Task, indent: int, title_depends: tuple[str, ...] = ()) -> None:
        self.task = task
        self.indent = indent
        self.detail_lines: list[str] = []
        self.title_open = True  # continuation lines may still extend the title
        self.title_depends = title_depends  # "(depends on T003)" in the title
        self.steps: list[Step] = []  # checkbox lines under a heading task

    def __call__(self) -> TaskMetadata:
        return _read_metadata(self.detail_lines, self.title_depends)


#: A bullet's start: a bullet for _BULLET when the line goes on (ends in no blank).
_DASHES = frozenset(("- ", "* ", "+ "))


def _only_spaces(text: str) -> bool:
    """Whether the space and the line end are ``text``'s only blanks (no tab,
    no other blank of str.isspace), and no line ends in a space."""
    return (text.isascii() and " \n" not in text and text[-1:] != " "
            and not any(blank in text for blank in "\t\x0b\x0c\r\x1c\x1d\x1e\x1f"))


class _Reader:
    """One pass over the lines of a file; builds the tree and the warnings.

    Its cost is per line and per task (a generated spec of 5,000 tasks has
    20,000 lines), so the common lines take a short way: a detail line of the
    task being read through :meth:`plain`, a ``- [ ] 1.2 Title`` line inside
    :meth:`read` (found by a pattern of its own, its Task made without the
    dataclass ``__init__``, attached and its last task's draft closed
    inline). In a file whose only blanks are spaces, the lines between such
    a task line and the next special line are taken whole when plain()
    would take each of them as a detail (a few C-speed tests, then a slice
    of the lines; the task gets a draft only if a later line adds to it).
    In a file without code fences, only lines with a ``[`` or starting with
    ``#`` are looked at one by one for the mode (:meth:`scan`),
    and the cyclic collector waits while the tree is built (collect_text).
    Everything else goes through the methods below, which say
    what each kind of line means. The metadata is not read here: a task's
    ``read_metadata`` reads its lines when first asked (nodes.Task.metadata).
    """

    def __init__(self, path: Path, lines: list[str], text: str) -> None:
        self.path = path
        self.lines = lines
        self.text = text  # the lines joined by "\n"
        self.warnings: list[Warning_] = []
        self.order: list[Task] = []
        self.kept: list[Task] = []  # every node of the final tree (set by finish)
        self.latest: dict[str, Task] = {}  # written id -> latest node with it
        self.groups = 0  # how many numbered headings may group tasks
        self.indent_stack: list[tuple[int, Task]] = []
        self.draft: _Draft | None = None
        self.section = ""

    # -- mode ------------------------------------------------------------------

    def scan(self) -> tuple[list[tuple[int, re.Match[str] | None, re.Match[str] | None]], set[int],
                            list[re.Match[str]], list[tuple[re.Match[str] | None, re.Match[str]]]]:
        """The lines the pass must look at one by one, by 0-based index, in
        order: those inside code fences (fence lines included), and the
        checkbox and heading lines outside them, as ``(index, checkbox match,
        heading match)``; then the checkbox matches, and the heading matches
        with their line's checkbox match. Both the mode and the pass use them;
        every other line is a plain one (cheap substring tests first: most
        lines of a tasks file are neither)."""
        special: list[tuple[int, re.Match[str] | None, re.Match[str] | None]] = []
        fenced: set[int] = set()
        boxes: list[re.Match[str]] = []
        heads: list[tuple[re.Match[str] | None, re.Match[str]]] = []
        lines = self.lines
        joined = self.text  # a fence marker cannot span lines: one test for the file
        # A one-character test is a memchr; a three-character search costs a
        # tenth of the pass on a file with neither character (most of them).
        if ("`" in joined and "```" in joined) or ("~" in joined and "~~~" in joined):
            fence: str | None = None
            for index, text in enumerate(lines):
                m = _FENCE.match(text) if ("```" in text or "~~~" in text) else None
                if m:
                    marker = m.group(1)
                    if fence is None:
                        fence = marker
                        fenced.add(index)
                        continue
                    if marker == fence:
                        fence = None
                        fenced.add(index)
                        continue
                if fence is not None:
                    fenced.add(index)
        box_match, head_match, common = _CHECKBOX.match, _HEADING.match, _COMMON_CHECKBOX.match
        # Without fences, only a line with a "[" or starting with "#" can be
        # special: one comprehension finds the first, the few headings are
        # found in the text (heading_lines), the loop sees only those.
        if fenced:
            candidates: Sequence[int] = range(len(lines))
        else:
            found = [index for index, text in enumerate(lines) if "[" in text]
            headings = self.heading_lines()
            if headings:
                found.extend(headings)
                found.sort()
            candidates = found
        for index in candidates:
            text = lines[index]
            if fenced and index in fenced:
                special.append((index, None, None))
                continue
            if "[" in text:
                m = common(text)
                if m is not None and "✅" not in text:  # "  - [ ] 1.2 Title": no heading either
                    boxes.append(m)
                    special.append((index, m, None))
                    continue
                m = box_match(text)
            else:
                m = None
            h = head_match(text) if text.startswith("#") else None
            if m:
                boxes.append(m)
            if h:
                heads.append((m, h))
            if m or h:
                special.append((index, m, h))
        return special, fenced, boxes, heads

    def heading_lines(self) -> list[int]:
        """The indexes of the lines that start with ``#`` and hold no ``[``,
        in order: a memchr per ``#`` of the text, not a test per line."""
        text, lines = self.text, self.lines
        found: list[int] = []
        index = start = 0  # the line that starts at offset `start`
        pos = text.find("#")
        while pos != -1:
            if pos == 0 or text[pos - 1] == "\n":
                index += text.count("\n", start, pos)
                start = pos
                if "[" not in lines[index]:
                    found.append(index)
            pos = text.find("#", pos + 1)
        return found

    def choose_mode(self, boxes: list[re.Match[str]],
                    heads: list[tuple[re.Match[str] | None, re.Match[str]]]) -> TaskKind:
        checkboxes = len(boxes)
        headings = sum(1 for box, h in heads if box is None and _heading_task_id(h.group(2)))
        # Task headings whose checkbox lines carry no ids of their own
        # (ralphex/superpowers plans: "### Task 3: Title" + "- [ ] step"):
        # the headings are the tasks and the checkboxes their steps.
        if headings > checkboxes or (headings and not any(
                m.group("id") or m.group("number") for m in boxes)):  # a common line: "id" has it
            return TaskKind.HEADING
        if checkboxes:
            return TaskKind.CHECKBOX
        return TaskKind.NUMBERED

    # -- the pass ----------------------------------------------------------------

    def read(self) -> list[Task]:
        special, fenced, boxes, heads = self.scan()
        mode = self.choose_mode(boxes, heads)
        checkbox_mode = mode is TaskKind.CHECKBOX
        heading_mode = mode is TaskKind.HEADING
        numbered_mode = mode is TaskKind.NUMBERED
        heading_level = 0
        lines = self.lines
        new_task = Task.__new__
        common_checkbox = _COMMON_CHECKBOX
        stack, latest, order = self.indent_stack, self.latest, self.order
        start = 0  # the first line not read yet
        # A common task line's gap (its lines up to the next special line) is
        # taken whole when plain() would take each of its lines as a detail,
        # as written (see below). These checks of the whole file let a few
        # C-speed tests per gap decide it: every blank is a space or a line
        # end (ASCII, no tab or other blank: an indent is its length), and
        # no line ends in a space (so none is spaces alone: plain() keeps
        # those as "").
        whole_gaps = checkbox_mode and _only_spaces(self.text)
        pads: dict[int, tuple[str, str]] = {}
        # Whether a gap's first line ends the title (empty or a bullet): a
        # function of the line alone, so a line equal to the last one tested
        # (a templated spec repeats it: "    - Write the code and its tests")
        # has the same answer, given by one comparison.
        first_tested: str | None = None
        first_ends_title = False
        # A task closed with its gap taken whole has no draft; the rare line
        # that adds to it after the gap (a fenced line, an empty checkbox)
        # first gives it the draft plain() would have left (resume). It is
        # kept as its indent-stack entry, (indent, task): no tuple of its own.
        undrafted: tuple[int, Task] | None = None
        ends = [entry[0] for entry in special]  # a gap ends at the next special line
        ends.append(len(lines))
        for end, (index, checkbox, h) in zip(islice(ends, 1, None), special):
            closed, undrafted = undrafted, None
            if start < index:
                self.plain(start, index, mode)
            start = index + 1
            if fenced and index in fenced:
                if closed is not None:
                    self.resume(*closed)
                self.add_detail(lines[index])
                continue
            number = index + 1
            if checkbox_mode and checkbox:
                if checkbox.re is common_checkbox:
                    mark, written, rest = checkbox.groups()
                    indent = checkbox.start(1) - 3  # the spaces before "- ["
                    opt = None
                else:
                    indent_text, _, mark, opt, task_text, bold, _, written, rest = checkbox.groups()
                    indent = len(indent_text)
                    if not (written is not None and bold is None and "\t" not in indent_text and "[" not in rest
                            and "(" not in rest and "*" not in rest and "✅" not in rest):
                        if task_text.rstrip(" \t"):
                            self.start_checkbox(number, checkbox, lines[index])
                        else:
                            if closed is not None:  # its task takes the lines after it
                                self.resume(*closed)
                            self.warn(number, "checkbox without a task title; ignored")
                        continue
                # The common task line, "- [ ] 1.2 Title": start_checkbox's
                # work without its rare cases (no tags, marker, bold, tab).
                # The Task is made without its __init__ (a dataclass of 19
                # fields, keyword arguments: most of a task line's cost):
                # the fields it leaves out are the class's defaults. ``id``
                # is set first although finish() sets it again: tasks share
                # the class's table of attribute names only while each sets
                # them in the same order (``id`` first, as ``__init__`` does);
                # out of order, every task gets a dict of its own (3 ms more
                # over 5,000 tasks).
                task = new_task(Task)
                task.id = ""
                task.title = rest.strip() or written
                task.line = number
                task.state = _STATES[mark]
                task.mark = mark
                task.written_id = written
                if opt is not None:
                    task.optional = True
                task.section = self.section
                task.children = []
                draft = self.draft
                if draft is not None:
                    if draft.task.kind is TaskKind.HEADING:
                        self.close_draft()
                    else:  # close_draft's work for any other task, inline
                        draft.task.read_metadata = draft
                        draft.task.body = draft.detail_lines
                if whole_gaps:
                    if end > start:
                        part = lines[start:end]
                        gap = "\n".join(part)
                        pad = pads.get(indent)
                        if pad is None:
                            pad = pads[indent] = (" " * (indent + 1), "\n" + " " * (indent + 1))
                        first = part[0]
                        if first != first_tested:
                            first_tested = first
                            first_ends_title = (not first or first.lstrip(" ")[:2] in _DASHES
                                                or _BULLET.match(first.lstrip(" ")) is not None)
                        # No "[" (a loose checkbox), every line empty or
                        # indented deeper than the task, the first empty
                        # or a bullet (the title ends there, not continued).
                        taken = ("[" not in gap
                                 and gap.count(pad[1]) + first.startswith(pad[0]) == len(part) - part.count("")
                                 and first_ends_title)
                    else:
                        part, taken = [], True
                else:
                    taken = False
                entry = indent, task
                if taken:
                    # As close_draft would leave it; a draft only if needed.
                    task.read_metadata = MethodType(_read_body, part)
                    task.body = part
                    self.draft = None
                    undrafted = entry
                    start = end
                else:
                    self.draft = _Draft(task, indent)
                while stack and stack[-1][0] >= indent:
                    stack.pop()
                # attach(task), inline
                prefix, dot, _ = written.rpartition(".")
                while dot:  # "1.2.3": "1.2", then "1"
                    parent = latest.get(prefix)
                    if parent is not None:
                        task.parent = parent
                        parent.children.append(task)
                        break
                    prefix, dot, _ = prefix.rpartition(".")
                latest[written] = task
                order.append(task)
                stack.append(entry)
                continue
            text = lines[index]
            if heading_mode and checkbox and self.draft is not None:
                self.draft.steps.append(Step(number, checkbox.group("mark"), _box_text(checkbox).rstrip(" \t")))
            if h:
                level, body = len(h.group(1)), h.group(2)
                if heading_mode:
                    if _heading_task_id(body):
                        heading_level = level
                        self.start_heading_task(number, body)
                        continue
                    if self.draft is not None and level > heading_level:
                        self.add_detail(text)
                        continue
                self.close_draft()
                self.indent_stack.clear()
                self.section = _strip_bold(body)
                self.maybe_group(number, body)
                continue
            if numbered_mode:
                m = _NUMBERED.match(text)
                if m:
                    self.start_numbered(number, m)
                    continue
            if checkbox_mode and "[" in text:
                self.loose_checkbox(number, text)
            self.add_detail(text, mode)
        if start < len(lines):
            self.plain(start, len(lines), mode)
        self.close_draft()
        return self.finish()

    def resume(self, indent: int, task: Task) -> None:
        """Give ``task``, closed with its gap taken whole (read), the draft
        plain() would have left it: those lines, the title ended by any."""
        draft = self.draft = _Draft(task, indent)
        draft.detail_lines = task.body  # type: ignore[assignment]
        draft.title_open = not draft.detail_lines

    def plain(self, start: int, stop: int, mode: TaskKind) -> None:
        """Lines ``start`` to ``stop`` (0-based, ``stop`` excluded), none of
        them a checkbox, heading or fenced line: most lines of a file, so
        add_detail's commonest cases are done here, without a call: a blank
        line, a detail line indented under its task once the title is complete.
        In numbered mode such a line may also start a task."""
        lines = self.lines
        numbered_mode = mode is TaskKind.NUMBERED
        checkbox_mode = mode is TaskKind.CHECKBOX
        draft = self.draft
        for index in range(start, stop):
            text = lines[index]
            if numbered_mode:
                m = _NUMBERED.match(text)
                if m:
                    self.start_numbered(index + 1, m)
                    draft = self.draft
                    continue
            elif checkbox_mode and "[" in text:
                self.loose_checkbox(index + 1, text)
            if draft is None:
                continue
            body = text.lstrip()
            if not body:
                draft.title_open = False
                draft.detail_lines.append("")
                continue
            lead = len(text) - len(body)
            if (lead if "\t" not in text else _indent_width(text[:lead])) > draft.indent:
                # Indented under the task: a detail, unless it continues the title.
                if draft.title_open:
                    stripped = body.rstrip()
                    if stripped[0] not in _BULLET_START or _BULLET.match(stripped) is None:
                        self.add_detail(text, mode)
                        continue
                    draft.title_open = False  # a bullet: the details begin
                draft.detail_lines.append(text)
                continue
            self.add_detail(text, mode)
            draft = self.draft

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(Warning_(self.path, line, message))

    def loose_checkbox(self, number: int, text: str) -> None:
        loose = _LOOSE_CHECKBOX.match(text)
        if loose and loose.group("inner") not in ("P", "p") and "](" not in text:
            self.warn(number, f"unrecognised checkbox [{loose.group('inner')}]; not a task")

    # -- starting tasks -------------------------------------------------------------

    def start_checkbox(self, number: int, m: re.Match[str], line: str) -> None:
        indent_text, list_number, mark, opt, text = m.group("indent", "number", "mark", "opt", "text")
        written, title, tags, optional, depends = _title_parts(text.rstrip(" \t"))
        if written is None and list_number:
            written = list_number  # "3. [ ] Title": the list number is the id
        indent = _indent_width(indent_text)
        checklist = False
        if (written is None and self.latest and not indent and not line.lstrip().startswith("#")
                and _CHECKLIST_SECTION.search(self.section)):
            # An id-less item under a checklist heading after numbered tasks:
            # listed (--co, -k checklist) but, like an optional task, not run by default.
            checklist = optional = True
        task = Task(id="", title=title, line=number, kind=TaskKind.CHECKBOX, state=_STATES[mark], mark=mark,
                    written_id=written, optional=optional or bool(opt), checklist=checklist, tags=tags,
                    section=self.section)
        self.close_draft()
        self.draft = _Draft(task, indent, depends)
        self.place(task, indent)

    def start_numbered(self, number: int, m: re.Match[str]) -> None:
        written = m.group("id").rstrip(".)")
        task = self.new_task(number, f"{written} {m.group('text')}", TaskKind.NUMBERED)
        self.place(task, _indent_width(m.group("indent")))

    def start_heading_task(self, number: int, body: str) -> None:
        done = "✅" in body
        task = self.new_task(number, body.replace("✅", " "), TaskKind.HEADING)
        if done:
            task.state = TaskState.DONE
        self.place(task, 0)

    def maybe_group(self, number: int, body: str) -> None:
        """A numbered heading (``### 3. Runner``) may parent ``3.1``; it is kept
        only if some task turns out to belong to it."""
        m = _heading_id(body)
        if not m:
            return
        title = _clean_title(body[m.end():], bool(m.group("bold")))
        group = Task(id="", title=title or body, line=number, kind=TaskKind.GROUP,
                     written_id=m.group("id"), section=self.section)
        self.groups += 1
        self.attach(group)

    def new_task(self, number: int, text: str, kind: TaskKind) -> Task:
        written, title, tags, optional, depends = _title_parts(text)
        task = Task(id="", title=title, line=number, kind=kind, written_id=written,
                    optional=optional, tags=tags, section=self.section)
        self.close_draft()
        self.draft = _Draft(task, 0, depends)
        return task

    def place(self, task: Task, indent: int) -> None:
        assert self.draft is not None
        self.draft.indent = indent
        stack = self.indent_stack
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if task.written_id is None:
            if stack:
                parent = stack[-1][1]
                task.parent = parent
                parent.children.append(task)
            self.order.append(task)
        else:
            self.attach(task)
        stack.append((indent, task))

    def attach(self, node: Task) -> None:
        """Hang ``node`` under the nearest earlier node whose id is a prefix."""
        written = node.written_id
        assert written is not None
        prefix, dot, _ = written.rpartition(".")
        while dot:  # "1.2.3": "1.2", then "1"
            parent = self.latest.get(prefix)
            if parent is not None:
                node.parent = parent
                parent.children.append(node)
                break
            prefix, dot, _ = prefix.rpartition(".")
        self.latest[written] = node
        self.order.append(node)

    # -- details -------------------------------------------------------------------------

    def add_detail(self, text: str, mode: TaskKind | None = None) -> None:
        draft = self.draft
        if draft is None:
            return
        stripped = text.strip()
        if not stripped:
            draft.title_open = False
            draft.detail_lines.append("")
            return
        indent = _indent_width(text[: len(text) - len(text.lstrip())])
        bullet = stripped[0] in _BULLET_START and _BULLET.match(stripped) is not None
        if mode is not None and mode is not TaskKind.HEADING and indent <= draft.indent and not bullet:
            # Prose back at the task's own margin ends the task (spec-kit
            # checkpoints, closing notes, a "Deliverables" block).
            self.close_draft()
            return
        if draft.title_open and not bullet and indent > draft.indent and not _metadata(stripped):
            draft.task.title = f"{draft.task.title} {stripped}".strip()
            return
        draft.title_open = False
        draft.detail_lines.append(text)

    def close_draft(self) -> None:
        draft, self.draft = self.draft, None
        if draft is None:
            return
        task = draft.task
        lines = draft.detail_lines
        # Read on first use (nodes.Task.metadata): listing 5,000 tasks needs none of it.
        task.read_metadata = draft
        task.body = lines
        if task.kind is not TaskKind.HEADING:
            return
        task.steps = tuple(draft.steps)
        # A field's key is written on one of the lines: without the word, no need to read them.
        if any("ID" in line for line in lines):
            alias = task.fields.get("ID", "").strip("`* ")
            if _ID_ONLY.match(alias) or _ALIAS.match(alias):
                task.aliases = (alias,)
        if task.state is not TaskState.DONE:
            status = task.fields.get("Status", "") if any("Status" in line for line in lines) else ""
            if status and _DONE_WORDS.match(status.strip("* ")):
                task.state = TaskState.DONE
            elif task.steps and all(step.done for step in task.steps):
                task.state = TaskState.DONE  # every step ticked

    # -- ids and the final tree -----------------------------------------------------------

    def finish(self) -> list[Task]:
        order = self.order
        if self.groups:
            self.kept = kept = [t for t in order if t.kind is not TaskKind.GROUP or t.children]
            for t in order:
                if t.kind is TaskKind.GROUP and not t.children and t.parent is not None:
                    t.parent.children.remove(t)
        else:
            self.kept = kept = order
        # `latest` has a node per distinct written id: as many as nodes when
        # each node has its own (then so do the kept ones).
        if len(self.latest) == len(order):
            for task in kept:  # each id written once: the ids as written
                task.id = task.written_id  # type: ignore[assignment]
            return [t for t in kept if t.parent is None]
        written = [t.written_id for t in kept]
        if None not in written and len(set(written)) == len(written):
            for task, task_id in zip(kept, written):  # each id written once: the ids as written
                task.id = task_id  # type: ignore[assignment]
            return [t for t in kept if t.parent is None]
        counts: dict[str, int] = {}
        first_line: dict[str, int] = {}
        for task in kept:
            written = task.written_id or _generated_id(task.title)
            n = counts.get(written, 0) + 1
            counts[written] = n
            if n == 1:
                task.id = written
                first_line[written] = task.line
            else:
                task.id = f"{written}~{n}"
                what = f"task id {written}" if task.written_id is not None else "task title"
                self.warn(task.line, f"duplicate {what} (first at line "
                          f"{first_line[written]}); this one is {task.id}")
        # A kept node's parent is kept too (it has a child), so the roots are
        # the parentless ones, and `kept` is every node of the tree.
        return [t for t in kept if t.parent is None]


def _box_text(m: re.Match[str]) -> str:
    """A checkbox match's text: what follows the box (the id on)."""
    if m.re is _COMMON_CHECKBOX:  # no "text" group: not a string per task for the rare reader
        return m.string[m.start("id"):]
    return m.group("text")  # type: ignore[no-any-return]


def _title_parts(text: str) -> tuple[str | None, str, tuple[str, ...], bool, tuple[str, ...]]:
    """A task line's text (after its checkbox or number) read: the written id,
    the title, the tags, whether "(Optional)" marks it, "(depends on …)" ids."""
    m = _ID.match(text)
    if m:
        bold_mark, _, written = m.groups()
        bold = bold_mark is not None
        rest = text[m.end():]
    else:
        written, bold, rest = None, False, text
    tags: tuple[str, ...] = ()
    optional = False
    depends: tuple[str, ...] = ()
    if "[" in rest or "(" in rest:  # tags, "(optional)", "(depends on …)"; rare
        found = []
        while True:
            t = _TAG.match(rest)
            if not t:
                break
            found.append((t.group("tag") or t.group("paren")).replace(" ", ""))
            rest = rest[t.end():]
        tags = tuple(found)
        if _OPTIONAL_IN_TITLE.search(rest):
            optional = True
            rest = _OPTIONAL_IN_TITLE.sub(" ", rest)
        deps = _DEPENDS_IN_TITLE.search(rest)
        if deps:
            depends = tuple(_split_ids(deps.group(1)))
    title = rest.strip()
    if bold or "*" in title or "✅" in title:
        title = _clean_title(rest, bold)  # else _clean_title would give the stripped text
    return written, title or (written or ""), tags, optional, depends


def _heading_id(body: str) -> re.Match[str] | None:
    """``_ID.match(body)`` for a heading's text; most headings ("Implementation
    Plan") cannot start with an id, and need not compile _ID to say so."""
    first = body[:1]
    if first and (first in _ID_STARTS or first.isdigit()):
        return _ID.match(body)  # type: ignore[no-any-return]
    return None


def _heading_task_id(body: str) -> str | None:
    """The id of a heading that *is* a task: ``Task 1.1: …`` or ``T001 …``."""
    m = _heading_id(body)
    if m and (m.group("word") or m.group("id").startswith("T")):
        return m.group("id")
    return None


def _clean_title(rest: str, bold: bool) -> str:
    title = rest.strip()
    if bold:
        if title.startswith("**"):
            title = title[2:].lstrip()
        elif title.endswith("**"):
            title = title[:-2].rstrip()
    title = title.removesuffix("✅").rstrip()
    return _strip_bold(title)


def _strip_bold(text: str) -> str:
    text = text.strip()
    if text.startswith("**") and text.endswith("**") and len(text) > 4 and "**" not in text[2:-2]:
        return text[2:-2].strip()
    return text


def _generated_id(title: str) -> str:
    import hashlib  # few tasks lack an id: not worth its import at every start

    return "h" + hashlib.sha1(title.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def _dedent(lines: list[str]) -> list[str]:
    """The lines without their common indent, blank lines at either end, or
    runs of blank lines; ``lines`` itself is left as it is."""
    kept = [line for line in lines if line.strip()]
    if not kept:
        return []
    cut = min(len(x) - len(x.lstrip()) for x in kept)
    out: list[str] = []
    for line in lines:
        line = line[cut:].rstrip() if line.strip() else ""
        if line or (out and out[-1]):
            out.append(line)
    if out and not out[-1]:
        out.pop()
    return out


def _metadata(line: str) -> tuple[str, str] | None:
    """``(key, value)`` if the line is a metadata line, else None."""
    if ":" not in line and "：" not in line:
        return None  # every metadata form has a colon: most detail lines stop here
    body = _BULLET.sub("", line.strip(), count=1)
    m = _UNDERSCORE_KEY.match(body)
    if m:
        rest = m.group("rest")
        value = rest[1:].strip() if rest.startswith("_") else rest.rstrip().removesuffix("_").rstrip()
        return m.group("key").strip(), value
    m = _BOLD_KEY.match(body) or _PLAIN_KEY.match(body)
    if m:
        return m.group("key").strip("_ ").strip(), m.group("rest").strip().strip("_").strip()
    return None


def _read_metadata(detail_lines: list[str], title_depends: tuple[str, ...]) -> TaskMetadata:
    """A task's details and metadata from the lines of its body (as written)."""
    from seqrun.metadata import TaskMetadata  # only a run reads metadata: not built for a listing

    lines = _dedent(detail_lines)
    requirements: list[str] = []
    depends: list[str] = list(title_depends)
    fields: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        found = _metadata(line)
        if found is None:
            continue
        key, value = found
        body = _BULLET.sub("", line.strip(), count=1)
        # `_Requirements: 1.1,` continued on the next lines until the closing `_`.
        if body.startswith("_") and not body.rstrip().endswith("_"):
            while i < len(lines) and lines[i].strip() and not _metadata(lines[i]):
                more = lines[i].strip()
                i += 1
                value = f"{value} {more.removesuffix('_').rstrip()}".strip()
                if more.endswith("_"):
                    break
        folded = key.casefold()
        if folded in REQUIREMENT_KEYS:
            requirements.extend(p.strip().strip("*").strip() for p in _LIST_SPLIT.split(value) if p.strip())
        elif folded in DEPENDENCY_KEYS:
            depends.extend(d for d in _split_ids(value) if d not in depends)
        else:
            fields[key] = f"{fields[key]}; {value}" if key in fields else value
    return TaskMetadata(
        details="\n".join(lines),
        requirements=tuple(r for r in requirements if r),
        depends=tuple(depends),
        fields=fields,
    )


def _read_body(lines: list[str]) -> TaskMetadata:
    """The metadata of a task whose title names no dependency, from its body:
    the reader kiro binds to a body (one small object a task, where a
    ``functools.partial`` would be two for the cyclic collector to walk)."""
    return _read_metadata(lines, ())


def _split_ids(value: str) -> list[str]:
    ids = []
    for piece in _LIST_SPLIT.split(value):
        piece = piece.strip().strip("*_`").strip()
        piece = re.sub(r"^(?:tasks?|任务)[ \t]*", "", piece, flags=re.IGNORECASE).rstrip(".")
        if _ID_ONLY.match(piece):
            ids.append(piece)
    return ids


# -- public API ------------------------------------------------------------------------


def collect_text(text: str, path: Path, nodeid: str | None = None, name: str | None = None) -> Spec:
    """Parse tasks-file ``text`` read from ``path``; never raises on content."""
    if "\r" in text:
        newline = "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"
        normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    else:  # the commonest file: nothing to count or replace (a copy of it each)
        newline, normalized = "\n", text
    lines = normalized.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    reader = _Reader(path, lines, normalized)
    # The pass makes tens of thousands of objects that all stay (the tree)
    # and no garbage worth a collection: the cyclic collector, which would
    # walk them again and again as they are made (a tenth of the pass at
    # 5,000 tasks), waits until the tree is built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        roots = reader.read()
    finally:
        if collecting:
            gc.enable()
    spec = Spec(
        name=name or spec_name(path),
        tasks_file=path,
        nodeid=nodeid if nodeid is not None else str(path),
        roots=roots,
        warnings=reader.warnings,
        newline=newline,
        text=text,
    )
    for task in reader.kept:  # every node of the tree
        task.spec = spec
    return spec


def spec_name(path: Path) -> str:
    """A spec's identity: its tasks file relative to the specs root (the
    folder that holds the spec folders), the folder alone for a ``tasks.md``.

    ``.kiro/specs/my-feature/tasks.md`` → ``my-feature``;
    ``.kiro/specs/backend/phase_1.md`` → ``backend/phase_1.md``, so
    ``frontend/phase_1.md`` beside it is another spec. One-to-one within a
    specs root: a folder name has no ``/``, and a file keeps its suffix. It
    names the spec's state record, cache keys, logs, lock, JUnit suite and
    tmux session.
    """
    path = Path(os.path.normpath(path))
    if path.name in TASK_FILE_NAMES:
        return path.parent.name
    folder = path.parent.name
    return f"{folder}/{path.name}" if folder else path.name


def former_spec_name(path: Path) -> str:
    """The name seqrun gave the spec of ``path`` before names were paths:
    the folder for a ``tasks.md``, else the file name without its suffix
    (``backend/phase_1.md`` → ``phase_1``)."""
    path = Path(os.path.normpath(path))
    return path.parent.name if path.name in TASK_FILE_NAMES else path.stem


def decode_tasks_file(path: Path) -> tuple[str, list[str]]:
    """The text of a tasks file and any warnings; raises UsageError when unusable."""
    from seqrun.config import UsageError

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    head = data[:8192]
    if head.count(b"\x00") * 100 > len(head):
        # A stray NUL in a title is hostile input to keep inert; many are a binary file.
        raise UsageError(f"{path} is not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        # Titles and prompts get U+FFFD; tasks.md itself is only ever edited
        # byte by byte, so the undecodable bytes stay exactly as they are.
        return data.decode("utf-8", "replace").removeprefix("\ufeff"), [
            f"{path}: invalid UTF-8 at byte {exc.start}; shown as \ufffd, the file keeps its bytes"
        ]


def not_a_task_list(spec: Spec) -> str | None:
    """Why ``spec``'s file is not a task list (see the module docstring), or None."""
    kind = SPEC_DOCUMENTS.get(spec.tasks_file.name.casefold())
    if kind:
        return f"is the spec's {kind} document, not its task list"
    numbered = []
    for t in spec.iter_tasks():
        if t.kind is TaskKind.NUMBERED:
            numbered.append(t)
        elif t.kind is not TaskKind.GROUP:
            return None  # a task of another kind: its syntax says it is a task list
    if not numbered:
        return None
    stated = sum(1 for t in numbered
                 if _REQUIREMENT_TEXT.search(t.title) or _REQUIREMENT_SECTION.search(t.section))
    if stated * 2 > len(numbered):
        return (f"reads as requirements, not tasks ({stated} of its {len(numbered)} numbered items are "
                "acceptance criteria or sit under requirement headings)")
    return None


@hookimpl(trylast=True)
def seqrun_collect_file(path: Path, config: Config) -> Spec:
    from seqrun.config import UsageError

    text, problems = decode_tasks_file(path)
    spec = collect_text(text, path, nodeid=config.nodeid_for(path))
    why = not_a_task_list(spec)
    if why:
        raise UsageError(f"{spec.nodeid} {why}: run the spec folder, or its tasks.md")
    spec.warnings[:0] = [Warning_(path, 0, p.split(": ", 1)[1]) for p in problems]
    return spec
