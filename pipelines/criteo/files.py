"""File helpers of the Criteo pipeline, through Beam's ``FileSystems`` (local paths, gs://, ... alike)."""

from __future__ import annotations

import json
import posixpath
from typing import Dict, Iterable, List

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipelines.criteo.parse import sniff_format

#: Names written by the pipeline under ``<output>/`` (removed before a run so stale shards never mix in).
OWNED_PATTERNS = ("train-*-of-*.tfrecord.gz", "valid-*-of-*.tfrecord.gz", "test-*-of-*.tfrecord.gz",
                  "deadletter/deadletter-*-of-*.jsonl", "vocab/C*.txt", "schema.json", "transform.json",
                  "stats.json", "_counts.json")


def join(*parts: str) -> str:
    return FileSystems.join(*parts)


def match(pattern: str) -> List[str]:
    """Sorted files matching ``pattern`` (a path or a glob); empty when none."""
    try:
        result = FileSystems.match([pattern])[0]
    except BeamIOError:
        return []
    return sorted(m.path for m in result.metadata_list)


def match_inputs(patterns: Iterable[str], what: str) -> List[str]:
    """Files of every pattern, in order, each once.

    Raises:
      FileNotFoundError: a pattern matches nothing (the message names it).
    """
    out: List[str] = []
    for pattern in patterns:
        files = match(pattern)
        if not files:
            raise FileNotFoundError(f"{what}: no file matches {pattern!r}")
        out.extend(f for f in files if f not in out)
    return out


def sniff_file(path: str) -> str:
    """``x1`` when the file (decompressed by its extension) starts with ``label,``, otherwise ``kaggle``."""
    with FileSystems.open(path) as f:
        head = f.read(16)
    return sniff_format(head)


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(data)


def write_json(path: str, obj: object) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: str) -> Dict[str, object]:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def delete_owned(output: str, patterns: Iterable[str] = OWNED_PATTERNS) -> None:
    """Removes the files a previous run wrote under ``output`` (only the pipeline's own names, ``patterns``)."""
    stale: List[str] = []
    for pattern in patterns:
        stale.extend(match(join(output, *pattern.split("/"))))
    if stale:
        FileSystems.delete(stale)


def relative(path: str, root: str) -> str:
    """``path`` relative to the directory ``root`` (for stats.json), or ``path`` when it is elsewhere."""
    root = root.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else posixpath.basename(path)
