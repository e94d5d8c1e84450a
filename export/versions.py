"""Versioned export directories under a base path, published atomically the way TF Serving expects them.

TF Serving (and ``serving/``) watch ``<base_path>/<version>/`` where ``<version>`` is a directory name made only
of digits; every other name is ignored. An export is therefore written to a staging directory
``<base_path>/.tmp-<uuid>`` (same file system, a name no loader picks up) and published with one ``rename`` to
the next free integer version, so a reader listing the base path sees either no new version or a complete one.

A version is never overwritten: ``rename`` onto an existing non-empty directory fails, and then the next number
is tried (two exporters racing for the same number both land, on different numbers). On object stores
(``gs://``, ``s3://``) there is no atomic directory rename; ``tf.io.gfile.rename`` is used there and a reader may
see a version while it is being copied, so point TF Serving at a local or POSIX file system for that guarantee.
"""

from __future__ import annotations

import errno
import os
import uuid
from typing import List

import tensorflow as tf

STAGING_PREFIX = ".tmp-"


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
    """A fresh staging directory path ``<base_path>/.tmp-<uuid>`` (not created) that no loader picks up."""
    check_base_path(base_path)
    return os.path.join(base_path, f"{STAGING_PREFIX}{uuid.uuid4().hex}")


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
            return version
        version = max(version + 1, (list_versions(base_path) or [0])[-1] + 1)
    raise RuntimeError(f"could not publish {staged} under {base_path} after {max_attempts} attempts")


def remove_staging(staged: str) -> None:
    """Deletes a staging directory left by a failed export (no error if it is gone)."""
    if tf.io.gfile.exists(staged):
        tf.io.gfile.rmtree(staged)
