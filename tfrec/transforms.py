"""Numeric feature transforms: fitted by the pipeline on the train split, applied inside the model.

The TFRecords keep raw values; the pipeline only fits each transform's parameters (written to
``transform.json``) and the model applies the transform as TensorFlow ops, so the exported SavedModel takes raw
values and training and serving share one code path.

Transforms (``kind``), for a raw value ``x`` of dense field ``j`` (missing values are NaN):

* ``log_minmax`` (the Kaggle TSV's and the multi-task layouts' default): ``v = sign(x) * log(1 + |x|) / s_j`` with
  ``s_j = max_train |sign(x) log(1 + |x|)|``, clipped to [-1, 1]; missing -> 0. Each numeric field is embedded
  as ``v * e_j`` (a learned vector per field, FuxiCTR's numeric embedding), so it needs values in a small range:
  the log compresses the Kaggle TSV's heavy tails (raw counts up to ~10^7) before the range scaling, and the
  sign keeps Criteo's few negative integers (I2) apart from the positive ones.
* ``minmax``: ``v = x / max_train |x|`` clipped to [-1, 1]; missing -> 0.
* ``none`` (Criteo x1's default): ``v = x``; missing -> 0. The x1 CSV's 13 numeric columns are already
  normalised floats, and FuxiCTR / BARS (the KDD 2024 setting) feed them as they are.
"""

from __future__ import annotations

import json
import math
from typing import Dict, Iterable, Mapping

KINDS = ("log_minmax", "minmax", "none")


def _signed_log(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


def pre_scale(kind: str, x: float) -> float:
    """The part of the transform applied before scaling, in plain Python (used to fit the scale)."""
    if kind == "log_minmax":
        return _signed_log(x)
    return x


class ScaleAccumulator:
    """Running max of ``|pre_scale(x)|`` per field; mergeable (a Beam CombineFn accumulator)."""

    def __init__(self, kind: str, fields: Iterable[str]):
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.max_abs: Dict[str, float] = {f: 0.0 for f in fields}

    def add(self, row: Mapping[str, float]) -> None:
        for field in self.max_abs:
            x = row.get(field)
            if x is None or x != x:  # missing or NaN
                continue
            v = abs(pre_scale(self.kind, x))
            if v > self.max_abs[field]:
                self.max_abs[field] = v

    def merge(self, other: "ScaleAccumulator") -> None:
        for field, v in other.max_abs.items():
            if v > self.max_abs.get(field, 0.0):
                self.max_abs[field] = v

    def params(self) -> Dict[str, object]:
        """The fitted transform as a JSON-serializable dict (the content of ``transform.json``)."""
        scales = {f: (v if v > 0 else 1.0) for f, v in self.max_abs.items()} if self.kind != "none" else {
            f: 1.0 for f in self.max_abs}
        return {"kind": self.kind, "scale": scales, "missing_value": 0.0}


def load_params(path: str) -> Dict[str, object]:
    """Reads ``transform.json`` and checks its kind."""
    with open(path, "r", encoding="utf-8") as f:
        params = json.load(f)
    if params.get("kind") not in KINDS:
        raise ValueError(f"{path}: unknown numeric transform kind {params.get('kind')!r}; known: {KINDS}")
    return params


def apply_numpy(kind: str, scale: float, x):
    """NumPy reference of the transform (the oracle of the model's TensorFlow version)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    missing = np.isnan(x)
    x0 = np.where(missing, 0.0, x)
    if kind == "log_minmax":
        v = np.sign(x0) * np.log1p(np.abs(x0)) / scale
    elif kind == "minmax":
        v = x0 / scale
    else:
        v = x0
    if kind != "none":
        v = np.clip(v, -1.0, 1.0)
    return np.where(missing, 0.0, v).astype(np.float32)
