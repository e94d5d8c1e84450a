"""A parsed Criteo row -> a serialized ``tf.train.Example`` (the on-disk encoding of ``tfrec.features``).

The proto classes come from ``tensorflow.core.example.example_pb2``, imported once on first use (importing it
loads the TensorFlow package once per worker; no TensorFlow op runs per row).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE, LABEL, WEIGHT

_EXAMPLE_CLASS = None


def _example_class():
    global _EXAMPLE_CLASS
    if _EXAMPLE_CLASS is None:
        from tensorflow.core.example import example_pb2

        _EXAMPLE_CLASS = example_pb2.Example
    return _EXAMPLE_CLASS


def to_example(row: Tuple[int, Sequence[Optional[float]], Sequence[bytes]], beta_pos: float = 1.0) -> bytes:
    """Serializes a parsed row (``pipelines.criteo.parse.Row``: label, dense, categorical).

    Features: ``label`` float 0/1; ``weight`` float, ``beta_pos`` for positives and 1.0 for negatives (KDD 2024
    Eq. 15); I1..I13 a float_list of the raw value, absent when ``None``; C1..C26 a bytes_list of the raw
    value, absent when empty. Serialization is deterministic (map keys sorted), so equal rows give equal bytes.
    """
    label, dense, categorical = row
    example = _example_class()()
    feature = example.features.feature
    feature[LABEL].float_list.value.append(1.0 if label else 0.0)
    feature[WEIGHT].float_list.value.append(beta_pos if label else 1.0)
    add_features(feature, CRITEO_DENSE, dense, CRITEO_CATEGORICAL, categorical)
    return example.SerializeToString(deterministic=True)


def new_example():
    """An empty ``tf.train.Example``."""
    return _example_class()()


def add_features(feature, dense_names: Sequence[str], dense: Sequence[Optional[float]],
                 categorical_names: Sequence[str], categorical: Sequence[bytes]) -> None:
    """Adds raw values to an Example's feature map: each dense value as a float_list (absent when ``None``),
    each categorical value as a bytes_list (absent when empty)."""
    for name, x in zip(dense_names, dense):
        if x is not None:
            feature[name].float_list.value.append(x)
    for name, v in zip(categorical_names, categorical):
        if v:
            feature[name].bytes_list.value.append(v)
