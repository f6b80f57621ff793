"""Options, config files, and the plugin manager.

Start-up order, as in pytest: an early parse finds ``-p``; the built-in
plugins, entry-point plugins (group ``seqrun``) and ``-p NAME`` modules are
registered and add their options (``seqrun_addoption``); a pre-parse with
those options finds the PATHs; the project is found from them (or from where
seqrun was started) and the ``conftest.py`` files of its specs are registered
(adding their options to the same parser); then ``[tool.seqrun]`` in
pyproject.toml or a ``seqrun.toml`` supplies defaults, and the command line
wins over both.

The project, as pytest finds its rootdir: the nearest folder holding
``.kiro/specs``, upwards from the first PATH or from where seqrun was started,
stopping at the git root (the folder holding ``.git``, a folder or a file) or
``/``. The config file is looked for along the same folders, so both belong to
one project. Explicit PATHs are relative to where seqrun was started; node ids,
the paths the state file records and the agent's working directory are
relative to the project root (:attr:`Config.rootpath`).

The help (:class:`Parser`): one heading per option group, groups in the order
they declare, ``--help`` describing the common groups and naming every other
option, ``--help-all`` describing all; an unknown option names the closest
known one.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
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
    "status": "seqrun.reports.statusplugin",
    "matrix": "seqrun.reports.matrixplugin",
    "writeback": "seqrun.writeback",
    "cacheprovider": "seqrun.reports.cache",
    "junitxml": "seqrun.reports.junitxmlplugin",
    "reportlog": "seqrun.reports.reportlog",
    "html": "seqrun.reports.htmlplugin",
    "verify": "seqrun.verifyplugin",
    "gitcommit": "seqrun.gitcommit",
    "guardrails": "seqrun.guardrails",
    "notify": "seqrun.notify",
    "marks": "seqrun.marks",
}
#: Plugins that cannot be blocked: without them there is no session at all.
ESSENTIAL_PLUGINS = frozenset({"main", "helpconfig"})

CONFIG_FILES = ("seqrun.toml", "pyproject.toml")
#: Unknown keys of the config file, printed by the terminal reporter.
config_warnings_key = StashKey[list[str]]()
DEFAULT_SPECS_ROOT = Path(".kiro") / "specs"
#: What an empty folder is told (one line, with the error that precedes it).
START_HINT = ("try `seqrun --demo`, or `seqrun --init` to start a project; "
              "seqrun runs .kiro/specs/<feature>/tasks.md")


class UsageError(Exception):
    """A mistake of the user: bad option, bad input file. Exit 4, one line."""


def did_you_mean(word: str, candidates: Sequence[str], n: int = 1) -> str:
    """`` (did you mean X?)`` for the closest of ``candidates``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


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


def upwards(start: Path) -> list[Path]:
    """``start`` and the folders above it, up to the git root (the folder
    holding ``.git``, a folder or a file) or ``/``: where seqrun looks for its
    project and its config file, as pytest looks for its rootdir."""
    start = start.resolve()
    chain = []
    for folder in (start, *start.parents):
        chain.append(folder)
        if (folder / ".git").exists():
            break
    return chain


def find_project(start: Path) -> Path | None:
    """The nearest folder from ``start`` upwards that holds ``.kiro/specs``."""
    return next((f for f in upwards(start) if (f / DEFAULT_SPECS_ROOT).is_dir()), None)


def specs_under(specs_root: Path, invocation_dir: Path) -> Path:
    """What runs without a PATH: ``specs_root``, or the spec folder of it
    that ``invocation_dir`` is in."""
    try:
        inside = invocation_dir.resolve().relative_to(specs_root.resolve()).parts
    except ValueError:
        inside = ()
    return specs_root / inside[0] if inside else specs_root


def find_config_file(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """The nearest ``seqrun.toml``, or ``pyproject.toml`` with ``[tool.seqrun]``,
    from ``start`` upwards (up to the git root, as the project is found); and
    its seqrun table."""
    for folder in upwards(start):
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


class Config:
    """The configuration of one seqrun invocation, shared by every plugin.

    Made as a dataclass would make it (the same arguments, in the same order,
    the same ``repr`` and ``==``), written out: a dataclass is built by
    compiling its methods, a cost every start of seqrun would pay.
    """

    _FIELDS = ("pluginmanager", "invocation_dir", "option", "args", "argv", "inipath", "inicfg", "stash",
               "configured", "rootpath", "specs_root")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: as a dataclass

    def __init__(self, pluginmanager: pluggy.PluginManager, invocation_dir: Path,
                 option: argparse.Namespace | None = None, args: list[str] | None = None,
                 argv: list[str] | None = None, inipath: Path | None = None,
                 inicfg: dict[str, Any] | None = None, stash: Stash | None = None,
                 configured: bool = False, rootpath: Path | None = None,
                 specs_root: Path | None = None) -> None:
        self.pluginmanager = pluginmanager
        self.invocation_dir = invocation_dir
        self.option = argparse.Namespace() if option is None else option
        self.args: list[str] = [] if args is None else args
        self.argv: list[str] = [] if argv is None else argv
        """The command line as given (without the program name)."""
        self.inipath = inipath
        self.inicfg: dict[str, Any] = {} if inicfg is None else inicfg
        self.stash = Stash() if stash is None else stash
        """Per-run storage for plugins, under typed :class:`~seqrun.stash.StashKey` keys."""
        self.configured = configured
        self.rootpath: Path | None = invocation_dir if rootpath is None else rootpath
        """The project root: the folder holding the ``.kiro/specs`` found upwards
        from where seqrun was started (or from the first PATH), else where seqrun
        was started. Node ids and the paths the state file records are relative
        to it, and the agent runs in it (``--workdir`` unset)."""
        self.specs_root = specs_root
        """``<rootpath>/.kiro/specs`` when found: what runs when no PATH is given."""

    def __repr__(self) -> str:
        return f"Config({', '.join(f'{name}={getattr(self, name)!r}' for name in self._FIELDS)})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._FIELDS)

    @property
    def hook(self) -> Any:
        return self.pluginmanager.hook

    def default_paths(self) -> list[Path]:
        """The specs run when no PATH is given: the ``.kiro/specs`` found
        upwards — only the spec folder seqrun was started in, when it was
        started inside one (pytest runs what is under its cwd); an empty
        folder is told how to start."""
        if self.specs_root is None:
            where = upwards(self.invocation_dir)[-1]
            above = "the git root" if (where / ".git").exists() else "/"
            raise UsageError(f"no .kiro/specs in {self.invocation_dir} or above it (up to {above}): "
                             f"{START_HINT}")
        return [specs_under(self.specs_root, self.invocation_dir)]

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
        the project root (:attr:`rootpath`), in POSIX form."""
        target = path.parent if path.name == "tasks.md" else path
        assert self.rootpath is not None
        try:
            return target.resolve().relative_to(self.rootpath.resolve()).as_posix()
        except ValueError:
            return target.resolve().as_posix()

    def section(self, name: str) -> dict[str, Any]:
        """A sub-table of the config (``[tool.seqrun.backends]`` → ``section("backends")``)."""
        value = self.inicfg.get(name, {})
        return value if isinstance(value, dict) else {}


# -- plugin manager ----------------------------------------------------------------


_NOT_IN_DICT = object()
#: Types of module values that are never a hook implementation (not routines
#: in pluggy's sense): skipped at once when a plugin module is registered.
_NEVER_ROUTINES = frozenset({ModuleType, str, bytes, int, float, bool, type(None), tuple, list, dict,
                             set, frozenset})


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
        # Registering reads every name of every plugin (1,400 at start-up). A
        # module's plain value (a class, a constant, an imported module) is
        # never a routine, and a function's marker is its own attribute: both
        # are answered here, without pluggy's getattr and inspect.isroutine;
        # anything else (an instance's methods, a module's __getattr__) goes
        # through pluggy as before.
        value = plugin.__dict__.get(name, _NOT_IN_DICT) if type(plugin) is ModuleType else _NOT_IN_DICT
        if type(value) is FunctionType:
            opts = getattr(value, "seqrun_impl", None)
            if not isinstance(opts, dict):  # as pluggy: anything else is no marker
                opts = None
        elif type(value) in _NEVER_ROUTINES or isinstance(value, type):
            return None
        else:
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


#: The long options of :func:`_early_parser`: what argparse may take an
#: abbreviation (or ``--`` and ``--=x``) for.
_EARLY_LONG = ("--spec", "--noconftest")


def early_parse(argv: Sequence[str]) -> argparse.Namespace:
    """``-p`` and ``--noconftest``, before any plugin is loaded.

    Most command lines hold neither, nor anything argparse could read as
    one of the early options: their answer is known without building the
    early parser (a parser, every start). Any other line goes through it,
    with its errors."""
    for arg in argv:
        if arg.startswith("-p") or (arg.startswith("--") and any(
                option.startswith(arg.split("=", 1)[0]) for option in _EARLY_LONG)):
            return _early_parser().parse_known_args(list(argv))[0]
    return argparse.Namespace(plugins=[], noconftest=False)


class _GroupPlace:
    """Where a group's options appear in the help (set by the first call that says)."""

    __slots__ = ("created", "order", "common")

    def __init__(self, created: int, order: int | None = None, common: bool | None = None) -> None:
        self.created = created
        self.order = order
        self.common = common


#: The place of a group no call gave an order: after the ordered ones.
DEFAULT_GROUP_ORDER = 50


class Parser(_ArgumentParser):
    """argparse, with option groups as pytest's ``parser.getgroup`` has them.

    Many plugins add to one group (``running``, ``agent``): asking for a
    group by a name already made returns that group, so each heading appears
    once. Where a group is made it may declare its place — ``order`` (lower
    first; groups without one come after, in the order they were made) and
    ``common`` (shown by ``--help``; ``--help-all`` shows every group, and
    ``--help`` lists the others' option names in a few lines). Options work
    the same whether or not their group is shown.

    An unknown option is a usage error naming the closest known one.
    """

    def __init__(self, **kwargs: Any) -> None:
        # Set first: argparse's own __init__ makes its two default groups.
        self._named_groups: dict[str, argparse._ArgumentGroup] = {}
        self._places: dict[str, _GroupPlace] = {}
        self.preparsing = False
        super().__init__(add_help=False, **kwargs)
        # argparse's "positional arguments" and "options" stay as argparse has them.
        self._named_groups.clear()
        self._places.clear()

    def getgroup(self, name: str, description: str | None = None, *,
                 order: int | None = None, common: bool | None = None) -> argparse._ArgumentGroup:
        """The option group ``name``, made on first use; ``order`` and
        ``common`` are kept from the first call that gives them."""
        group = self._named_groups.get(name)
        if group is None:
            group = super().add_argument_group(name, description)
            self._named_groups[name] = group
            self._places[name] = _GroupPlace(created=len(self._places))
        elif description and not group.description:
            group.description = description
        place = self._places[name]
        if place.order is None and order is not None:
            place.order = order
        if place.common is None and common is not None:
            place.common = common
        return group

    def add_argument_group(self, *args: Any, **kwargs: Any) -> argparse._ArgumentGroup:
        """argparse's call, answered as :meth:`getgroup` (one group per title)."""
        title = args[0] if args else kwargs.pop("title", None)
        if title is None:
            return super().add_argument_group(*args, **kwargs)
        description = args[1] if len(args) > 1 else kwargs.pop("description", None)
        return self.getgroup(title, description, **kwargs)

    # -- help ---------------------------------------------------------------------------

    def _ordered_groups(self) -> list[argparse._ArgumentGroup]:
        def key(group: argparse._ArgumentGroup) -> tuple[int, int]:
            place = self._places[group.title or ""]
            return (DEFAULT_GROUP_ORDER if place.order is None else place.order, place.created)

        return sorted(self._named_groups.values(), key=key)

    def format_help(self, full: bool = False) -> str:  # type: ignore[override]
        groups = self._ordered_groups()
        shown = [g for g in groups if full or self._places[g.title or ""].common]
        positional = [g for g in self._action_groups if g not in self._named_groups.values()
                      and g._group_actions]
        saved = self._action_groups
        self._action_groups = positional + shown
        try:
            text = super().format_help()
        finally:
            self._action_groups = saved
        hidden = [g for g in groups if g not in shown and g._group_actions]
        if hidden:
            import textwrap

            width = max(40, self._get_formatter()._width)
            lines = ["more options (seqrun --help-all describes them all):"]
            for group in hidden:
                names = [_option_name(a) for a in group._group_actions if a.help is not argparse.SUPPRESS]
                lines.append(textwrap.fill(f"{group.title}: {', '.join(names)}", width,
                                           initial_indent="  ", subsequent_indent="    ",
                                           break_on_hyphens=False))
            text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
        return text

    def print_help(self, file: Any = None, full: bool = False) -> None:  # type: ignore[override]
        self._print_message(self.format_help(full), file or sys.stdout)

    # -- parsing ------------------------------------------------------------------------

    def preparse(self, args: list[str]) -> argparse.Namespace:
        """The options known so far, before conftest.py files add theirs:
        unknown options are left for :meth:`parse_args`, and ``--help`` waits."""
        self.preparsing = True
        try:
            return self.parse_known_args(args)[0]
        finally:
            self.preparsing = False

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return namespace

    def _unrecognized(self, extras: list[str]) -> str:
        options = [o for o in extras if o.startswith("-") and o != "-"]
        if not options:
            return f"unrecognized arguments: {' '.join(extras)}"
        name = options[0].split("=", 1)[0]
        known = [s for a in self._actions for s in a.option_strings]
        return f"unrecognized option {name}{did_you_mean(name, known)}"


def _option_name(action: argparse.Action) -> str:
    """The name an option is listed by: its first long spelling."""
    return next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])


class HelpAction(argparse.Action):
    """``-h``/``--help`` (the common groups) and ``--help-all`` (every group)."""

    def __init__(self, option_strings: list[str], dest: str, full: bool = False, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, **kwargs)
        self.full = full

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any,
                 option_string: str | None = None) -> None:
        assert isinstance(parser, Parser)
        if parser.preparsing:
            return  # printed by the full parse, with the options of conftest.py files
        parser.print_help(full=self.full)
        parser.exit()


def build_parser(pm: pluggy.PluginManager) -> Parser:
    parser = Parser(
        prog="seqrun",
        description="Run the tasks of a spec one at a time through a coding-agent CLI.",
        usage="seqrun [PATH | PATH::TASKID ...] [options]",
        allow_abbrev=False,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="a spec folder, a tasks.md file, or a folder of specs (default: the .kiro/specs "
        "found from here upwards, up to the git root); PATH::ID selects one task and its subtasks",
    )
    pm.hook.seqrun_addoption.call_historic(kwargs=dict(parser=parser, pluginmanager=pm))
    return parser


def spec_paths(paths: Sequence[str], specs: Sequence[str],
               default: Sequence[Path] = (DEFAULT_SPECS_ROOT,)) -> list[Path]:
    raw = [p.split("::", 1)[0] for p in (*paths, *specs)]
    return [Path(p) for p in raw] or list(default)


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
            unknown.append(f"{inipath}: unknown option {key!r} ignored"
                           f"{did_you_mean(dest, [a.dest for a in parser._actions])}")
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
    early = early_parse(argv)
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
    parser = build_parser(pm)
    # The PATHs, as pytest's preparse finds them: options of plugins and
    # -p modules are known; a conftest.py's are not yet (their values may land
    # among the paths, so only existing paths load conftest files).
    known = parser.preparse(list(argv))
    given = [invocation_dir / p for p in spec_paths(known.paths, getattr(known, "spec", None) or [], default=())]
    # The project, as pytest finds its rootdir: upwards from the first PATH,
    # else from here, up to the git root; the config file is looked for the
    # same way, so both belong to the same project.
    start = (given[0] if given[0].is_dir() else given[0].parent) if given else invocation_dir
    project = find_project(start)
    specs_root = project / DEFAULT_SPECS_ROOT if project is not None and not given else None
    if not early.noconftest and not pm.is_blocked("conftest"):
        # Registered plugins' seqrun_addoption is historic: a conftest's
        # options are added to ``parser`` as it is registered.
        default = [specs_under(specs_root, invocation_dir)] if specs_root else []
        for conftest in conftest_candidates([p for p in given if p.exists()] or default):
            register_conftest(pm, conftest)

    inipath, inicfg = find_config_file(start)
    warnings = _apply_file_defaults(parser, inicfg, inipath) if inipath else []
    option = parser.parse_args(list(argv))
    config = Config(pm, invocation_dir, option, list(option.paths) + list(option.spec or []),
                    list(argv), inipath, inicfg, rootpath=(project or invocation_dir).resolve(),
                    specs_root=specs_root)
    config.stash[config_warnings_key] = warnings
    return config
