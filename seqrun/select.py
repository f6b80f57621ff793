"""Selection: ``PATH::ID`` node ids and ``-k EXPR``.

``-k`` uses pytest's grammar::

    expr:     and_expr ('or' and_expr)*
    and_expr: not_expr ('and' not_expr)*
    not_expr: 'not' not_expr | '(' expr ')' | ident

An identifier made of digits and dots (``1.2``) names a task id: it matches
that task and its descendants exactly (not ``11.2``, not ``1.20``), and an id
prefix at a dot boundary (``2`` selects ``2.1`` even when no task ``2`` exists).
An identifier written like an id with letters (``T046``, ``T-5``) that is the
id or ``**ID**:`` alias of some collected task is an id too: it matches exactly
(``T046`` is not ``T046a``), never a title that mentions it. Any other
identifier matches, case-insensitively, a substring of the task's title, its
parents' titles, the spec name, the task's ids and its keywords (``optional``,
``done``, ``pending``, tags such as ``p`` or ``us1``).

A ``-k`` that selects nothing says so, naming the ids (or title words) nearest
to its identifiers, before ``collected 0 tasks``.

The grammar is :mod:`seqrun.expression`, loaded only when there is a ``-k``.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable

import pluggy

from seqrun.config import Config, config_warnings_key
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.nodes import Task
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.expression import Expression
    from seqrun.main import Session

Matcher = Callable[[str], bool]

#: The names of :mod:`seqrun.expression` still importable from here.
_GRAMMAR = frozenset({"Expression", "ExpressionError", "_Token", "_tokenize", "_TOKEN", "_NUMERIC_ID",
                      "_LETTERED_ID"})


# The grammar is compiled only for a -k (or -m): a listing without one
# never builds its token class nor its regexes.
__getattr__ = moved_names(__name__, "seqrun.expression", _GRAMMAR)


def task_ids(task: Task) -> set[str]:
    """The ids a ``-k`` identifier may name ``task`` by: written id and aliases."""
    return {i for i in (task.written_id, *task.aliases) if i}


def task_matcher(task: Task, known_ids: frozenset[str] = frozenset()) -> Matcher:
    """What ``-k`` identifiers match for ``task``; ``known_ids`` are the ids of
    every collected task (a lettered word that is none of them is a word)."""
    from seqrun.expression import _LETTERED_ID, _NUMERIC_ID

    chain = [task, *task.ancestors()]
    written = {i for t in chain for i in task_ids(t)}
    names = [t.title.casefold() for t in chain]
    names += [t.id.casefold() for t in chain]
    if task.spec is not None:
        names.append(task.spec.name.casefold())
    names += sorted(task.keywords())

    def match(ident: str) -> bool:
        if _NUMERIC_ID.match(ident):
            return any(w == ident or w.startswith(ident + ".") for w in written)
        if ident in known_ids and _LETTERED_ID.match(ident):
            return ident in written
        needle = ident.casefold()
        return any(needle in name for name in names)

    return match


def _in_selected_subtree(task: Task, wanted: set[str]) -> bool:
    return "" in wanted or any(t.id in wanted for t in (task, *task.ancestors()))


@hookimpl(tryfirst=True)  # first of "general" after --co, -x (main's): -k is what pytest users reach for
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("general")
    group.add_argument("-k", dest="keyword", default="", metavar="EXPR",
                       help="only tasks matching EXPR: 'and', 'or', 'not', parentheses; "
                       "1.2 selects task 1.2 and its subtasks; words match titles, spec name, keywords")


expression_key = StashKey["Expression | None"]()


@hookimpl
def seqrun_configure(config: Config) -> None:
    # Compile early: a bad expression is a usage error before anything runs.
    if config.option.keyword:
        from seqrun.expression import Expression

        config.stash[expression_key] = Expression(config.option.keyword)
    else:
        config.stash[expression_key] = None


@hookimpl
def seqrun_collection_modifyitems(session: Session, config: Config, items: list[Task]) -> None:
    expr = config.stash.get(expression_key, None)
    if expr is None and all("" in wanted for wanted in session.selectors.values()):
        return  # whole specs, no -k: every item stays
    kept: list[Task] = []
    deselected: list[Task] = []
    known_ids = frozenset(i for spec in session.specs for t in spec.iter_tasks() for i in task_ids(t)) \
        if expr is not None else frozenset()
    for item in items:
        wanted = session.selectors.get(item.spec.nodeid if item.spec else "", {""})
        if _in_selected_subtree(item, wanted) and (
                expr is None or expr.evaluate(task_matcher(item, known_ids))):
            kept.append(item)
        else:
            deselected.append(item)
    if deselected:
        config.hook.seqrun_deselected(items=deselected)
        items[:] = kept
    if expr is not None and deselected and not kept:
        config.stash.setdefault(config_warnings_key, []).append(nothing_matches(expr, session))


def nothing_matches(expr: Expression, session: Session) -> str:
    """``no task matches -k '1.2'; ids nearby: 1.1, 1.3, 2.2``."""
    import difflib
    import re

    from seqrun.expression import _NUMERIC_ID
    from seqrun.main import nearby_ids

    tasks = [t for spec in session.specs for t in spec.iter_tasks()]
    ids = list(dict.fromkeys(t.written_id or t.id for t in tasks))
    words = list(dict.fromkeys(w.casefold() for t in tasks for w in re.findall(r"\w{3,}", t.title)))
    near_ids: list[str] = []
    near_words: list[str] = []
    for ident in expr.identifiers():
        if _NUMERIC_ID.match(ident):
            near_ids += [i for i in nearby_ids(ident, ids) if i not in near_ids]
        else:
            close = difflib.get_close_matches(ident.casefold(), words, n=3, cutoff=0.7)
            near_words += [w for w in close if w not in near_words]
    message = f"no task matches -k {expr.text!r}"
    if near_ids:
        message += f"; ids nearby: {', '.join(near_ids)}"
    if near_words:
        message += f"; words nearby: {', '.join(near_words)}"
    if not (near_ids or near_words) and ids:
        message += f"; ids: {', '.join(ids[:8])}{', ...' if len(ids) > 8 else ''}"
    return message

