"""Feature schemas of tfrec's dataset families and the parse specs derived from them.

One schema object is the single source of truth for the Beam writer (which feature names and dtypes go into a
``tf.Example``), the tf.data reader (the ``tf.io.parse_example`` spec) and the model's preprocessing layers.

Conventions, documented once for the whole package:

* Labels travel as a float feature named ``label`` (1.0 positive, 0.0 negative; < 0 means padding in
  list-wise data).
* The per-sample weight is a float feature named ``weight``: ``beta_pos`` for positives and 1 for negatives
  (KDD 2024 Eq. 15). The reader splits label and weight out of the features.
* Raw values are kept on disk: Criteo's dense features are the raw integers (as float32) and its categorical
  features the raw hexadecimal strings. A missing dense value is an absent feature, parsed as NaN; a missing
  categorical value is an absent feature, parsed as the empty string (which the vocabulary treats as a token
  like any other).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Dict, List, Tuple

LABEL = "label"
WEIGHT = "weight"
MISSING_CATEGORICAL = ""


@dataclasses.dataclass(frozen=True)
class PointwiseSchema:
    """Schema of a point-wise (one row, one label) dataset.

    Attributes:
      name: dataset family name (``criteo``).
      dense: names of numeric features, stored raw as float32 (missing -> absent -> NaN).
      categorical: names of categorical features, stored raw as bytes (missing -> absent -> "").
      label: name of the label feature.
      weight: name of the sample-weight feature.
    """

    name: str
    dense: Tuple[str, ...]
    categorical: Tuple[str, ...]
    label: str = LABEL
    weight: str = WEIGHT

    @property
    def feature_names(self) -> Tuple[str, ...]:
        """Model input feature names, dense first, in schema order."""
        return self.dense + self.categorical

    def parse_spec(self, with_label: bool = True) -> Dict[str, object]:
        """The ``tf.io.parse_example`` spec for a batch of serialized ``tf.Example``.

        Args:
          with_label: include ``label`` and ``weight`` (training and evaluation). Serving parses without them.

        Returns:
          dict name -> ``tf.io.FixedLenFeature`` of shape ``[]`` (a batch parses to ``[batch]`` tensors).
        """
        import tensorflow as tf  # kept local: the Beam workers import this module without TensorFlow.

        spec: Dict[str, object] = {}
        for name in self.dense:
            spec[name] = tf.io.FixedLenFeature([], tf.float32, default_value=math.nan)
        for name in self.categorical:
            spec[name] = tf.io.FixedLenFeature([], tf.string, default_value=MISSING_CATEGORICAL)
        if with_label:
            spec[self.label] = tf.io.FixedLenFeature([], tf.float32)
            spec[self.weight] = tf.io.FixedLenFeature([], tf.float32, default_value=1.0)
        return spec

    def to_json(self) -> Dict[str, object]:
        """A JSON-serializable description (written as ``schema.json`` beside the TFRecords)."""
        return {
            "name": self.name,
            "dense": list(self.dense),
            "categorical": list(self.categorical),
            "label": self.label,
            "weight": self.weight,
            "encoding": {
                "dense": "float_list of one raw value; absent when missing (parsed as NaN)",
                "categorical": "bytes_list of one raw string; absent when missing (parsed as '')",
                "label": "float_list, 1.0 positive / 0.0 negative",
                "weight": "float_list, beta_pos for positives and 1.0 for negatives (KDD 2024 Eq. 15)",
            },
        }

    @classmethod
    def from_json(cls, obj: Dict[str, object]) -> "PointwiseSchema":
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(obj["name"]),
            dense=tuple(obj["dense"]),  # type: ignore[arg-type]
            categorical=tuple(obj["categorical"]),  # type: ignore[arg-type]
            label=str(obj.get("label", LABEL)),
            weight=str(obj.get("weight", WEIGHT)),
        )

    @classmethod
    def load(cls, path: str) -> "PointwiseSchema":
        """Reads a ``schema.json`` file."""
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_json(json.load(f))


CRITEO_DENSE: Tuple[str, ...] = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL: Tuple[str, ...] = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS: List[str] = [LABEL, *CRITEO_DENSE, *CRITEO_CATEGORICAL]

#: The Criteo schema: label, I1..I13 dense, C1..C26 categorical, weight.
CRITEO = PointwiseSchema(name="criteo", dense=CRITEO_DENSE, categorical=CRITEO_CATEGORICAL)

#: The vocabulary token of a missing categorical value. Missing values parse as "" and the model's lookup maps
#: "" to this token, so "missing" is a category with its own embedding when it is frequent enough (as in
#: FuxiCTR, which fills missing categorical values before building its vocabularies).
MISSING_TOKEN = "__MISSING__"


# ----------------------------------------------------------------------------------------------- multi-task

CLICK = "click"
CONVERSION = "conversion"
MULTITASK_LABELS: Tuple[str, str] = (CLICK, CONVERSION)


@dataclasses.dataclass(frozen=True)
class MultiTaskSchema:
    """Schema of a multi-task (click, conversion) dataset: AliExpress, Ali-CCP, the funnel simulator.

    Labels travel as float features ``click`` and ``conversion`` (1.0 / 0.0; a conversion implies a click);
    the reader stacks them into ``y = [batch, 2]`` = (click, conversion). ``weight`` keeps the point-wise
    convention on the click task: ``beta_pos`` for click positives, 1 for non-clicks (KDD 2024 Eq. 15).

    Attributes:
      name: dataset family name (``aliexpress``, ``aliccp``).
      dense / categorical: as in :class:`PointwiseSchema`.
      labels: the two label feature names, (click, conversion).
      weight: name of the sample-weight feature.
    """

    name: str
    dense: Tuple[str, ...]
    categorical: Tuple[str, ...]
    labels: Tuple[str, str] = MULTITASK_LABELS
    weight: str = WEIGHT

    @property
    def feature_names(self) -> Tuple[str, ...]:
        """Model input feature names, dense first, in schema order."""
        return self.dense + self.categorical

    def parse_spec(self, with_label: bool = True) -> Dict[str, object]:
        """The ``tf.io.parse_example`` spec (see :meth:`PointwiseSchema.parse_spec`); labels are ``click`` and
        ``conversion``."""
        import tensorflow as tf

        spec = PointwiseSchema(self.name, self.dense, self.categorical).parse_spec(with_label=False)
        if with_label:
            for name in self.labels:
                spec[name] = tf.io.FixedLenFeature([], tf.float32)
            spec[self.weight] = tf.io.FixedLenFeature([], tf.float32, default_value=1.0)
        return spec

    def to_json(self) -> Dict[str, object]:
        """A JSON-serializable description (``schema.json``); ``kind`` is ``multitask``."""
        base = PointwiseSchema(self.name, self.dense, self.categorical).to_json()
        encoding = dict(base["encoding"])  # type: ignore[arg-type]
        encoding.pop("label")
        encoding["labels"] = "float_list each, click and conversion 1.0 / 0.0 (a conversion implies a click)"
        encoding["weight"] = "float_list, beta_pos for click positives and 1.0 for non-clicks (KDD 2024 Eq. 15)"
        return {"kind": "multitask", "name": self.name, "dense": list(self.dense),
                "categorical": list(self.categorical), "labels": list(self.labels), "weight": self.weight,
                "encoding": encoding}

    @classmethod
    def from_json(cls, obj: Dict[str, object]) -> "MultiTaskSchema":
        """Inverse of :meth:`to_json`."""
        return cls(name=str(obj["name"]), dense=tuple(obj["dense"]),  # type: ignore[arg-type]
                   categorical=tuple(obj["categorical"]),  # type: ignore[arg-type]
                   labels=tuple(obj.get("labels", MULTITASK_LABELS)),  # type: ignore[arg-type]
                   weight=str(obj.get("weight", WEIGHT)))


def load_any_schema(path: str):
    """Reads a ``schema.json``: a :class:`MultiTaskSchema` when its ``kind`` is ``multitask``, else a
    :class:`PointwiseSchema`."""
    with open(path, "r", encoding="utf-8") as f:
        obj = json.load(f)
    return MultiTaskSchema.from_json(obj) if obj.get("kind") == "multitask" else PointwiseSchema.from_json(obj)


ALIEXPRESS_CATEGORICAL: Tuple[str, ...] = tuple(f"categorical_{i}" for i in range(1, 17))
ALIEXPRESS_DENSE: Tuple[str, ...] = tuple(f"numerical_{i}" for i in range(1, 64))
#: The AliExpress CSV header: ``search_id`` (the session id, not a model feature), 16 categorical and 63
#: numerical features, then the two labels.
ALIEXPRESS_COLUMNS: List[str] = ["search_id", *ALIEXPRESS_CATEGORICAL, *ALIEXPRESS_DENSE, CLICK, CONVERSION]
ALIEXPRESS = MultiTaskSchema(name="aliexpress", dense=ALIEXPRESS_DENSE, categorical=ALIEXPRESS_CATEGORICAL)
