"""Names a module keeps importable while the code behind them loads on first use.

Every plugin module is imported at start-up (its options, its hooks), so
what only a run needs lives in a module of its own (:mod:`seqrun.protocol`
beside :mod:`seqrun.runner`, :mod:`seqrun.records` beside
:mod:`seqrun.outcome`, …). ``__getattr__ = moved_names(__name__, SOURCE,
NAMES)`` keeps ``from seqrun.runner import CallInfo`` working: the first
look-up of one of ``NAMES`` imports ``SOURCE`` and keeps the value in the
module, so later look-ups are plain module attributes. Any other name is an
AttributeError, as without a ``__getattr__``.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Collection


def moved_names(module: str, source: str, names: Collection[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module`` that finds ``names`` in ``source``."""
    moved = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
