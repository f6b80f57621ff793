"""Find and end every process an agent started, however it tried to leave.

Killing the agent's pid is not enough: agent CLIs start language servers,
shells, test runners and dev servers, some of which call ``setsid`` or
daemonize (fork twice so their parent dies and they are reparented).  A
:class:`ProcessTree` remembers the agent's processes by walking ``/proc``:

* descendants by parent links, starting from the agent and from every process
  remembered earlier (so a grandchild stays known after its parent died);
* every process in the agent's session (the agent is a session leader);
* processes carrying the run's *token* in their initial environment (an
  environment variable every descendant inherits unless it scrubs it), which
  finds daemons that double-forked between two snapshots.

Each process is identified by ``(pid, start time)`` so a recycled pid is never
signalled.  seqrun itself, its ancestors and processes that started before the
agent are never members.  While :func:`child_subreaper` is active, orphans
reparent to seqrun instead of init, so they remain reachable and their zombies
are reaped here (only theirs: other children of seqrun are left to their
owners' ``wait``).  A tree made with ``orphans=True`` counts every child of
seqrun outside seqrun's own session that started after the agent as one of
those orphans: that is what finds a daemon whose parent chain is gone, that
left the agent's session and scrubbed the token from its environment (the
agent is spawned in a new session; seqrun's own helpers, such as tmux
clients, stay in seqrun's session).

A :class:`TreeRecord` describes a tree so that another process can find it
again after seqrun itself was killed (:func:`end_survivors`): the agent's
session, the token, and the members that left both, by pid and start time.
It cannot name a daemon that left the session and scrubbed its environment
in the instant (at most :data:`~seqrun.terminal.ptyexec._ADOPTION_CHECK_EVERY`
plus a write) between being orphaned and being recorded; a cgroup per agent
would close that gap, and is not used (see the README).

Linux only (``/proc``; the subreaper needs ``prctl``, Linux 3.4+); elsewhere
the tree degrades to the agent's pid alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = ["ProcessTree", "TreeRecord", "kill_tree", "child_subreaper", "end_survivors", "exit_status"]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

#: Environment variable carrying a run's token to every descendant.
TOKEN_VAR = "SEQRUN_TREE_TOKEN"


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    sid: int
    start: int
    """Start time in clock ticks since boot: with the pid, a unique identity."""
    state: str

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


#: Processes outside the agent's session kept in a :class:`TreeRecord`.
RECORD_LIMIT = 64


@functools.cache
def boot_id() -> str:
    """This boot's id: start times are only comparable within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class TreeRecord:
    """What another seqrun needs to end an agent's tree after we died.

    Written into the state file's ``running`` record, so a run that follows a
    ``kill -9`` of seqrun can end the survivors (:func:`end_survivors`).  The
    agent's session (``sid``) finds every process that stayed in it, the
    ``token`` every process that kept its environment; ``others`` names the
    processes that left both, each by ``(pid, start time)``.
    """

    boot_id: str
    token: str
    pid: int = 0
    """The agent (0: not started yet)."""
    start: int = 0
    """The agent's start time (field 22 of ``/proc/<pid>/stat``)."""
    pgid: int = 0
    sid: int = 0
    others: tuple[tuple[int, int], ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"boot_id": self.boot_id, "token": self.token, "pid": self.pid, "start": self.start,
                "pgid": self.pgid, "sid": self.sid, "others": [list(p) for p in self.others]}

    @classmethod
    def from_dict(cls, data: object) -> TreeRecord | None:
        """The record a state file holds, or None if it is not one."""
        if not isinstance(data, dict):
            return None
        try:
            others = tuple((int(p[0]), int(p[1])) for p in data.get("others") or ())
            record = cls(boot_id=str(data["boot_id"]), token=str(data.get("token") or ""),
                         pid=int(data.get("pid") or 0), start=int(data.get("start") or 0),
                         pgid=int(data.get("pgid") or 0), sid=int(data.get("sid") or 0), others=others)
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        return record


def exit_status(wait_status: int) -> int:
    """A ``waitpid`` status the way a shell reports it: code, or 128+signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _parse_stat(pid: int, data: bytes) -> ProcInfo | None:
    # The command name sits in parentheses and may contain spaces and ')'.
    close = data.rfind(b")")
    if close < 0:
        return None
    fields = data[close + 2 :].split()
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(fields[1]),
            sid=int(fields[3]),
            start=int(fields[19]),
            state=fields[0].decode("ascii", "replace"),
        )
    except (IndexError, ValueError):
        return None


def read_proc(pid: int) -> ProcInfo | None:
    """The process ``pid`` as ``/proc`` shows it now, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return _parse_stat(pid, f.read())
    except OSError:
        return None


def scan_proc() -> dict[int, ProcInfo]:
    """Every process visible in ``/proc``, by pid."""
    procs: dict[int, ProcInfo] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return procs
    for name in entries:
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None:
                procs[info.pid] = info
    return procs


def _has_token(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return False
    return (b"\0" + env).find(needle) >= 0


def _ancestors(pid: int) -> set[int]:
    """``pid`` and every process above it: never to be signalled."""
    seen = {pid, 0, 1}
    info = read_proc(pid)
    while info is not None and info.ppid not in seen:
        seen.add(info.ppid)
        info = read_proc(info.ppid)
    return seen


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's ``prctl``, looked up once: twice per agent run otherwise."""
    return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]


def _set_subreaper(on: bool) -> bool:
    """Set the child-subreaper flag; return its previous value."""
    prctl = _prctl()
    previous = ctypes.c_int(0)
    prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0)
    prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    return bool(previous.value)


def _is_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        flag = ctypes.c_int(0)
        _prctl()(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return bool(flag.value)


def _our_children(pid: int) -> list[int] | None:
    """Our children from ``/proc/<pid>/task/*/children`` (None: not available)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        except OSError:
            return None  # no CONFIG_PROC_CHILDREN: use the full scan
    return found


_subreaper_lock = threading.Lock()
_subreaper_users = 0
_subreaper_previous = False


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Make orphans of our descendants reparent to us for the duration.

    Without it a daemonized grandchild is adopted by init and can only be found
    again through its session or token.  The previous setting is restored when
    the last concurrent user leaves, so a long-lived seqrun does not collect
    unrelated orphans between runs.
    """
    global _subreaper_users, _subreaper_previous
    if not sys.platform.startswith("linux"):
        yield
        return
    with _subreaper_lock:
        if _subreaper_users == 0:
            try:
                _subreaper_previous = _set_subreaper(True)
            except (OSError, AttributeError):
                _subreaper_previous = False
        _subreaper_users += 1
    try:
        yield
    finally:
        with _subreaper_lock:
            _subreaper_users -= 1
            if _subreaper_users == 0:
                with contextlib.suppress(OSError, AttributeError):
                    _set_subreaper(_subreaper_previous)


def _signal(info: ProcInfo, sig: int) -> bool:
    """Send ``sig`` if ``info`` is still the same process; True if sent."""
    now = read_proc(info.pid)
    if now is None or now.start != info.start:
        return False
    try:
        os.kill(info.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ProcessTree:
    """The processes of one agent: remembered across snapshots, then ended."""

    def __init__(
        self, root: int, *, token: str | None = None, reap_root: bool = True, orphans: bool = False
    ) -> None:
        self.root = root
        self._reap_root = reap_root
        """False when someone else (a ``Popen``) waits for the root's status."""
        self._orphans = orphans
        """Our children outside our session, started after the root, are the
        tree's orphans: true while we are the subreaper of this one tree
        (a process that runs two trees at once must not claim each other's)."""
        self._self = os.getpid()
        self._own_sid = os.getsid(0)
        info = read_proc(root)
        self._root_start = info.start if info is not None else 0
        # Session membership only means "ours" when the root leads its session
        # (the agent is started with setsid); otherwise it is some shell's session.
        self._sid = info.sid if info is not None and info.sid == root else None
        if self._sid == os.getsid(0):
            self._sid = None
        self._needle = f"\0{TOKEN_VAR}={token}\0".encode() if token else None
        self._known: dict[int, ProcInfo] = {}
        if info is not None:
            self._known[root] = info
        self.statuses: dict[int, int] = {}
        """Shell-style exit statuses of members reaped here (our own children)."""

    @functools.cached_property
    def _excluded(self) -> set[int]:
        """seqrun and its ancestors: never members. Walked when first needed
        (a snapshot), not for every agent: a quick one that leaves nothing
        behind is never walked (:meth:`_nothing_left`)."""
        return _ancestors(self._self)

    @classmethod
    def left_by(cls, record: TreeRecord) -> ProcessTree:
        """The tree an earlier seqrun recorded, as far as it still exists.

        A recorded process counts only while its start time matches (a pid
        reused since is never touched); the session counts only while its
        leader is gone or is still the agent; the token finds the rest.
        """
        tree = cls(record.pid, token=record.token or None, reap_root=False)
        tree._root_start = record.start
        # sid 0 (the agent had not started) would match the kernel's threads.
        leads = record.sid > 1 and record.sid == record.pid and record.sid != os.getsid(0)
        tree._sid = record.sid if leads else None
        tree._known = {}
        for pid, start in ((record.pid, record.start), *record.others):
            info = read_proc(pid)
            if info is not None and info.start == start and pid not in tree._excluded:
                tree._known[pid] = info
        return tree

    def record(self, token: str) -> TreeRecord:
        """This tree as another process can find it again (see :class:`TreeRecord`).

        Only members that left the agent's session are listed: the session
        and the token find the others.
        """
        sid = self._sid or 0
        others = sorted((p.pid, p.start) for p in self._known.values()
                        if p.pid != self.root and p.sid != sid and not p.zombie)
        return TreeRecord(boot_id=boot_id(), token=token, pid=self.root, start=self._root_start,
                          pgid=sid, sid=sid,  # the agent leads its session and its group
                          others=tuple(others[-RECORD_LIMIT:]))

    def new_children(self, seen: set[int]) -> bool:
        """Whether a child of ours appeared that ``seen`` (updated) and the
        tree do not know: an orphan just adopted, worth a snapshot now.
        A few small reads, cheap enough to call many times a second."""
        children = _our_children(self._self) or ()
        fresh = [pid for pid in children if pid not in seen and pid not in self._known]
        seen.update(fresh)
        return bool(fresh)

    # -- membership -------------------------------------------------------

    def _candidate(self, p: ProcInfo, thorough: bool) -> bool:
        if p.pid in self._excluded or p.start < self._root_start:
            return False
        if self._sid is not None and p.sid == self._sid:
            return True
        if self._orphans and p.ppid == self._self and p.sid != self._own_sid:
            # Our child in another session that we did not spawn: an orphan
            # of the tree adopted by us (child subreaper), even when its
            # parent chain is gone and it dropped the token (a daemon that
            # double-forked, called setsid and exec'd with a clean environment).
            return True
        if self._needle is None:
            return False
        # Orphans adopted by us (subreaper) are checked at every snapshot; a
        # full environment scan only when it is time to kill.
        if p.ppid == self._self or thorough:
            return _has_token(p.pid, self._needle)
        return False

    def snapshot(self, *, thorough: bool = False) -> list[ProcInfo]:
        """Refresh membership; return the members alive now (not zombies)."""
        procs = scan_proc() if sys.platform.startswith("linux") else {}
        if not procs:
            return self._fallback_snapshot()
        leader = procs.get(self._sid) if self._sid is not None else None
        if leader is not None and leader.start != self._root_start:
            self._sid = None  # the agent's pid was recycled into a new session
        members: dict[int, ProcInfo] = {}
        for pid, old in self._known.items():
            cur = procs.get(pid)
            if cur is not None and cur.start == old.start:
                members[pid] = cur
        for p in procs.values():
            if p.pid not in members and self._candidate(p, thorough):
                members[p.pid] = p
        children: dict[int, list[ProcInfo]] = {}
        for p in procs.values():
            children.setdefault(p.ppid, []).append(p)
        todo = list(members)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child.pid not in members and child.pid not in self._excluded:
                    members[child.pid] = child
                    todo.append(child.pid)
        self._known = members
        return [p for p in members.values() if not p.zombie]

    def _fallback_snapshot(self) -> list[ProcInfo]:
        """Without /proc, only the root is known."""
        try:
            os.kill(self.root, 0)
        except OSError:
            return []
        return [ProcInfo(self.root, -1, -1, 0, "R")]

    # -- reaping -----------------------------------------------------------

    def reap(self) -> None:
        """Collect the zombies among members that are our children.

        Checking the start time first means a recycled pid that is now some
        other code's child is never waited for (which would steal its status).
        """
        for pid, info in list(self._known.items()):
            if pid in self.statuses or (pid == self.root and not self._reap_root):
                continue
            cur = read_proc(pid)
            if cur is None or cur.start != info.start or not cur.zombie:
                continue
            with contextlib.suppress(ChildProcessError):
                got, status = os.waitpid(pid, os.WNOHANG)
                if got == pid:
                    self.statuses[pid] = exit_status(status)

    def wait_root(self) -> int | None:
        """Reap the root if it exited (it is our child); its status or None."""
        if self.root in self.statuses or not self._reap_root:
            return self.statuses.get(self.root)
        try:
            got, status = os.waitpid(self.root, os.WNOHANG)
        except ChildProcessError:
            return None
        if got != self.root:
            return None
        self.statuses[self.root] = exit_status(status)
        return self.statuses[self.root]

    # -- killing -----------------------------------------------------------

    def kill(
        self,
        grace: float = 5.0,
        *,
        wait: Callable[[float], None] | None = None,
    ) -> int:
        """End every member: SIGTERM, up to ``grace`` seconds, then SIGKILL.

        ``wait(seconds)`` is called while waiting, so the caller can keep
        draining the pty (an agent blocked on a full pty cannot exit cleanly).
        Returns how many processes were signalled.
        """
        pause = wait or time.sleep
        signalled: set[tuple[int, int]] = set()

        def term(procs: list[ProcInfo]) -> None:
            for p in procs:
                if (p.pid, p.start) not in signalled and _signal(p, signal.SIGTERM):
                    _signal(p, signal.SIGCONT)  # a stopped process cannot handle TERM
                    signalled.add((p.pid, p.start))

        live = self.snapshot(thorough=True)
        term(live)
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            pause(min(0.05, max(0.0, deadline - time.monotonic())))
            self.reap()
            live = self.snapshot()
            term(live)  # children forked while handling SIGTERM
        if live or grace <= 0:
            signalled |= self._freeze_and_kill()
        self._wait_gone(pause)
        return len(signalled)

    def _freeze_and_kill(self) -> set[tuple[int, int]]:
        """SIGSTOP until no new member appears, then SIGKILL them all.

        Stopped processes cannot fork, so nothing escapes between the last
        snapshot and the kill.
        """
        stopped: dict[tuple[int, int], ProcInfo] = {}
        for _ in range(100):
            fresh = [p for p in self.snapshot(thorough=True) if (p.pid, p.start) not in stopped]
            if not fresh:
                break
            for p in fresh:
                if _signal(p, signal.SIGSTOP):
                    stopped[(p.pid, p.start)] = p
        for p in stopped.values():
            _signal(p, signal.SIGKILL)
        return set(stopped)

    def _wait_gone(self, pause: Callable[[float], None], limit: float = 3.0) -> None:
        """Wait until members are gone or reaped, reaping our zombies."""
        deadline = time.monotonic() + limit
        while True:
            self.reap()
            self.wait_root()
            self.snapshot()
            pending = [
                pid
                for pid, p in self._known.items()
                if pid not in self.statuses and (not p.zombie or self._ours_to_reap(p))
            ]
            if not pending or time.monotonic() >= deadline:
                return
            pause(0.02)

    def _ours_to_reap(self, p: ProcInfo) -> bool:
        return p.ppid == self._self and (p.pid != self.root or self._reap_root)

    def leftovers(self) -> list[ProcInfo]:
        """Members still alive once the root has exited."""
        if self._nothing_left():
            return []
        return [p for p in self.snapshot(thorough=True) if p.pid != self.root]

    def _nothing_left(self) -> bool:
        """True when no member can still be alive, known without a /proc scan.

        While we are the subreaper, every orphan of the tree becomes our
        child; so once the root has exited, a tree with survivors shows as a
        child of ours started after the root (or as a member we already knew).
        The full scan (every process, environments included) is then only
        needed when there is such a child — not after each quick agent.
        """
        if not _is_subreaper():
            return False
        root = read_proc(self.root)
        if root is not None and root.start == self._root_start and not root.zombie:
            return False
        children = _our_children(self._self)
        if children is None:
            return False
        for pid in children:
            info = read_proc(pid)
            if info is not None and info.start >= self._root_start and not info.zombie:
                return False
        for known in self._known.values():
            now = read_proc(known.pid) if known.pid != self.root else None
            if now is not None and now.start == known.start and not now.zombie:
                return False
        return True


def end_survivors(record: TreeRecord, grace: float = 5.0) -> int:
    """End what is left of a tree another seqrun recorded before it died.

    SIGTERM, ``grace`` seconds, then SIGKILL; processes started in another
    boot, reused pids and our own ancestors are never signalled.  Returns how
    many processes were signalled.
    """
    if not record.boot_id or record.boot_id != boot_id() or not (record.start or record.token):
        return 0
    return ProcessTree.left_by(record).kill(grace)


def kill_tree(pid: int, grace: float = 5.0, *, token: str | None = None) -> int:
    """End ``pid`` and every process of its tree; return how many were signalled.

    ``token`` (the value of ``SEQRUN_TREE_TOKEN`` the tree was started with)
    also finds descendants that daemonized away from it.  If ``pid`` is our
    child its status is left for its owner (e.g. ``Popen.wait``) to collect.
    """
    return ProcessTree(pid, token=token, reap_root=False).kill(grace)
