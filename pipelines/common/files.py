"""File helpers of the pipelines, through Beam's ``FileSystems``: every scheme a runner supports (local paths,
``gs://``, ``s3://``, ``hdfs://``, a registered test scheme) is read, matched and written the same way."""

from __future__ import annotations

import json
import os
import posixpath
from typing import Dict, Iterable, List

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.criteo.parse import InputError

#: Archive names the pipelines refuse (extract first): tar members would otherwise be read as one stream of lines,
#: tar headers included, and a Criteo archive holds more than training rows (dac.tar.gz: an unlabelled test.txt).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".zip",
                    ".7z")
#: Bytes read from the start of an input to check it and find its first line.
HEAD_BYTES = 1 << 20

#: Names written by the pipeline under ``<output>/`` (removed before a run so stale shards never mix in).
OWNED_PATTERNS = ("train-*-of-*.tfrecord.gz", "valid-*-of-*.tfrecord.gz", "test-*-of-*.tfrecord.gz",
                  "deadletter/deadletter-*-of-*.jsonl", "vocab/C*.txt", "schema.json", "transform.json",
                  "stats.json", "_counts.json")


def join(*parts: str) -> str:
    return FileSystems.join(*parts)


def is_local(path: str) -> bool:
    """True for a path of the local file system (no ``scheme://``)."""
    return "://" not in path


def absolute(path: str) -> str:
    """``path`` made absolute when it is local (workers and the launcher may have other working directories); a
    ``scheme://`` path unchanged."""
    return os.path.abspath(path) if is_local(path) else path


def match(pattern: str) -> List[str]:
    """Sorted files matching ``pattern`` (a path or a glob); empty when none."""
    try:
        result = FileSystems.match([pattern])[0]
    except BeamIOError:
        return []
    return sorted(m.path for m in result.metadata_list)


def total_bytes(paths: Iterable[str]) -> int:
    """The summed size in bytes of ``paths`` (as stored: compressed files count their compressed size)."""
    paths = list(paths)
    if not paths:
        return 0
    return sum(m.size_in_bytes for r in FileSystems.match(paths) for m in r.metadata_list)


def match_inputs(patterns: Iterable[str], what: str) -> List[str]:
    """Files of every pattern, in order, each once.

    Raises:
      FileNotFoundError: a pattern matches nothing (the message names it).
      InputError: a pattern that is a local directory (a glob of its files is what to give).
    """
    out: List[str] = []
    for pattern in patterns:
        if is_local(pattern) and os.path.isdir(pattern):
            raise InputError(f"{what}: {pattern} is a directory; give the files in it, e.g. "
                             f"'{os.path.join(pattern, '*.txt')}'")
        files = match(pattern)
        if not files:
            raise FileNotFoundError(f"{what}: no file matches {pattern!r}")
        seen = {same_file_key(f) for f in out}
        out.extend(f for f in files if same_file_key(f) not in seen)
    return out


def same_file_key(path: str) -> str:
    """A key equal for two spellings of one file (``a.txt``, ``./a.txt``, a link to it): the real path of a local
    file, the path itself elsewhere."""
    return os.path.realpath(path) if is_local(path) else path


def read_head(path: str) -> bytes:
    """The first :data:`HEAD_BYTES` of ``path``, decompressed by its extension (``.gz``, ``.bz2``, ...), after
    checking that it is no archive.

    Raises:
      InputError: an archive (by name: :data:`ARCHIVE_SUFFIXES`; by content: a tar or zip file, whatever its
        name), or gzip data in a file whose name says it is uncompressed.
    """
    name = posixpath.basename(path)
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        raise _archive(path, name)
    with FileSystems.open(path) as f:
        head = f.read(HEAD_BYTES)
    if head[257:262] == b"ustar" or head[:4] == b"PK\x03\x04":
        raise _archive(path, name)
    if head[:2] == b"\x1f\x8b" and CompressionTypes.detect_compression_type(path) == CompressionTypes.UNCOMPRESSED:
        raise InputError(f"{path} is gzip-compressed but its name does not end with .gz; rename it to {name}.gz")
    return head


def _archive(path: str, name: str) -> InputError:
    return InputError(f"{path} is an archive; extract it first (e.g. tar -xf {name}) and give the data files in it "
                      "(Criteo's dac.tar.gz: train.txt)")


def first_line(path: str) -> bytes:
    """The first line of ``path`` (decompressed by its extension; at most :data:`HEAD_BYTES`), with its line break;
    ``b""`` for an empty file. Checks ``path`` with :func:`read_head` first."""
    head = read_head(path)
    end = head.find(b"\n")
    return head if end < 0 else head[:end + 1]


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
