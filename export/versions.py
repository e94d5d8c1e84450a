"""Versioned export directories under a base path, published atomically the way TF Serving expects them.

TF Serving (and ``serving/``) watch ``<base_path>/<version>/`` where ``<version>`` is a directory name made only
of digits; every other name is ignored. An export is therefore written to a staging directory
``<base_path>/.tmp-<uuid>`` (same file system, a name no loader picks up) and published with one ``rename`` to
the next free integer version, so a reader listing the base path sees either no new version or a complete one.

A version is never overwritten: ``rename`` onto an existing non-empty directory fails, and then the next number
is tried (two exporters racing for the same number both land, on different numbers). On object stores
(``gs://``, ``s3://``) there is no atomic directory rename; ``tf.io.gfile.rename`` is used there and a reader may
see a version while it is being copied, so point TF Serving at a local or POSIX file system for that guarantee.

Staging directories of killed exports. Each export holds an exclusive ``flock`` on ``<base_path>/.tmp-<uuid>.lock``
for as long as its staging directory ``.tmp-<uuid>`` exists (taken before the directory is made, dropped after it
is published or removed); the operating system drops the lock when the process dies, however it dies. Every
:func:`staging_dir` call first removes the stale staging directories of its base path
(:func:`remove_stale_staging`):

* ``.tmp-<uuid>`` whose lock file can be locked: its exporter is gone (killed, crashed, its machine restarted);
  the directory and its lock file are removed. A lock that is held means an export still running: kept.
* ``.tmp-<uuid>`` without a lock file (left by a tfrec version before the locks, or by a tool that does not
  take them): removed once nothing in it has changed for :data:`STALE_UNLOCKED_SECONDS` (a day).
* a lock file whose directory is gone and that can be locked: removed.

The lock works across processes of one machine and across machines on file systems whose ``flock`` does (local
disks, NFSv4). On object stores (``gs://``, ``s3://``) nothing is locked or removed.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import threading
import time
import uuid
from typing import Dict, List

import tensorflow as tf

try:  # POSIX; elsewhere staging directories are not locked (and only the age rule removes them)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

STAGING_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
#: Age after which an unlocked staging directory (no lock file) counts as abandoned.
STALE_UNLOCKED_SECONDS = 24 * 3600

_held: Dict[str, int] = {}  # staging directory -> file descriptor of its locked lock file
_held_guard = threading.Lock()


def is_version_name(name: str) -> bool:
    """Whether ``name`` is a version directory name (all ASCII digits, as TF Serving parses them)."""
    return bool(name) and name.isascii() and name.isdigit()


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def list_versions(base_path: str) -> List[int]:
    """The published versions under ``base_path``, ascending (an absent base path has none)."""
    if not tf.io.gfile.isdir(base_path):
        return []
    out = []
    for name in tf.io.gfile.listdir(base_path):
        name = name.rstrip("/")
        if is_version_name(name) and tf.io.gfile.isdir(os.path.join(base_path, name)):
            out.append(int(name))
    return sorted(out)


def check_base_path(base_path: str) -> None:
    """Creates ``base_path`` if needed.

    Raises:
      NotADirectoryError: ``base_path`` exists and is not a directory.
    """
    if tf.io.gfile.exists(base_path) and not tf.io.gfile.isdir(base_path):
        raise NotADirectoryError(f"export base path is not a directory: {base_path}")
    tf.io.gfile.makedirs(base_path)


def staging_dir(base_path: str) -> str:
    """A fresh staging directory path ``<base_path>/.tmp-<uuid>`` (not created) that no loader picks up.

    Removes the base path's stale staging directories first, and (on a local file system) takes the new
    directory's lock, held until :func:`publish` or :func:`remove_staging` (see the module docstring).
    """
    check_base_path(base_path)
    remove_stale_staging(base_path)
    path = os.path.join(base_path, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    _take_lock(path)
    return path


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def _take_lock(staged: str) -> None:
    if fcntl is None or not _is_local(staged):
        return
    lock = _local(staged) + LOCK_SUFFIX
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # Blocking: only a cleaner that saw the file before it was locked can hold it, for an instant; it then
        # unlinks the file, and the directory made next falls under the unlocked-directory rule (kept a day).
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())  # for a person looking at it
    except OSError:
        os.close(fd)
        raise
    with _held_guard:
        _held[staged] = fd


def _release_lock(staged: str) -> None:
    with _held_guard:
        fd = _held.pop(staged, None)
    if fd is None:
        return
    try:
        os.unlink(_local(staged) + LOCK_SUFFIX)  # unlinked while still locked: no one can lock it in between
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _try_lock(lock: str):
    """An fd holding ``lock`` (no one else holds it), or None (held by a running export, or gone)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _newest_mtime(path: str) -> float:
    newest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return newest


def remove_stale_staging(base_path: str) -> List[str]:
    """Removes the staging directories (and lock files) of exports that are gone; see the module docstring.

    Returns:
      The removed staging directory names.
    """
    if fcntl is None or not _is_local(base_path):
        return []
    base = _local(base_path)
    try:
        names = set(os.listdir(base))
    except OSError:
        return []
    with _held_guard:
        mine = {os.path.basename(_local(p)) for p in _held}
    removed = []
    for name in sorted(names):
        if not name.startswith(STAGING_PREFIX) or name in mine:
            continue
        if name.endswith(LOCK_SUFFIX):
            if name[:-len(LOCK_SUFFIX)] in names:
                continue  # judged with its directory below
            fd = _try_lock(os.path.join(base, name))
            if fd is not None:
                _unlink_and_close(os.path.join(base, name), fd)
            continue
        path = os.path.join(base, name)
        lock = path + LOCK_SUFFIX
        if name + LOCK_SUFFIX in names:
            fd = _try_lock(lock)
            if fd is None:
                continue  # an export still running holds it
            shutil.rmtree(path, ignore_errors=True)
            _unlink_and_close(lock, fd)
            removed.append(name)
        elif os.path.isdir(path) and time.time() - _newest_mtime(path) > STALE_UNLOCKED_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def _unlink_and_close(lock: str, fd: int) -> None:
    try:
        os.unlink(lock)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _rename_no_replace(src: str, dst: str) -> bool:
    """Renames ``src`` to ``dst`` unless ``dst`` exists; False when ``dst`` was taken."""
    if _is_local(dst):
        src, dst = (p[len("file://"):] if p.startswith("file://") else p for p in (src, dst))
        if os.path.lexists(dst):
            return False
        try:
            # POSIX rename of a directory fails on a non-empty target (ENOTEMPTY / EEXIST), so a version that a
            # racing exporter published between the check and here is never replaced.
            os.rename(src, dst)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                return False
            raise
        return True
    if tf.io.gfile.exists(dst):
        return False
    try:
        tf.io.gfile.rename(src, dst, overwrite=False)
    except tf.errors.AlreadyExistsError:
        return False
    return True


def publish(staged: str, base_path: str, max_attempts: int = 1000) -> int:
    """Renames the complete export ``staged`` to the next free version under ``base_path``.

    Args:
      staged: a finished export directory on the same file system as ``base_path``.
      base_path: the model's base path.
      max_attempts: version numbers to try before giving up (each failed try means another exporter won it).

    Returns:
      The version it landed as (1 for an empty base path, else one more than the largest version seen).

    Raises:
      RuntimeError: no free version after ``max_attempts`` tries.
    """
    version = (list_versions(base_path) or [0])[-1] + 1
    for _ in range(max_attempts):
        if _rename_no_replace(staged, os.path.join(base_path, str(version))):
            _release_lock(staged)
            return version
        version = max(version + 1, (list_versions(base_path) or [0])[-1] + 1)
    raise RuntimeError(f"could not publish {staged} under {base_path} after {max_attempts} attempts")


def remove_staging(staged: str) -> None:
    """Deletes a staging directory left by a failed export (no error if it is gone) and drops its lock."""
    try:
        if tf.io.gfile.exists(staged):
            tf.io.gfile.rmtree(staged)
    finally:
        _release_lock(staged)
