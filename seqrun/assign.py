"""``--assign-backend``: let an LLM pick the agent for each dispatch unit.

The seed script asked a sub-agent to classify every unit as
``{"type": "code" | "ui" | "review", "owner_agent": "codex" | "gemini" |
"codex-review"}`` and cached the answer in the state file's ``assignments``.
seqrun does the same, once per unit (the top-level task a leaf belongs to)
without a cached answer, and maps the owner to a backend through the
``[owners]`` table of the config file. Any failure — the CLI errs, the answer
is not JSON, the owner is unknown — falls back to ``--backend`` with a
warning: a classifier must never stop an overnight run.

This module is the plugin's light part (its options, the prompt, the owners,
registration); the classifier is :mod:`seqrun.assigner`, imported when
``--assign-backend`` registers it: ``seqrun --co`` never loads it.
"""
from __future__ import annotations

import argparse

import pluggy

from seqrun.config import Config, seconds
from seqrun.hookspec import hookimpl
from seqrun.lazy import moved_names
from seqrun.stash import StashKey

DEFAULT_OWNERS = {
    "codex": "codex",
    "codex-review": "codex",
    "gemini": "gemini",
    "claude": "claude",
    "opencode": "opencode",
    "kiro": "kiro",
}
TYPES = ("code", "ui", "review")

CLASSIFY_PROMPT = """\
Classify this software task for dispatch to a coding agent. Answer with ONE
JSON object and nothing else, of the form
{{"type": "code" | "ui" | "review", "owner_agent": "codex" | "gemini" | "codex-review"}}
Use "ui" with "gemini" for user-interface and styling work, "review" with
"codex-review" for reviews and audits, and "code" with "codex" otherwise.

Task {task_id}: {title}
{details}
"""


assignments_key: StashKey[dict] = StashKey()
"""The assignments of a run without the state plugin (``-p no:state``)."""


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("backend assignment")
    group.add_argument("--assign-backend", default=None, metavar="NAME",
                       help="classify each dispatch unit with this backend and run it with the "
                       "owner's backend ([owners] table maps owner_agent to a backend)")
    group.add_argument("--assign-timeout", type=seconds, default=180.0, metavar="SECONDS",
                       help="time limit of one classification call (default 180)")


@hookimpl
def seqrun_configure(config: Config) -> None:
    if config.option.assign_backend and not config.option.collectonly:
        from seqrun.assigner import Assigner

        config.pluginmanager.register(Assigner(config), "assigner")


#: The assigner's names, importable from here as before (see the module docstring).
_ASSIGNER = frozenset({"parse_assignment", "Assigner"})


__getattr__ = moved_names(__name__, "seqrun.assigner", _ASSIGNER)
