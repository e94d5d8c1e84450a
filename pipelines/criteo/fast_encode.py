"""Serialized ``tf.train.Example`` s of parsed columns (the column path of :mod:`pipelines.criteo.fast`), byte for
byte what :func:`pipelines.criteo.example.to_example` gives, assembled for every row in one NumPy buffer.

Encoding (https://protobuf.dev/programming-guides/encoding/; the deterministic serialization writes map entries in
key order)::

    Example  = 0x0a varint(len(F)) F                  F = entries of the present features, keys sorted bytewise
    entry    = 0x0a len(e) [0x0a len(key) key] [0x12 len(feature) feature]
    float    = 0x12 0x06 0x0a 0x04 <float32 little endian>        (FloatList, packed, one value)
    bytes    = 0x0a len(bl) [0x0a len(v) v]                        (BytesList, one value)

With tokens of at most :data:`MAX_TOKEN` bytes every length inside an entry fits one varint byte; the length of F
takes one to three.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from pipelines.criteo.fast_parse import MAX_TOKEN, Columns
from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE, LABEL, WEIGHT


def _varint_parts(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Varint bytes (n, 3) and lengths (n,) of non-negative ints < 2**21."""
    b0 = x & 0x7F
    b1 = (x >> 7) & 0x7F
    b2 = x >> 14
    length = 1 + (x >= 0x80) + (x >= 0x4000)
    out = np.stack([b0 | np.where(length > 1, 0x80, 0), b1 | np.where(length > 2, 0x80, 0), b2], axis=1)
    return out.astype(np.uint8), length


def _scatter(buf: np.ndarray, starts: np.ndarray, pieces: np.ndarray) -> None:
    """``buf[starts[i] : starts[i] + w] = pieces[i]`` for every row of the (m, w) ``pieces``."""
    w = pieces.shape[1]
    buf[(starts[:, None] + np.arange(w)[None, :]).ravel()] = pieces.ravel()


_KEY_ORDER: List[str] = []


def key_order() -> List[str]:
    """The order in which :func:`pipelines.criteo.example.to_example` writes the feature keys, read from the bytes
    it serializes for a row with every feature present (the protobuf runtime's deterministic map order: upb, the
    runtime of protobuf 4, puts a key before its own prefixes, ``C10`` before ``C1``; the C++ runtime sorts them
    bytewise), so the column encoder follows whatever runtime is installed."""
    if not _KEY_ORDER:
        from pipelines.criteo.example import to_example

        data = to_example((1, [1.0] * len(CRITEO_DENSE), [b"a"] * len(CRITEO_CATEGORICAL)), 1.0)
        i = 2 + (data[1] >= 0x80)  # skip 0x0a varint(len(F)) (len(F) < 2**14)
        while i < len(data):
            entry_len = data[i + 1]
            key_len = data[i + 3]
            _KEY_ORDER.append(data[i + 4:i + 4 + key_len].decode("utf-8"))
            i += 2 + entry_len
    return list(_KEY_ORDER)


def _key_bytes(key: str) -> bytes:
    k = key.encode("utf-8")
    return bytes((0x0A, len(k))) + k


def encode_examples(cols: Columns, beta_pos: float) -> List[bytes]:
    """The serialized ``tf.train.Example`` of every row of ``cols``: equal, byte for byte, to
    :func:`pipelines.criteo.example.to_example` of the same rows."""
    n = len(cols.label)
    if not n:
        return []
    label = cols.label.astype(np.float32)
    weight = np.where(cols.label != 0, np.float32(beta_pos), np.float32(1.0)).astype(np.float32)
    index = {LABEL: -1, WEIGHT: -2, **{d: j for j, d in enumerate(CRITEO_DENSE)},
             **{c: 100 + j for j, c in enumerate(CRITEO_CATEGORICAL)}}
    slots = [(name, index[name]) for name in key_order()]
    lengths = []  # per slot: (n,) entry lengths (with their 2-byte entry header)
    plans = []
    for name, j in slots:
        key = _key_bytes(name)
        if j >= 100:
            arr = cols.tokens[j - 100]
            m = arr.view(np.uint8).reshape(n, arr.dtype.itemsize)
            L = np.count_nonzero(m, axis=1)
            there = L > 0
            entry = np.where(there, 2 + len(key) + 6 + L, 0)
            plans.append(("bytes", key, m, L, there))
        else:
            if j == -1:
                values, there = label, np.ones(n, dtype=bool)
            elif j == -2:
                values, there = weight, np.ones(n, dtype=bool)
            else:
                values, there = cols.dense[:, j].astype(np.float32), cols.present[:, j]
            entry = np.where(there, 2 + len(key) + 10, 0)
            plans.append(("float", key, values, None, there))
        lengths.append(entry)
    # Bytes every row has after its last token: the always-present label and weight entries end the key order.
    tail = 0
    for (kind, key, _, _, there), entry in reversed(list(zip(plans, lengths))):
        if kind != "float" or not there.all():
            break
        tail += int(entry[0])
    entry_len = np.stack(lengths, axis=1)  # (n, slots)
    features_len = entry_len.sum(axis=1)
    varint, vlen = _varint_parts(features_len)
    row_len = 1 + vlen + features_len
    row_end = np.cumsum(row_len)
    row_start = row_end - row_len
    buf = np.zeros(int(row_end[-1]) + MAX_TOKEN, dtype=np.uint8)
    buf[row_start] = 0x0A
    for k in range(3):
        rows = np.nonzero(vlen > k)[0]
        buf[row_start[rows] + 1 + k] = varint[rows, k]
    pos = row_start + 1 + vlen
    for (kind, key, data, L, there), entry in zip(plans, lengths):
        rows = np.nonzero(there)[0]
        if len(rows):
            start = pos[rows]
            if kind == "float":
                head = np.frombuffer(bytes((0x0A, len(key) + 10)) + key + b"\x12\x08\x12\x06\x0a\x04",
                                     dtype=np.uint8)
                pieces = np.empty((len(rows), len(head) + 4), dtype=np.uint8)
                pieces[:, :len(head)] = head
                pieces[:, len(head):] = np.ascontiguousarray(data[rows], dtype="<f4").view(np.uint8).reshape(-1, 4)
                _scatter(buf, start, pieces)
            else:
                Lr = L[rows]
                head = np.empty((len(rows), 2 + len(key) + 6), dtype=np.uint8)
                head[:, 0] = 0x0A
                head[:, 1] = len(key) + 6 + Lr  # the entry: key field, 0x12, len, feature (0x0a len 0x0a L v)
                head[:, 2:2 + len(key)] = np.frombuffer(key, dtype=np.uint8)
                c = 2 + len(key)
                head[:, c] = 0x12
                head[:, c + 1] = Lr + 4  # feature = 0x0a len(bl) bl, bl = 0x0a L v
                head[:, c + 2] = 0x0A
                head[:, c + 3] = Lr + 2
                head[:, c + 4] = 0x0A
                head[:, c + 5] = Lr
                w = data.shape[1]
                if w - 1 <= tail:  # padded: the NUL padding lands in later entries of the row, written after
                    _scatter(buf, start, np.concatenate([head, data[rows]], axis=1))
                else:
                    _scatter(buf, start, head)
                    vals = data[rows]
                    mask = vals != 0
                    dst = start[:, None] + head.shape[1] + np.arange(w)[None, :]
                    buf[dst[mask]] = vals[mask]
        pos = pos + entry
    data = buf[:int(row_end[-1])].tobytes()
    return [data[s:e] for s, e in zip(row_start.tolist(), row_end.tolist())]
