"""The files of one specs root's cache folder, for :mod:`seqrun.reports.cache`.

What the cache holds and when it is written is told there; this module reads
and writes the files, and is imported only when a cache is read (``--lf``,
``--ff``, ``--sw``, ``--cache-clear``, or a task's report): a plain listing
never loads it.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrun.atomicfile import atomic_write
from seqrun.reports.cache import cache_dir
from seqrun.sharedjson import update_json

LASTFAILED = "lastfailed.json"
STEPWISE = "stepwise.json"
GITIGNORE = "# written by seqrun: the cache between runs\n*\n"
CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by seqrun.\n"
                "# For information about cache directory tags, see https://bford.info/cachedir/spec.html\n")


@dataclass
class Cache:
    """The JSON files of one specs root's cache folder."""

    root: Path
    lastfailed: dict[str, bool] = field(default_factory=dict)
    """What the file held when this run read it, with this run's changes."""
    stepwise: str | None = None
    _lastfailed_changes: dict[str, bool] = field(default_factory=dict)
    """This run's changes, by key: True for a failure recorded, False for one forgotten."""
    _saved_stepwise: str | None = None

    @property
    def folder(self) -> Path:
        return cache_dir(self.root)

    @classmethod
    def load(cls, root: Path) -> Cache:
        cache = cls(root)
        data = cache._read(LASTFAILED)
        if isinstance(data, dict):
            cache.lastfailed = {str(k): True for k, v in data.items() if v}
        data = cache._read(STEPWISE)
        if isinstance(data, dict) and isinstance(data.get("last_failed"), str):
            cache.stepwise = data["last_failed"]
        cache._saved_stepwise = cache.stepwise
        return cache

    def record_failed(self, key: str) -> None:
        self.lastfailed[key] = True
        self._lastfailed_changes[key] = True

    def forget_failed(self, key: str) -> None:
        # Only this spec's run writes this spec's keys (the spec lock): a key
        # not read at the start is not in the file.
        if self.lastfailed.pop(key, None) is not None or key in self._lastfailed_changes:
            self._lastfailed_changes[key] = False

    def _read(self, name: str) -> Any:
        # A missing or damaged cache file is an empty cache, never an error.
        try:
            text = (self.folder / name).read_text("utf-8")
        except (OSError, ValueError):
            return None
        import json  # only with a file to read: a listing of a new project does without

        try:
            return json.loads(text)
        except ValueError:
            return None

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.lastfailed = {}
        self.stepwise = None
        self._lastfailed_changes = {}
        self._saved_stepwise = None

    def save(self, with_stepwise: bool) -> None:
        if self._lastfailed_changes:
            self._ensure_folder()
            update_json(self.folder / LASTFAILED, self._merge_lastfailed)
            self._lastfailed_changes = {}
        if with_stepwise and (self.stepwise != self._saved_stepwise or not (self.folder / STEPWISE).exists()):
            self._write(STEPWISE, {"last_failed": self.stepwise})
            self._saved_stepwise = self.stepwise

    def _merge_lastfailed(self, on_disk: dict[str, Any]) -> dict[str, Any]:
        """This run's changes applied to what the file holds now (other runs'
        entries kept as they are)."""
        merged = {str(k): True for k, v in on_disk.items() if v}
        for key, failed in self._lastfailed_changes.items():
            if failed:
                merged[key] = True
            else:
                merged.pop(key, None)
        self.lastfailed = merged
        return dict(sorted(merged.items()))

    def _write(self, name: str, data: Any) -> None:
        import json

        self._ensure_folder()
        text = json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        atomic_write(self.folder / name, text.encode("utf-8", errors="replace"))

    def _ensure_folder(self) -> None:
        from seqrun.paths import seqrun_dir

        seqrun_dir(self.root)  # .seqrun/ with its own .gitignore
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, content in ((".gitignore", GITIGNORE), ("CACHEDIR.TAG", CACHEDIR_TAG)):
            if not (self.folder / name).exists():
                (self.folder / name).write_text(content, encoding="utf-8")
