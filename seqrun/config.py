"""Options, config files, and the plugin manager.

Start-up order, as in pytest: an early parse finds ``-p`` and the paths; the
built-in plugins, entry-point plugins (group ``seqrun``), ``-p NAME`` modules
and the ``conftest.py`` files next to the specs are registered; then every
plugin adds its options (``seqrun_addoption``), ``[tool.seqrun]`` in
pyproject.toml or a ``seqrun.toml`` supplies defaults, and the command line
wins over both.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Sequence

import pluggy

from seqrun import hookspec
from seqrun.stash import Stash, StashKey

#: Built-in plugins, by the name ``-p no:NAME`` uses to block them.
BUILTIN_PLUGINS: dict[str, str] = {
    "main": "seqrun.main",
    "helpconfig": "seqrun.helpconfig",
    "demo": "seqrun.demo",
    "detach": "seqrun.detach",
    "kiro": "seqrun.kiro",
    "select": "seqrun.select",
    "runner": "seqrun.runner",
    "throttle": "seqrun.throttle",
    "reruns": "seqrun.reruns",
    "ratelimit": "seqrun.ratelimit",
    "resume": "seqrun.resume",
    "backends": "seqrun.backends.registry",
    "prompt": "seqrun.prompt",
    "assign": "seqrun.assign",
    "terminal": "seqrun.reports.terminal",
    "ghsummary": "seqrun.reports.ghsummary",
    "lock": "seqrun.lock",
    "state": "seqrun.reports.state",
    "status": "seqrun.reports.status",
    "writeback": "seqrun.writeback",
    "cacheprovider": "seqrun.reports.cache",
    "junitxml": "seqrun.reports.junitxml",
    "reportlog": "seqrun.reports.reportlog",
    "verify": "seqrun.verify",
    "gitcommit": "seqrun.gitcommit",
    "guardrails": "seqrun.guardrails",
    "notify": "seqrun.notify",
}
#: Plugins that cannot be blocked: without them there is no session at all.
ESSENTIAL_PLUGINS = frozenset({"main", "helpconfig"})

CONFIG_FILES = ("seqrun.toml", "pyproject.toml")
#: Unknown keys of the config file, printed by the terminal reporter.
config_warnings_key = StashKey[list[str]]()
DEFAULT_SPECS_ROOT = Path(".kiro") / "specs"


class UsageError(Exception):
    """A mistake of the user: bad option, bad input file. Exit 4, one line."""


def non_negative(text: str | float) -> float:
    """argparse ``type`` of a finite amount >= 0 (NaN and infinity are refused)."""
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not 0 <= value < math.inf or isinstance(text, bool):  # NaN fails the comparison
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


#: The longest wait any option accepts: a year. Larger values overflow the
#: clocks seqrun computes with ("resumes at ..."), long after the first task.
MAX_SECONDS = 366 * 24 * 3600.0


def seconds(text: str | float) -> float:
    """argparse ``type`` of a number of seconds: from 0 to :data:`MAX_SECONDS`."""
    try:
        value = non_negative(text)
    except argparse.ArgumentTypeError:
        value = math.nan
    if not value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_SECONDS:.0f} "
                                         f"(a year), got {text!r}")
    return value


def whole_number(text: str | int) -> int:
    """argparse ``type`` of a count >= 0."""
    if isinstance(text, bool) or isinstance(text, float):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None


def find_config_file(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """The nearest ``seqrun.toml``, or ``pyproject.toml`` with ``[tool.seqrun]``,
    from ``start`` upwards; and its seqrun table."""
    for folder in (start, *start.parents):
        for name in CONFIG_FILES:
            candidate = folder / name
            if not candidate.is_file():
                continue
            data = _load_toml(candidate)
            if name == "seqrun.toml":
                table = data.get("tool", {}).get("seqrun", data)
                return candidate, table
            table = data.get("tool", {}).get("seqrun")
            if table is not None:
                return candidate, table
    return None, {}


@dataclass
class Config:
    """The configuration of one seqrun invocation, shared by every plugin."""

    pluginmanager: pluggy.PluginManager
    invocation_dir: Path
    option: argparse.Namespace = field(default_factory=argparse.Namespace)
    args: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    """The command line as given (without the program name)."""
    inipath: Path | None = None
    inicfg: dict[str, Any] = field(default_factory=dict)
    stash: Stash = field(default_factory=Stash)
    """Per-run storage for plugins, under typed :class:`~seqrun.stash.StashKey` keys."""

    configured: bool = False

    @property
    def hook(self) -> Any:
        return self.pluginmanager.hook

    def do_configure(self) -> None:
        """``seqrun_configure`` for every plugin, once: called when a run (or
        ``--co``) begins, as pytest's ``_do_configure``; ``--version`` and
        ``--init`` answer without it."""
        if not self.configured:
            self.configured = True
            self.hook.seqrun_configure.call_historic(kwargs=dict(config=self))

    def ensure_unconfigure(self) -> None:
        if self.configured:
            self.configured = False
            self.hook.seqrun_unconfigure(config=self)

    def getoption(self, name: str, default: Any = None) -> Any:
        return getattr(self.option, name, default)

    def nodeid_for(self, path: Path) -> str:
        """How node ids name a spec: its folder (or lone file) relative to
        where seqrun was started, in POSIX form."""
        target = path.parent if path.name == "tasks.md" else path
        try:
            return target.resolve().relative_to(self.invocation_dir.resolve()).as_posix()
        except ValueError:
            return target.resolve().as_posix()

    def section(self, name: str) -> dict[str, Any]:
        """A sub-table of the config (``[tool.seqrun.backends]`` → ``section("backends")``)."""
        value = self.inicfg.get(name, {})
        return value if isinstance(value, dict) else {}


# -- plugin manager ----------------------------------------------------------------


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, reading plugins as pytest's does: a ``seqrun_*``
    function a plugin module defines is a hook implementation even without
    ``@hookimpl`` (so a conftest.py written like pytest's works), and a
    mistake in one — a misspelled hook, an argument the hook does not pass —
    is a :class:`UsageError` naming the file, before anything runs."""

    def __init__(self) -> None:
        super().__init__("seqrun")
        self.add_hookspecs(hookspec)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is not None or not name.startswith("seqrun_") or not isinstance(plugin, ModuleType):
            return opts
        func = getattr(plugin, name, None)
        # Only functions the module defines itself: an imported helper is not a hook.
        if isinstance(func, FunctionType) and func.__module__ == plugin.__name__:
            return {}
        return None

    def register_checked(self, plugin: object, name: str, where: str) -> None:
        """Register ``plugin`` (from file ``where``) after checking its hooks."""
        for attr in dir(plugin):
            opts = self.parse_hookimpl_opts(plugin, attr) if attr.startswith("seqrun_") else None
            if opts is None:
                continue
            hookname = opts.get("specname") or attr
            caller = getattr(self.hook, hookname, None)
            if caller is None or caller.spec is None:
                raise UsageError(f"{where}: unknown hook {hookname!r} (misspelled? every hook is listed "
                                 "in seqrun/hookspec.py)")
            unknown = [arg for arg in _required_args(getattr(plugin, attr)) if arg not in caller.spec.argnames]
            if unknown:
                raise UsageError(f"{where}: {attr}() takes {', '.join(unknown)}, which the hook does not "
                                 f"pass (it passes: {', '.join(caller.spec.argnames)})")
        try:
            self.register(plugin, name)
        except pluggy.PluginValidationError as exc:
            raise UsageError(f"{where}: {' '.join(str(exc).split())}") from None


def _required_args(func: Any) -> list[str]:
    """The arguments pluggy will pass by name: those without a default."""
    import inspect  # only for conftest.py and -p plugins: start-up time

    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.default is p.empty and p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def new_pluginmanager() -> PluginManager:
    return PluginManager()


def import_plugin(pm: pluggy.PluginManager, modname: str, name: str | None = None) -> None:
    if pm.is_blocked(name or modname) or pm.has_plugin(name or modname):
        return
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        raise UsageError(f"cannot import plugin {modname!r}: {exc}") from None
    if isinstance(pm, PluginManager) and modname not in BUILTIN_PLUGINS.values():
        pm.register_checked(module, name or modname, getattr(module, "__file__", None) or modname)
    else:
        pm.register(module, name or modname)


def register_conftest(pm: pluggy.PluginManager, path: Path) -> ModuleType | None:
    """Import a ``conftest.py`` and register it; each file at most once."""
    path = path.resolve()
    key = f"conftest:{path}"
    if pm.has_plugin(key) or pm.is_blocked(key):
        return None
    modname = "seqrun_conftest_" + str(abs(hash(str(path))))
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[modname]
        raise UsageError(f"error importing {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(pm, PluginManager):
        pm.register_checked(module, key, str(path))
    else:
        pm.register(module, key)
    return module


def conftest_candidates(paths: Sequence[Path]) -> list[Path]:
    """conftest.py files for the given spec paths: the specs root's, then each
    spec folder's (the folder holding tasks.md)."""
    found: list[Path] = []
    for path in paths:
        folder = path if path.is_dir() else path.parent
        chain = [folder]
        if (folder / "tasks.md").is_file() or path.is_file():
            chain.insert(0, folder.parent)
        for candidate in chain:
            conftest = candidate / "conftest.py"
            if conftest.is_file() and conftest not in found:
                found.append(conftest)
    return found


# -- parsing -----------------------------------------------------------------------------


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(message)


def _early_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(add_help=False)
    p.add_argument("-p", dest="plugins", action="append", default=[])
    p.add_argument("--spec", action="append", default=[])
    p.add_argument("--noconftest", action="store_true")
    p.add_argument("paths", nargs="*")
    return p


def build_parser(pm: pluggy.PluginManager) -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="seqrun",
        description="Run the tasks of a spec one at a time through a coding-agent CLI.",
        usage="seqrun [PATH | PATH::TASKID ...] [options]",
        allow_abbrev=False,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="a spec folder, a tasks.md file, or a folder of specs (default: .kiro/specs); "
        "PATH::ID selects one task and its subtasks",
    )
    pm.hook.seqrun_addoption.call_historic(kwargs=dict(parser=parser, pluginmanager=pm))
    return parser


def spec_paths(paths: Sequence[str], specs: Sequence[str]) -> list[Path]:
    raw = [p.split("::", 1)[0] for p in (*paths, *specs)]
    return [Path(p) for p in raw] or [DEFAULT_SPECS_ROOT]


def _apply_file_defaults(parser: argparse.ArgumentParser, inicfg: dict[str, Any], inipath: Path) -> list[str]:
    """Use config-file values as defaults; return warnings for unknown keys.

    Each value goes through its option's ``type`` and ``choices``, as the
    same value on the command line would: a bad one is a usage error naming
    the file and the key, so no plugin has to check file values again.
    """
    actions = {a.dest: a for a in parser._actions}
    defaults: dict[str, Any] = {}
    unknown = []
    for key, value in inicfg.items():
        dest = key.replace("-", "_")
        if isinstance(value, dict):
            continue  # a sub-table, read by the plugin that owns it
        action = actions.get(dest)
        if action is None:
            unknown.append(f"{inipath}: unknown option {key!r} ignored")
            continue
        defaults[dest] = _typed_file_value(action, key, value, inipath)
    parser.set_defaults(**defaults)
    return unknown


def _typed_file_value(action: argparse.Action, key: str, value: Any, inipath: Path) -> Any:
    convert = action.type
    if callable(convert) and not isinstance(value, list):
        try:
            value = convert(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise UsageError(f"{inipath}: {key} {exc}" if isinstance(exc, argparse.ArgumentTypeError)
                             else f"{inipath}: {key}: invalid value {value!r}") from None
    if action.choices is not None and not isinstance(value, list) and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise UsageError(f"{inipath}: {key} must be one of {choices}, got {value!r}")
    return value


def parse_config(argv: Sequence[str], invocation_dir: Path | None = None) -> Config:
    """Build the plugin manager and parse ``argv`` into a :class:`Config`."""
    invocation_dir = invocation_dir or Path.cwd()
    pm = new_pluginmanager()
    early, _ = _early_parser().parse_known_args(list(argv))
    blocked = [p[3:] for p in early.plugins if p.startswith("no:")]
    for name in blocked:
        if name in ESSENTIAL_PLUGINS:
            raise UsageError(f"plugin {name!r} cannot be disabled")
        pm.set_blocked(name)
        pm.set_blocked(BUILTIN_PLUGINS.get(name, name))
    for name, modname in BUILTIN_PLUGINS.items():
        if not pm.is_blocked(name):
            import_plugin(pm, modname, name)
    if not os.environ.get("SEQRUN_DISABLE_PLUGIN_AUTOLOAD"):
        pm.load_setuptools_entrypoints("seqrun")
    for name in early.plugins:
        if not name.startswith("no:"):
            import_plugin(pm, name)
    if not early.noconftest and not pm.is_blocked("conftest"):
        # The early parser does not know plugin options yet, so the value of
        # "--backend acme" lands among the paths: only existing paths count.
        given = [p for p in early.paths if (invocation_dir / p.split("::", 1)[0]).exists()]
        for conftest in conftest_candidates(spec_paths(given, early.spec)):
            register_conftest(pm, invocation_dir / conftest if not conftest.is_absolute() else conftest)

    inipath, inicfg = find_config_file(invocation_dir)
    parser = build_parser(pm)
    warnings = _apply_file_defaults(parser, inicfg, inipath) if inipath else []
    option = parser.parse_args(list(argv))
    config = Config(pm, invocation_dir, option, list(option.paths) + list(option.spec or []),
                    list(argv), inipath, inicfg)
    config.stash[config_warnings_key] = warnings
    return config
