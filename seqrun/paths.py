"""Where seqrun keeps its files: ``<specs root>/.seqrun/`` and the agent's folder.

One place for the layout, so no plugin has to import the runner to find it:

- ``.seqrun/logs/<spec>/<task id>/<attempt>.log`` and ``<attempt>.prompt.md``:
  every byte one attempt's agent printed, and the prompt it got. Attempts are
  numbered over the task's life, so a file is never written by two runs;
- ``.seqrun/cache/``, ``.seqrun/locks/``, ``.seqrun/assign/``.

``<spec>`` (the spec's name: its path relative to the specs root) and
``<task id>`` go through :func:`safe_name`: one path component each, and
one-to-one, so no two specs (or tasks) ever share a log folder or a lock.

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


#: How a name that had to be changed ends: ``-`` and the first hex digits of
#: its SHA-256. A name that already ends so is changed too (see safe_name).
_DIGEST_LENGTH = 10
#: The longest safe name, in UTF-8 bytes (a path component may have 255).
_SAFE_BYTES = 100


def name_digest(name: str) -> str:
    """A short, stable hash of ``name`` (any string, lone surrogates included)."""
    import hashlib  # only for names that need it: most are safe as they are

    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_LENGTH]


def looks_digested(name: str) -> bool:
    """Whether ``name`` ends the way a changed name does (``-`` and the hash)."""
    tail = name[-_DIGEST_LENGTH - 1:]
    return (len(tail) == _DIGEST_LENGTH + 1 and tail[0] == "-"
            and all(c in "0123456789abcdef" for c in tail[1:]))


def safe_name(name: str) -> str:
    """``name`` as one path component: letters, digits, ``._~-``; one-to-one.

    A name made only of those (``~`` for repeated task ids, ``1.1~2``), not starting or ending with ``.`` and at most
    100 bytes long, is used as it is (so existing log folders and locks keep
    their names). Any other name is cleaned (other characters become ``_``,
    cut to fit) and gets ``-`` and a hash of the original appended: ``feat x``
    and ``feat_x`` never share a folder. A name that already ends like a
    hashed one is hashed too, so a hashed name never equals a name kept as it is.
    """
    cleaned = "".join(c if c.isalnum() or c in "._~-" else "_" for c in name).strip(".")
    if cleaned == name and name and len(name.encode("utf-8")) <= _SAFE_BYTES and not looks_digested(name):
        return name
    room = _SAFE_BYTES - _DIGEST_LENGTH - 1
    head = cleaned.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(".")
    return f"{head or 'spec'}-{name_digest(name)}"


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
    """The agent's working directory (resolved once per run): ``--workdir``
    (relative to where seqrun was started), else the project root — the
    folder holding ``.kiro/specs`` — even when seqrun was started in a
    sub-folder of it."""
    cached = config.stash.get(workdir_key, None)
    if cached is None:
        chosen = config.option.workdir
        cached = (Path(chosen) if chosen else config.rootpath or config.invocation_dir).resolve()
        config.stash[workdir_key] = cached
    return cached
