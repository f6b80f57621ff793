"""The ``--junitxml`` plugin: its options and hooks, light to import.

The writer (:mod:`seqrun.reports.junitxml`) is imported only when
``--junitxml`` is given; the options are checked here, before anything runs.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pluggy

from seqrun.config import Config, UsageError
from seqrun.hookspec import hookimpl

FAMILIES = ("xunit2", "xunit1")
DEFAULT_SUITES_NAME = "seqrun"


def _check_options(config: Config) -> tuple[Path, str, str] | None:
    """Validate the options (config-file values bypass argparse's checks)."""
    raw = config.getoption("junit_xml")
    if not raw:
        return None
    if not isinstance(raw, (str, os.PathLike)):
        raise UsageError(f"junit_xml must be a path, got {raw!r}")
    family = config.getoption("junit_family") or "xunit2"
    if family not in FAMILIES:
        raise UsageError(f"--junit-family must be one of {', '.join(FAMILIES)}, got {family!r}")
    name = config.getoption("junit_suite_name") or DEFAULT_SUITES_NAME
    if not isinstance(name, str):
        raise UsageError(f"junit_suite_name must be a string, got {name!r}")
    path = Path(os.path.expanduser(os.fspath(raw)))
    if not path.is_absolute():
        path = config.invocation_dir / path
    if path.is_dir():
        raise UsageError(f"--junitxml {raw}: is a directory")
    # Fail now, not after a night of tasks: the nearest existing folder must
    # be a writable directory (the missing ones are created at the end).
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--junitxml {raw}: cannot create a file under {ancestor}")
    return path, family, name


@hookimpl
def seqrun_addoption(parser: argparse.ArgumentParser, pluginmanager: pluggy.PluginManager) -> None:
    group = parser.add_argument_group("JUnit XML report")
    group.add_argument("--junitxml", "--junit-xml", dest="junit_xml", default=None, metavar="PATH",
                       help="write a JUnit XML report (one testsuite per spec) to PATH at the end")
    group.add_argument("--junit-family", dest="junit_family", choices=FAMILIES, default="xunit2",
                       help="xunit2 (default): valid against junit-10.xsd; xunit1: adds file/line "
                       "to each testcase for CI annotations")
    group.add_argument("--junit-suite-name", dest="junit_suite_name", default=None, metavar="NAME",
                       help=f"name of the <testsuites> root (default {DEFAULT_SUITES_NAME!r}); "
                       "each <testsuite> is named after its spec")


@hookimpl
def seqrun_configure(config: Config) -> None:
    checked = _check_options(config)
    if checked is None:
        return
    path, family, name = checked
    from seqrun.reports.junitxml import LogXML

    config.pluginmanager.register(LogXML(config, path, family, name), "junitxml-logger")


@hookimpl
def seqrun_unconfigure(config: Config) -> None:
    plugin = config.pluginmanager.get_plugin("junitxml-logger")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
