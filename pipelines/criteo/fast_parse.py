"""Column-wise parse of a chunk of Kaggle lines (the column path of :mod:`pipelines.criteo.fast`): the same rows,
and the same lines left to the row parser, as ``parse_kaggle`` line by line.

:func:`parse_chunk`: the tab positions of the whole chunk, the field bounds of every 40-field line as one gather,
each field read as a NUL-padded byte matrix, validated and converted per column with NumPy. :func:`split_chunk` +
:func:`parse_columns` do the same checks on fields split line by line with ``bytes.split``; the tests hold
:func:`parse_chunk` to them.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE

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
