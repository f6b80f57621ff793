"""The backend registry plugin: ``--backend``, ``--model``, and the
``seqrun_register_backends`` hook through which plugins add backends.

``--backend``'s name (an unknown one names the closest known) and its CLI on
PATH are checked at configure, before anything is collected or printed, for
every run that may start an agent (not ``--co``); a backend an
``--assign-backend`` answer picks is checked before its first agent."""
from __future__ import annotations

import argparse
import importlib
import os
import shutil
from typing import TYPE_CHECKING, Any

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl
from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.backends.base import AgentCall, Backend, Invocation
    from seqrun.main import Session
    from seqrun.nodes import Task


class BackendRegistry:
    """Backends by name: a class, or a ``"module:Class"`` path imported on first use."""

    def __init__(self) -> None:
        self.classes: dict[str, type | str] = {}
        self.aliases: dict[str, str] = {}
        self._instances: dict[str, Backend] = {}

    def register(self, cls: type | str, name: str | None = None) -> None:
        """``register(MyBackend)`` or ``register("pkg.mod:MyBackend", name="mine")``."""
        if isinstance(cls, str):
            if not name:
                raise TypeError(f"backend path {cls!r} needs a name")
        else:
            name = name or getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                raise TypeError(f"backend {cls!r} has no name")
            for alias in getattr(cls, "aliases", ()):
                self.aliases[alias] = name
        self.classes[name] = cls

    def resolve(self, name: str) -> str:
        name = self.aliases.get(name, name)
        if name not in self.classes:
            import difflib  # only to name the closest known backend

            known = ", ".join(sorted(self.classes))
            close = difflib.get_close_matches(name, [*self.classes, *self.aliases], n=1, cutoff=0.6)
            hint = f"did you mean {self.aliases.get(close[0], close[0])}? " if close else ""
            raise UsageError(f"unknown backend {name!r} ({hint}known: {known})")
        return name

    def get(self, name: str) -> Backend:
        name = self.resolve(name)
        if name not in self._instances:
            cls = self.classes[name]
            if isinstance(cls, str):
                modname, _, attr = cls.partition(":")
                try:
                    cls = self.classes[name] = getattr(importlib.import_module(modname), attr)
                except (ImportError, AttributeError) as exc:
                    raise UsageError(f"cannot load backend {name!r} from {cls!r}: {exc}") from None
            self._instances[name] = cls()
        return self._instances[name]


registry_key: StashKey[BackendRegistry] = StashKey()
checked_key: StashKey[set[str]] = StashKey()
"""Backends whose executable was found on PATH in this run."""


def registry(config: Config) -> BackendRegistry:
    reg = config.stash.get(registry_key, None)
    if reg is None:
        from seqrun.backends import ALIASES

        reg = config.stash[registry_key] = BackendRegistry()
        reg.aliases.update(ALIASES)
        config.hook.seqrun_register_backends(register=reg.register)
    return reg


def check_executable(backend: Any, config: Config) -> None:
    """A missing agent CLI, or one that would refuse to run here (claude as
    root), is a usage error before its first agent starts."""
    options = config.section("backends").get(backend.name, {})
    options = options if isinstance(options, dict) else {}
    argv = options.get("argv")
    exe = argv[0] if argv else options.get("executable") or getattr(backend, "executable", None)
    if exe and shutil.which(exe) is None:
        raise UsageError(f"{exe} not found on PATH: install it, or pick another --backend "
                         f"(known: {', '.join(sorted(registry(config).classes))})")
    environment_problem = getattr(backend, "environment_problem", None)
    problem = environment_problem(os.environ, bool(config.option.is_sandbox)) if environment_problem else None
    if problem:
        raise UsageError(problem)


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.getgroup("agent", order=20, common=True)  # type: ignore[attr-defined]
    group.add_argument("--backend", default="claude", metavar="NAME",
                       help="agent CLI: codex, claude, gemini, opencode, kiro, codeagent-wrapper, "
                       "command (argv from [tool.seqrun.backends.command]), demo; default claude")
    group.add_argument("--model", default="", metavar="MODEL", help="model passed to the CLI")
    group.add_argument("--is-sandbox", action="store_true",
                       help="this machine is a throwaway sandbox (container, VM): lets claude run as "
                       "root skip its permission prompts (IS_SANDBOX=1), which it refuses otherwise")


@hookimpl(trylast=True)
def seqrun_backend_invocation(backend: Backend, call: AgentCall) -> Invocation:
    return backend.invocation(call)


@hookimpl
def seqrun_register_backends(register: Any) -> None:
    from seqrun.backends import BUILTIN_BACKENDS

    for name, path in BUILTIN_BACKENDS.items():
        register(path, name=name)


@hookimpl
def seqrun_configure(config: Config) -> None:
    name = registry(config).resolve(config.option.backend)  # unknown backend: exit 4 now
    if name == "command":
        argv = config.section("backends").get("command", {}).get("argv")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            where = config.inipath or "seqrun.toml"
            raise UsageError(f"--backend command needs [backends.command] argv = [\"prog\", "
                             f"\"{{prompt_file}}\", ...] in {where}")


@hookimpl(tryfirst=True)
def seqrun_collection_finish(session: Session) -> None:
    """The agent CLI, once the PATHs are known to hold tasks (a mistaken
    PATH is the first thing said) and before anything else is printed or
    written: a missing CLI is the only line, not an error after "collected
    N tasks". One an --assign-backend answer picks is checked before its
    first agent."""
    config = session.config
    runs_agents = not (config.option.collectonly or getattr(config.option, "status", False))
    if session.items and runs_agents:
        check_backend(config, registry(config).resolve(config.option.backend))


def check_backend(config: Config, name: str) -> Backend:
    """The backend ``name``, checked once per run (:func:`check_executable`)."""
    backend = registry(config).get(name)
    checked = config.stash.setdefault(checked_key, set())
    if backend.name not in checked:
        check_executable(backend, config)
        checked.add(backend.name)
    return backend


def backend_for(session: Session, task: Task) -> Backend:
    """The backend that runs ``task``: an assignment hook's choice or ``--backend``."""
    config = session.config
    name = config.hook.seqrun_assign_backend(task=task, session=session) or config.option.backend
    return check_backend(config, name)

