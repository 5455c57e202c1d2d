"""Directories that appear whole or not at all: temporary siblings, their locks, atomic
replacement, and the sweep of what dead builds left behind.

A build writes into a temporary sibling of its output, ``.NAME.tmp-<pid>-<start>-<nonce>``
(``start``: the process's start time on Linux, 0 where unknown), and holds an exclusive
``flock`` on that directory while it lives. The kernel drops the lock when the process dies,
however it dies, so a later build (:func:`sweep_stale_temps`) tells debris from a live build by
taking the lock: a directory whose lock it gets is stale, unless its owner (pid and start time)
is still running, which covers the instant between creating a directory and locking it. (The
``.NAME.tmp-<12 hex>`` directories of older glints, which took no lock, are stale once nothing
in them has changed for an hour.)

Replacing an existing ``NAME`` (:func:`install`):

- **Linux**: ``renameat2(RENAME_EXCHANGE)`` swaps the new directory and ``NAME`` in one step,
  so ``NAME`` is always a whole index; the previous one, now at the temporary name, is removed.
- **Elsewhere** (or a filesystem without the exchange): two renames, ``NAME`` to
  ``.NAME.old-*`` then the new one to ``NAME``. A process killed between them leaves ``NAME``
  missing; the next build, sweep or reader of ``NAME`` puts the ``.old-*`` directory back
  (:func:`restore_interrupted`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "fault_point",
    "fsync_path",
    "install",
    "lock_dir",
    "rename_noreplace",
    "restore_interrupted",
    "sweep_stale_temps",
    "temp_path",
    "try_lock_dir",
]

log = logging.getLogger(__name__)

_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<role>tmp|old)-(?P<pid>\d+)-(?P<start>\d+)-[0-9a-f]{8}")
# glint before format 3 named them .NAME.tmp-<12 hex> and took no lock: judged by their age
_LEGACY = re.compile(r"\.(?P<name>.+)\.(?P<role>tmp|old)-[0-9a-f]{12}")
_LEGACY_STALE_SECONDS = 3600  # a live writer touches one of its files far more often
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
# errors meaning "this kernel, libc or filesystem cannot do it": fall back, do not fail
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def fault_point(step: str) -> None:
    """Test-only fault injection: ``GLINT_FAULT_AFTER=<step>`` kills this process with
    SIGKILL right after ``step`` of a write, so the crash tests can die exactly between two
    renames. Steps: tmp-created, files-written, manifest-written, exchanged (Linux
    replacement), old-moved and renamed (two-step replacement)."""
    if os.environ.get("GLINT_FAULT_AFTER") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _start_time(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (0 if unknown: not Linux, or
    no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # the command name (field 2) may hold spaces and ')': count fields after the last ')'
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def temp_path(out: Path, role: str) -> Path:
    """A fresh sibling name for ``out`` (``role``: ``tmp`` or ``old``) that names its owner."""
    pid = os.getpid()
    return out.parent / f".{out.name}.{role}-{pid}-{_start_time(pid)}-{secrets.token_hex(4)}"


def lock_dir(path: Path) -> int:
    """An fd holding an exclusive flock on directory ``path``, once whoever holds it lets go."""
    fd = _open_dir(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def try_lock_dir(path: Path) -> int | None:
    """:func:`lock_dir`, or None at once if another process holds the lock."""
    fd = _open_dir(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _owner_alive(pid: int, start: int) -> bool:
    return start != 0 and _start_time(pid) == start


@dataclass(frozen=True)
class _Leftover:
    path: Path
    out: Path
    role: str
    pid: int
    start: int
    mtime: float


def _leftovers(parent: Path, name: str | None) -> list[_Leftover]:
    """The temporary directories in ``parent`` (of index directory ``name`` only, if given):
    the ``.old-*`` ones first, newest first (the one to restore is the last index written)."""
    found = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        match = _TEMP.fullmatch(entry.name) or _LEGACY.fullmatch(entry.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        out = Path(parent) / match["name"]
        owner = match.groupdict()
        pid, start = int(owner.get("pid") or 0), int(owner.get("start") or 0)
        found.append(_Leftover(Path(entry.path), out, match["role"], pid, start, mtime))
    found.sort(key=lambda item: (item.role != "old", -item.mtime))
    return found


def _claim(leftover: _Leftover) -> int | None:
    """An fd locking ``leftover`` if it is stale (its builder died), else None."""
    try:
        fd = try_lock_dir(leftover.path)
    except OSError:  # gone already (another sweep did it), or not ours to open
        return None
    if fd is not None and (
        # its builder runs, between creating and locking it or while cleaning up
        _owner_alive(leftover.pid, leftover.start)
        or (leftover.pid == 0 and _recently_written(leftover.path))
    ):
        os.close(fd)
        return None
    return fd


def _recently_written(path: Path) -> bool:
    """Whether ``path`` or a file in it changed within the last hour (an older glint's
    directory, whose builder may still be writing it)."""
    try:
        with os.scandir(path) as entries:
            times = [e.stat(follow_symlinks=False).st_mtime for e in entries]
        newest = max([path.stat().st_mtime, *times])
    except OSError:
        return True  # cannot tell: leave it
    return time.time() - newest < _LEGACY_STALE_SECONDS


def sweep_stale_temps(parent: Path, name: str | None = None) -> list[Path]:
    """Remove the temporary directories dead builds left in ``parent`` (for index directory
    ``name`` only, if given), after putting back any index a dead two-step replacement had
    moved aside. Directories of live builds are left alone. Returns the paths removed."""
    removed: list[Path] = []
    for leftover in _leftovers(Path(parent), name):
        fd = _claim(leftover)
        if fd is None:
            continue
        try:
            if leftover.role == "old" and not _exists(leftover.out):
                _put_back(leftover.path, leftover.out)
                continue  # restored, or kept for a process that has the right to
            shutil.rmtree(leftover.path, ignore_errors=True)
            if not _exists(leftover.path):
                removed.append(leftover.path)
                log.info("removed %s, left by a build that died", leftover.path)
        finally:
            os.close(fd)
    return removed


def restore_interrupted(out: Path) -> bool:
    """If ``out`` is missing because a replacement died between its two renames, put the
    previous index back; True if it did. (Readers call it too, and may lack the right to.)"""
    if _exists(out):
        return False
    for leftover in _leftovers(out.parent, out.name):
        if leftover.role != "old":
            break
        fd = _claim(leftover)
        if fd is None:
            continue
        try:
            if _put_back(leftover.path, out):
                return True
        finally:
            os.close(fd)
    return False


def _put_back(old: Path, out: Path) -> bool:
    try:
        if not rename_noreplace(old, out):
            return False
    except OSError:
        return False  # not ours to rename (a read-only reader): the next build will
    log.warning("restored %s from %s, moved aside by a replacement that died", out, old.name)
    return True


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


@functools.cache
def _libc_renameat2() -> Any:
    """libc's ``renameat2`` (glibc 2.28 and later), or None."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        function.argtypes += [ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where the kernel, libc or filesystem lacks it."""
    if sys.platform != "linux" or os.environ.get("GLINT_NO_RENAME_EXCHANGE") == "1":
        return False  # the variable forces the portable path everywhere, for the tests
    function = _libc_renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists; False if it does."""
    try:
        if _renameat2(src, dst, _RENAME_NOREPLACE):
            return True
    except FileExistsError:
        return False
    if _exists(dst):  # portable path: a race with a creator of dst is possible, and rare
        return False
    os.rename(src, dst)
    return True


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's entries are durable once it is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_current(out: Path) -> int | None:
    """A lock on the directory now at ``out`` (None if ``out`` is gone): taken, then checked
    to be still the one at ``out``, since the replacement that held it may have moved it."""
    while True:
        try:
            fd = lock_dir(out)
        except FileNotFoundError:
            return None
        try:
            here, locked = os.lstat(out), os.fstat(fd)
        except FileNotFoundError:
            os.close(fd)
            return None
        if (here.st_dev, here.st_ino) == (locked.st_dev, locked.st_ino):
            return fd
        os.close(fd)


def install(tmp: Path, out: Path, *, replace: bool) -> bool:
    """Move the finished directory ``tmp`` to ``out``; with ``replace``, an existing ``out``
    is swapped out and removed (on Linux ``out`` never goes missing: see the module's
    docstring). False if ``out`` exists and not ``replace``."""
    while True:
        if rename_noreplace(tmp, out):
            fsync_path(out.parent)
            return True
        if not replace:
            return False
        old_lock = _lock_current(out)  # another replacement of out finishes first
        if old_lock is not None:
            break
    try:
        if _renameat2(tmp, out, _RENAME_EXCHANGE):
            fsync_path(out.parent)
            fault_point("exchanged")
            old = tmp  # the previous index now sits at the temporary name, still locked
        else:
            old = temp_path(out, "old")
            os.rename(out, old)
            fault_point("old-moved")
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)
                raise
            fsync_path(out.parent)
            fault_point("renamed")
        shutil.rmtree(old, ignore_errors=True)
    finally:
        os.close(old_lock)
    return True
