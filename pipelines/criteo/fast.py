"""Column-wise parse and tf.Example encoding of Kaggle rows, byte for byte what ``parse_kaggle`` + ``to_example`` give.

Why: per row, ``parse_kaggle`` (13 ``float`` calls, a list per row) and ``to_example`` (filling a protobuf map
through the upb Python API, then serializing) cost most of the pipeline's CPU time. A chunk of a few thousand lines
is instead joined into one buffer and split there (:func:`parse_chunk`: the tab positions of the whole chunk, the
field bounds of every 40-field line as one gather, each field read as a NUL-padded byte matrix), validated and
converted per column with NumPy, and serialized by assembling every example's bytes in one NumPy buffer
(:func:`encode_examples`). (:func:`split_chunk` + :func:`parse_columns` do the same checks on fields split line by
line with ``bytes.split``; the tests hold :func:`parse_chunk` to them.) A line the column checks do not clear
(another field count, a negative or long number, a non-hexadecimal or long token, a bad label, anything else) goes
to the row-by-row parser, which gives the same row or the same rejection as before; so the output does not depend on
which path a line took (``tests/pipelines/criteo/test_criteo_fast.py`` checks the bytes against ``to_example``).

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

import hashlib
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE, LABEL, WEIGHT

#: Longest categorical token (bytes) the column path encodes (Criteo's are 8 hexadecimal digits); longer ones take
#: the row path.
MAX_TOKEN = 15
#: Longest dense value (characters) the column path converts exactly (int64 arithmetic, < 2**53); longer ones
#: take the row path.
MAX_DIGITS = 15
NUM_FIELDS = 1 + len(CRITEO_DENSE) + len(CRITEO_CATEGORICAL)
_HEX = b"0123456789abcdefABCDEF"


class Columns(NamedTuple):
    """Valid rows of a chunk, by column: ``label`` (n,) int; ``dense`` (n, 13) float64 (0 where missing) with
    ``present`` (n, 13) bool; ``categorical``: 26 sequences of bytes (``b""`` missing) and the same as 26 NumPy
    byte-string arrays (``tokens``, NUL-padded; the tokens hold no NUL; :func:`parse_chunk` gives the arrays as
    both)."""

    label: np.ndarray
    dense: np.ndarray
    present: np.ndarray
    categorical: List[Sequence[bytes]]
    tokens: List[np.ndarray]


def _lut(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    table[0] = True  # the padding of a NumPy byte string
    return table


_DIGIT_OK = _lut(b"0123456789")
_HEX_OK = _lut(_HEX)


def _matrix(col: Sequence[bytes], width: int) -> Tuple[np.ndarray, np.ndarray]:
    """``col`` as a NumPy byte-string array of ``width`` bytes a value, and whether each value fits in fewer (a
    longer value is cut at ``width``: it is left to the row parser). Values must hold no NUL byte."""
    arr = np.array(col, dtype=f"S{width}")
    m = arr.view(np.uint8).reshape(len(col), width)
    return arr, m[:, width - 1] == 0


def _integers(arr: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A byte-string array of optionally signed decimal integers -> (values int64, present, ok); ``ok`` is False for a
    value with another character, a sign elsewhere than first, or a lone sign."""
    n, w = len(arr), arr.dtype.itemsize
    m = arr.view(np.uint8).reshape(n, w)
    neg = m[:, 0] == 45  # '-'
    digits = m.copy()
    digits[neg, 0] = 0
    ok = _DIGIT_OK[digits].all(axis=1)
    lengths = np.count_nonzero(m, axis=1)
    ok &= ~(neg & (lengths == 1))
    value = np.zeros(n, dtype=np.int64)
    for k in range(w):
        d = digits[:, k].astype(np.int64)
        has = d != 0
        value = np.where(has, value * 10 + (d - 48), value)
    return np.where(neg, -value, value), lengths > 0, ok


def _columns(fields: List[List[bytes]]) -> Tuple[np.ndarray, Columns]:
    """``(ok, columns)`` of rows of 40 fields: ``ok[i]`` says whether row ``i`` passed every column check."""
    n = len(fields)
    cols = list(zip(*fields))
    ok = np.ones(n, dtype=bool)
    label, _ = _matrix(cols[0], 2)
    lab = label.view(np.uint8).reshape(n, 2)
    ok &= ((lab[:, 0] == 48) | (lab[:, 0] == 49)) & (lab[:, 1] == 0)
    lab = lab[:, 0]
    dense = np.zeros((n, len(CRITEO_DENSE)), dtype=np.float64)
    present = np.zeros((n, len(CRITEO_DENSE)), dtype=bool)
    for j, col in enumerate(cols[1:1 + len(CRITEO_DENSE)]):
        arr, fits = _matrix(col, MAX_DIGITS + 1)
        values, there, fine = _integers(arr)
        minus_zero = there & (values == 0) & (arr.view(np.uint8).reshape(n, -1)[:, 0] == 45)  # float("-0") is -0.0
        ok &= fits & fine & ~minus_zero
        dense[:, j] = values
        present[:, j] = there
    tokens = []
    for col in cols[1 + len(CRITEO_DENSE):]:
        arr, fits = _matrix(col, MAX_TOKEN + 1)
        ok &= fits & _HEX_OK[arr.view(np.uint8).reshape(n, -1)].all(axis=1)
        tokens.append(arr)
    return ok, Columns(lab.astype(np.int64) - 48, dense, present, list(cols[1 + len(CRITEO_DENSE):]), tokens)


def parse_columns(fields: List[List[bytes]]) -> Tuple[Optional[Columns], List[int]]:
    """Validates rows already split into 40 fields, column by column.

    Args:
      fields: each row's 40 fields (tab-split, line break removed); no field may hold a NUL byte (a byte-string
        array cannot tell one at the end of a value from padding: :func:`split_chunk` sends such lines to the row
        parser).

    Returns:
      ``(columns, rejected)``: the rows that pass (in order, minus ``rejected``) as :class:`Columns` (None when
      none pass), and the indices of the rows that need the row-by-row parser.
    """
    if not fields:
        return None, []
    ok, columns = _columns(fields)
    if ok.all():
        return columns, []
    kept = np.nonzero(ok)[0].tolist()
    rejected = np.nonzero(~ok)[0].tolist()
    if not kept:
        return None, rejected
    ok, columns = _columns([fields[i] for i in kept])  # the checks are per row: all of these pass again
    assert ok.all()
    return columns, rejected


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


def split_chunk(raws: List[bytes]) -> Tuple[List[List[bytes]], List[int], List[int]]:
    """Lines (line breaks removed) -> ``(fields, indices, others)``: the tab-split fields of the lines with 40 fields
    and no NUL byte, their indices, and the indices of the other lines (for the row parser)."""
    fields = [r.split(b"\t") for r in raws]
    nul = {i for i, r in enumerate(raws) if b"\0" in r} if b"\0" in b"".join(raws) else ()
    idx = [i for i, f in enumerate(fields) if len(f) == NUM_FIELDS and i not in nul]
    if len(idx) == len(raws):
        return fields, idx, []
    chosen = set(idx)
    return [fields[i] for i in idx], idx, [i for i in range(len(raws)) if i not in chosen]


_DIGIT_ONLY = np.zeros(256, dtype=bool)
_DIGIT_ONLY[list(b"0123456789")] = True
_POW10 = 10 ** np.arange(MAX_DIGITS + 1, dtype=np.int64)


def _field_bytes(a: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The (m, c, w) NUL-padded bytes of c fields of m rows (``a[start : start + length]`` each, ``start`` and
    ``length`` (m, c)), w the longest length (at least 1)."""
    w = max(int(length.max()), 1) if length.size else 1
    k = np.arange(w, dtype=np.int64)
    inside = k < length[..., None]
    return np.where(inside, a[np.minimum(start[..., None] + k, len(a) - 1)], 0).astype(np.uint8)


def parse_chunk(raws: List[bytes]) -> Tuple[Optional[Columns], List[int], List[int]]:
    """Splits and validates a chunk of Kaggle lines (line breaks removed) at once, on the bytes of the whole chunk.

    The lines are joined into one buffer; the tabs are found with one comparison; a line with exactly 39 tabs (40
    fields) and no NUL byte has its 39 tab positions in consecutive places of the sorted tab positions, so the
    field bounds of all such lines are one (m, 40) gather. The dense fields are then read as one (m, 13, w) byte
    array and the tokens as one (m, 26, w) (w the longest value of each kind in the chunk), checked and converted
    as :func:`parse_columns` does on split fields (same checks, so the same lines pass).

    Returns:
      ``(columns, indices, others)``: the lines that pass as :class:`Columns` (None when none pass), their indices
      in ``raws``, and the indices of the other lines (for the row parser), both ascending.
    """
    n = len(raws)
    if not n:
        return None, [], []
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    a = np.frombuffer(b"\n".join(raws) + b"\n", dtype=np.uint8)
    end = np.cumsum(lengths + 1) - 1  # the position of each line's (added) line break
    start = end - lengths
    tabs = np.flatnonzero(a == 9)
    first = np.searchsorted(tabs, start)
    ok = np.searchsorted(tabs, end) - first == NUM_FIELDS - 1
    nul = np.flatnonzero(a == 0)
    if len(nul):
        ok &= np.searchsorted(nul, end) == np.searchsorted(nul, start)
    rows = np.flatnonzero(ok)
    if not len(rows):
        return None, [], list(range(n))
    tab = tabs[first[rows][:, None] + np.arange(NUM_FIELDS - 1)[None, :]]  # (m, 39)
    f_start = np.concatenate([start[rows][:, None], tab + 1], axis=1)
    f_len = np.concatenate([tab, end[rows][:, None]], axis=1) - f_start  # (m, 40)
    m = len(rows)
    ok = np.ones(m, dtype=bool)
    first_bytes = a[np.minimum(f_start, len(a) - 1)]  # (m, 40): a field's first byte (the next tab when empty)
    ok &= (f_len[:, 0] == 1) & ((first_bytes[:, 0] == 48) | (first_bytes[:, 0] == 49))
    label = first_bytes[:, 0].astype(np.int64) - 48
    nd = len(CRITEO_DENSE)
    present = f_len[:, 1:1 + nd] > 0
    ok &= (f_len[:, 1:1 + nd] <= MAX_DIGITS).all(axis=1) & (f_len[:, 1 + nd:] <= MAX_TOKEN).all(axis=1)
    neg = present & (first_bytes[:, 1:1 + nd] == 45)  # (m, 13): a leading '-'
    length = np.where(ok[:, None], f_len[:, 1:1 + nd], 0)  # (a row already refused reads as empty)
    mat = _field_bytes(a, f_start[:, 1:1 + nd], length)  # (m, 13, w)
    digits = mat.copy()
    digits[:, :, 0] = np.where(neg, 48, mat[:, :, 0])  # a leading '-' reads as a leading zero
    fine = (_DIGIT_ONLY[digits] | (mat == 0)).all(axis=2)  # digits, then the padding
    fine &= ~(neg & (length == 1))  # a lone '-'
    # the digit at k of a value of length L weighs 10 ** (L - 1 - k)
    power = length[..., None] - 1 - np.arange(mat.shape[2])
    values = ((digits.astype(np.int64) - 48) * np.where(power >= 0, _POW10[np.maximum(power, 0)], 0)).sum(axis=2)
    fine &= ~(neg & (values == 0))  # float("-0") is -0.0: the row parser's
    ok &= fine.all(axis=1)
    dense = np.where(neg, -values, values).astype(np.float64)
    length = np.where(ok[:, None], f_len[:, 1 + nd:], 0)
    mat = _field_bytes(a, f_start[:, 1 + nd:], length)  # (m, 26, w)
    ok &= _HEX_OK[mat].all(axis=(1, 2))
    tokens = [mat[:, j, :] for j in range(mat.shape[1])]
    kept = np.flatnonzero(ok)
    others = np.flatnonzero(~np.isin(np.arange(n), rows[kept])).tolist()
    if not len(kept):
        return None, [], others
    if len(kept) < m:
        label, dense, present = label[kept], dense[kept], present[kept]
        tokens = [t[kept] for t in tokens]
    arrays = [np.ascontiguousarray(t).view(f"S{t.shape[1]}").ravel() for t in tokens]
    cols = Columns(label, dense, present, arrays, arrays)
    return cols, rows[kept].tolist(), others


def _below(h: np.ndarray, threshold: int) -> np.ndarray:
    if threshold >= 1 << 64:
        return np.ones(len(h), dtype=bool)
    return h < np.uint64(threshold)


def column_batches(raws: List[bytes], beta_pos: float, key: bytes, t_train: int, t_valid: int, num_shards: int,
                   fixed_split: Optional[str], acc: dict, fns: dict, counts: Sequence) -> Tuple[dict, List[int]]:
    """The column path of a chunk of Kaggle lines: parse, split and shard (the keyed BLAKE2b of each line, as
    :class:`pipelines.common.split.HashSplitter`), serialize, and fold the rows into the statistics.

    Args:
      raws: the chunk's lines, line breaks removed.
      beta_pos: the positives' weight.
      key, t_train, t_valid, num_shards: the splitter's key, thresholds and shards.
      fixed_split: the split of every row (files mode), or None (hash split).
      acc: a :class:`pipelines.common.combiners.PipelineStatsFn` accumulator, updated in place (counts per split;
        the train rows' largest ``|x|`` per dense field).
      fns: that CombineFn's sub-combiners (``fns["train"].fns[1]`` gives the dense field names).
      counts: one ``collections.Counter`` per categorical field, updated with the train rows' values.

    Returns:
      ``(batches, others)``: ``{(split, shard): [serialized example, ...]}`` and the indices of the lines left to
      the row parser.
    """
    cols, idx, others = parse_chunk(raws)
    if cols is None:
        return {}, others
    examples = encode_examples(cols, beta_pos)
    digests = b"".join([hashlib.blake2b(raws[i], digest_size=8, key=key).digest() for i in idx])
    h = np.frombuffer(digests, dtype="<u8")
    names = ("train", "valid", "test")
    if fixed_split is None:
        split = np.where(_below(h, t_train), 0, np.where(_below(h, t_valid), 1, 2))
    else:
        split = np.full(len(h), names.index(fixed_split))
    shard = (h % np.uint64(num_shards)).astype(np.int64)
    group = split * num_shards + shard
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    bounds = np.flatnonzero(np.diff(sorted_groups)) + 1
    batches = {}
    order_list = order.tolist()
    for a, b in zip([0, *bounds.tolist()], [*bounds.tolist(), len(order_list)]):
        g = int(sorted_groups[a])
        batches[(names[g // num_shards], g % num_shards)] = [examples[i] for i in order_list[a:b]]
    dense_fields = fns["train"].fns[1].fields
    for s, name in enumerate(names):
        mask = split == s
        rows = int(mask.sum())
        if not rows:
            continue
        positives = int(cols.label[mask].sum())
        count = acc[name][0] if name == "train" else acc[name]
        count[0] += rows
        count[1] += positives
        if name == "train":
            largest = {}
            for j, field in enumerate(dense_fields):
                there = mask & cols.present[:, j]
                largest[field] = float(np.abs(cols.dense[there, j]).max()) if there.any() else None
            acc["train"][1][0].add(largest)
            for counter, tokens in zip(counts, cols.tokens):
                counter.update(tokens[mask].tolist())  # (bytes without the NUL padding)
    return batches, others
