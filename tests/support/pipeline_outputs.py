"""Snapshots of a prepared dataset for equality checks between runs: records per split as multisets (the files'
framing and order may differ), every other file byte for byte (dead letters as multisets of lines)."""

from __future__ import annotations

import collections
import gzip
import json
import os
import struct
from typing import Dict, Iterable, List


def tfrecords(path: str) -> List[bytes]:
    """The records of a GZIP TFRecord file (every GZIP member), read without TensorFlow; checks the framing."""
    from pipelines.common.sink import masked_crc32c

    with gzip.open(path, "rb") as f:
        data = f.read()
    out, i = [], 0
    while i < len(data):
        n = struct.unpack("<Q", data[i:i + 8])[0]
        assert struct.unpack("<I", data[i + 8:i + 12])[0] == masked_crc32c(data[i:i + 8]), path
        record = data[i + 12:i + 12 + n]
        assert struct.unpack("<I", data[i + 12 + n:i + 16 + n])[0] == masked_crc32c(record), path
        out.append(record)
        i += 16 + n
    return out


def snapshot(root: str, drop_json_keys: Iterable[str] = ()) -> Dict[str, object]:
    """``{relative path: content}`` of a dataset directory: a Counter of records per TFRecord file's split, a Counter
    of lines per dead-letter file, the bytes of every other file (JSON files without ``drop_json_keys``)."""
    drop = set(drop_json_keys)
    snap: Dict[str, object] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if name.endswith(".tfrecord.gz"):
                snap.setdefault(f"records of {rel.split('-')[0]}", collections.Counter()).update(tfrecords(path))
                snap.setdefault("shard files", []).append(rel)
            elif rel.startswith("deadletter"):
                with open(path, "rb") as f:
                    snap[rel] = collections.Counter(f.read().splitlines())
            else:
                with open(path, "rb") as f:
                    data = f.read()
                if name.endswith(".json") and drop:
                    data = json.dumps({k: v for k, v in json.loads(data).items() if k not in drop}).encode()
                snap[rel] = data
    snap["shard files"] = sorted(snap.get("shard files", []))
    return snap


def differences(a: Dict[str, object], b: Dict[str, object]) -> List[str]:
    """The keys whose contents differ (or that only one snapshot has)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
