"""The Criteo Kaggle ``train.txt`` text of simulated rows (:func:`tfrec.simulation.criteo.simulate`): hashed
hexadecimal tokens, decimal integers, empty missing fields, optionally stripped trailing empty fields."""

from __future__ import annotations

from typing import List

import numpy as np

from tfrec.simulation.criteo_model import CATEGORICAL_FIELDS, DENSE_FIELDS, Model, Rows

_INT_LUT_LO, _INT_LUT_HI = -3, 10_000
_INT_LUT = np.array([str(v) for v in range(_INT_LUT_LO, _INT_LUT_HI)], dtype=object)
_HEX_CODES = np.array([ord(c) for c in "0123456789abcdef"], dtype=np.uint32)
_NIBBLE_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)


def _hash32(idx: np.ndarray, salt: np.uint32) -> np.ndarray:
    """lowbias32 (a bijection of uint32) of ``idx XOR salt``."""
    x = idx.astype(np.uint32) ^ salt
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def _hex_column(idx: np.ndarray, salt: np.uint32, missing: np.ndarray) -> List[str]:
    codes = _HEX_CODES[(_hash32(idx, salt)[:, None] >> _NIBBLE_SHIFTS) & np.uint32(0xF)]
    codes[missing] = 0  # a string of NULs reads back as ""
    return np.ascontiguousarray(codes).view("<U8").ravel().tolist()


def _int_column(x: np.ndarray, missing: np.ndarray) -> List[str]:
    out = np.empty(x.shape[0], dtype=object)
    small = (x >= _INT_LUT_LO) & (x < _INT_LUT_HI)
    out[small] = _INT_LUT[x[small] - _INT_LUT_LO]
    big = ~small
    if big.any():
        out[big] = [str(v) for v in x[big].tolist()]
    out[missing] = ""
    return out.tolist()


_LABEL_STRINGS = np.array(["0", "1"], dtype=object)


def format_chunk(model: Model, rows: Rows, labels: np.ndarray, strip: np.ndarray) -> str:
    columns = [_LABEL_STRINGS[labels].tolist()]
    for j in range(len(DENSE_FIELDS)):
        columns.append(_int_column(rows.dense[:, j], rows.dense_missing[:, j]))
    for f in range(len(CATEGORICAL_FIELDS)):
        idx = rows.cat[:, f]
        columns.append(_hex_column(idx, model.salt[f], idx == model.vocab[f]))
    lines = list(map("\t".join, zip(*columns)))
    for i in np.flatnonzero(strip).tolist():
        lines[i] = lines[i].rstrip("\t")
    lines.append("")
    return "\n".join(lines)
