"""A task's metadata: what its detail lines say, besides its title.

Its own module because listing or selecting tasks never reads it: the
collector leaves a task's detail lines unread until a run asks for them
(``seqrun.nodes.Task.metadata``), so ``seqrun --co -q`` does not build this
dataclass at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskMetadata:
    """What a task's detail lines say, besides its title."""

    details: str = ""
    """The task's body, dedented, without blank lines at either end."""
    requirements: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    """Other metadata lines (``_Boundary: X_``, ``**Status**: done``) by key."""
