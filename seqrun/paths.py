"""Where seqrun keeps its files: ``<specs root>/.seqrun/`` and the agent's folder.

One place for the layout, so no plugin has to import the runner to find it:

- ``.seqrun/logs/<spec>/<task id>/<attempt>.log`` and ``<attempt>.prompt.md``:
  every byte one attempt's agent printed, and the prompt it got. Attempts are
  numbered over the task's life, so a file is never written by two runs;
- ``.seqrun/cache/``, ``.seqrun/locks/``, ``.seqrun/assign/``.

The folder carries its own ``.gitignore`` (``*``), so nothing in it is committed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from seqrun.stash import StashKey

if TYPE_CHECKING:
    from seqrun.config import Config
    from seqrun.nodes import Spec, Task

workdir_key = StashKey[Path]()


def specs_root(spec: Spec) -> Path:
    """The folder that holds the spec folders (``.kiro/specs``)."""
    return spec.folder.parent


def seqrun_dir(root: Path) -> Path:
    """``<root>/.seqrun`` (``root`` is a specs root), created with its .gitignore."""
    folder = root / ".seqrun"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("# written by seqrun: logs, prompts, cache\n*\n")
    return folder


def safe_name(name: str) -> str:
    """``name`` as one path component: letters, digits, ``._-``; others become ``_``."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip(".")
    return cleaned[:100] or "spec"


def attempt_dir(task: Task) -> Path:
    """The folder of ``task``'s attempt logs and prompts."""
    assert task.spec is not None
    return seqrun_dir(specs_root(task.spec)) / "logs" / safe_name(task.spec.name) / safe_name(task.id)


def highest_attempt_on_disk(folder: Path) -> int:
    """The highest attempt number of a log or prompt file in ``folder`` (0: none)."""
    highest = 0
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return 0
    for name in names:
        head = name.split(".", 1)[0]
        if head.isdigit():
            highest = max(highest, int(head))
    return highest


def workdir(config: Config) -> Path:
    """The agent's working directory (resolved once per run)."""
    cached = config.stash.get(workdir_key, None)
    if cached is None:
        chosen = config.option.workdir
        cached = (Path(chosen) if chosen else config.invocation_dir).resolve()
        config.stash[workdir_key] = cached
    return cached
