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
      name: dataset name (``criteo``).
      dense: names of numeric features, stored raw as float32 (missing -> absent -> NaN).
      categorical: names of categorical features, stored raw as bytes (missing -> absent -> "").
      label: name of the label feature.
      weight: name of the sample-weight feature.
    """

    #: The family (``tfrec.families``) of a dataset with this schema: ``schema.json``'s ``kind``.
    kind = "pointwise"

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

    def pop_labels(self, parsed: Dict[str, object]):
        """Removes the label from a parsed batch (``tf.io.parse_example`` of :meth:`parse_spec`) and returns it:
        ``[batch]``."""
        return parsed.pop(self.label)

    def to_json(self) -> Dict[str, object]:
        """A JSON-serializable description (written as ``schema.json`` beside the TFRecords)."""
        return {
            "kind": self.kind,
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
      name: dataset name (``aliexpress``, ``aliccp``).
      dense / categorical: as in :class:`PointwiseSchema`.
      labels: the two label feature names, (click, conversion).
      weight: name of the sample-weight feature.
    """

    #: The family (``tfrec.families``) of a dataset with this schema: ``schema.json``'s ``kind``.
    kind = "multitask"

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

    def pop_labels(self, parsed: Dict[str, object]):
        """Removes the labels from a parsed batch and returns them stacked: ``[batch, 2]`` = (click, conversion)."""
        import tensorflow as tf

        return tf.stack([parsed.pop(name) for name in self.labels], axis=1)

    def to_json(self) -> Dict[str, object]:
        """A JSON-serializable description (``schema.json``); ``kind`` is ``multitask``."""
        base = PointwiseSchema(self.name, self.dense, self.categorical).to_json()
        encoding = dict(base["encoding"])  # type: ignore[arg-type]
        encoding.pop("label")
        encoding["labels"] = "float_list each, click and conversion 1.0 / 0.0 (a conversion implies a click)"
        encoding["weight"] = "float_list, beta_pos for click positives and 1.0 for non-clicks (KDD 2024 Eq. 15)"
        return {"kind": self.kind, "name": self.name, "dense": list(self.dense),
                "categorical": list(self.categorical), "labels": list(self.labels), "weight": self.weight,
                "encoding": encoding}

    @classmethod
    def from_json(cls, obj: Dict[str, object]) -> "MultiTaskSchema":
        """Inverse of :meth:`to_json`."""
        return cls(name=str(obj["name"]), dense=tuple(obj["dense"]),  # type: ignore[arg-type]
                   categorical=tuple(obj["categorical"]),  # type: ignore[arg-type]
                   labels=tuple(obj.get("labels", MULTITASK_LABELS)),  # type: ignore[arg-type]
                   weight=str(obj.get("weight", WEIGHT)))


ALIEXPRESS_CATEGORICAL: Tuple[str, ...] = tuple(f"categorical_{i}" for i in range(1, 17))
ALIEXPRESS_DENSE: Tuple[str, ...] = tuple(f"numerical_{i}" for i in range(1, 64))
#: The AliExpress CSV header: ``search_id`` (the session id, not a model feature), 16 categorical and 63
#: numerical features, then the two labels.
ALIEXPRESS_COLUMNS: List[str] = ["search_id", *ALIEXPRESS_CATEGORICAL, *ALIEXPRESS_DENSE, CLICK, CONVERSION]
ALIEXPRESS = MultiTaskSchema(name="aliexpress", dense=ALIEXPRESS_DENSE, categorical=ALIEXPRESS_CATEGORICAL)
# ----------------------------------------------------------------------------------------------- list-wise (HCCP)

#: HCCP sample types (section 3.2), stored per item in ``sample_type``: N1 impression, N2 unexposed ranking
#: sequence, N3 pre-ranking sequence, N5 pool negative. N4 (in-batch negatives) is built inside the model from
#: other requests' impressions, so it never appears on disk.
SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5 = 1, 2, 3, 5
SAMPLE_TYPES: Dict[str, int] = {"N1": SAMPLE_N1, "N2": SAMPLE_N2, "N3": SAMPLE_N3, "N5": SAMPLE_N5}
#: Value of an order feature (``rank``, ``*_position``, ``preranking_order``, ``display_position``) for an item that
#: has no such order (and of every int feature on padded slots).
NO_ORDER = -1


@dataclasses.dataclass(frozen=True)
class ListwiseSchema:
    """Schema of a list-wise dataset: one ``ExampleListWithContext`` per request.

    Context (one ``tf.Example``): ``context_categorical`` (bytes, one value), ``context_int`` (int64, one value),
    ``context_sequences`` (bytes, any number of values). Examples (one ``tf.Example`` per item):
    ``item_categorical`` (bytes), ``item_dense`` (float), the int64 order fields :meth:`order_fields` and the
    float labels :meth:`label_fields`. The encoding of every field is in :meth:`to_json` (``schema.json``).

    Attributes:
      name: dataset name.
      context_categorical / context_int / context_sequences: context feature names.
      item_categorical / item_dense: per-item feature names (from the item table).
      tasks: the Cxr estimation tasks; each has a label ``<task>``, a raw arranged order ``rt_<task>`` and its
        position ``rt_<task>_position``.
      item_scores: per-item float scores of an upstream model (e.g. ``ranker_score``, the ranking model's
        predicted click probability), ``-1.0`` where an item has none (and on padded slots).
    """

    #: The family (``tfrec.families``) of a dataset with this schema: ``schema.json``'s ``kind``.
    kind = "preranking"

    name: str
    context_categorical: Tuple[str, ...]
    context_int: Tuple[str, ...]
    context_sequences: Tuple[str, ...]
    item_categorical: Tuple[str, ...]
    item_dense: Tuple[str, ...]
    tasks: Tuple[str, ...]
    item_scores: Tuple[str, ...] = ()

    def order_fields(self) -> Tuple[str, ...]:
        """Per-item int64 fields: sample type, orders and arranged orders (raw and as positions)."""
        per_task = tuple(f for t in self.tasks for f in (f"rt_{t}", f"rt_{t}_position"))
        return ("sample_type", "preranking_order", "rank", "display_position", "rc", "rc_position") + per_task

    def label_fields(self) -> Tuple[str, ...]:
        """Per-item float labels: ``exposure`` and one per task."""
        return ("exposure",) + self.tasks

    def context_feature_spec(self) -> Dict[str, object]:
        """Parse spec of the context ``tf.Example``."""
        import tensorflow as tf  # local: the Beam workers import this module without TensorFlow.

        spec: Dict[str, object] = {n: tf.io.FixedLenFeature([], tf.string, default_value=MISSING_CATEGORICAL)
                                   for n in self.context_categorical}
        spec.update({n: tf.io.FixedLenFeature([], tf.int64, default_value=0) for n in self.context_int})
        spec.update({n: tf.io.VarLenFeature(tf.string) for n in self.context_sequences})
        return spec

    def example_feature_spec(self) -> Dict[str, object]:
        """Parse spec of each item ``tf.Example``; the defaults fill padded slots (labels -1 = padding)."""
        import tensorflow as tf

        spec: Dict[str, object] = {n: tf.io.FixedLenFeature([], tf.string, default_value=MISSING_CATEGORICAL)
                                   for n in self.item_categorical}
        spec.update({n: tf.io.FixedLenFeature([], tf.float32, default_value=0.0) for n in self.item_dense})
        spec.update({n: tf.io.FixedLenFeature([], tf.int64, default_value=NO_ORDER) for n in self.order_fields()})
        spec.update({n: tf.io.FixedLenFeature([], tf.float32, default_value=-1.0)
                     for n in self.label_fields() + tuple(self.item_scores)})
        return spec

    def parse(self, serialized, list_size=None, mask_feature_name: str = "example_mask"):
        """Parses a batch of serialized ``ExampleListWithContext`` with ``tfr.data.parse_from_example_list``.

        Args:
          serialized: ``[batch]`` string tensor.
          list_size: pad / truncate every list to this many items (None: the longest list of the batch).
          mask_feature_name: name of the returned ``[batch, list_size]`` bool mask (False on padded slots).

        Returns:
          dict: context features ``[batch]`` (sequences as ``tf.SparseTensor`` ``[batch, None]``), item features
          ``[batch, list_size]``, and the mask.
        """
        import tensorflow_ranking as tfr

        return tfr.data.parse_from_example_list(
            serialized, list_size=list_size, context_feature_spec=self.context_feature_spec(),
            example_feature_spec=self.example_feature_spec(), mask_feature_name=mask_feature_name)

    def to_json(self) -> Dict[str, object]:
        """A JSON-serializable description (written as ``schema.json`` beside the TFRecords)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "format": "tensorflow_serving.ExampleListWithContext, one per request",
            "context_categorical": list(self.context_categorical),
            "context_int": list(self.context_int),
            "context_sequences": list(self.context_sequences),
            "item_categorical": list(self.item_categorical),
            "item_dense": list(self.item_dense),
            "tasks": list(self.tasks),
            "item_scores": list(self.item_scores),
            "order_fields": list(self.order_fields()),
            "label_fields": list(self.label_fields()),
            "sample_types": dict(SAMPLE_TYPES),
            "no_order": NO_ORDER,
            "encoding": {
                "sample_type": "int64: 1 N1 impression, 2 N2 unexposed ranking, 3 N3 pre-ranking, 5 N5 pool",
                "preranking_order": "int64: 0-based position in the retrieved list (pre-ranking order); -1 for N5",
                "rank": "int64: ranking order r (1-based); -1 for N3 and N5",
                "display_position": "int64: 0-based position in the exposure list; -1 if unexposed",
                "rc": "int64: r^c = r - (e + l^clk) * N^r (negative for impressions); 0 where rank is -1",
                "rc_position": "int64: 0-based position in R^c (ascending r^c), the list_mle label of Eq. 3; -1 "
                               "for N3 and N5",
                "rt_<task>": "int64: r^t = r - (e + l^t) * N^r for impressions; 0 for unexposed items",
                "rt_<task>_position": "int64: 0-based position in R^t (impressions, ascending r^t), the list_mle "
                                      "label of Eq. 4; -1 for unexposed items",
                "labels": "float: 1.0 / 0.0; task labels are 0.0 on unexposed items; -1.0 only on padded slots",
                "diversity": "float: 1.0 for an impression whose category appears at no earlier display position "
                             "of the request's exposure list",
                "order of the items in a list": "R^c order (N1 and N2 by rc_position), then N3 by "
                                                "preranking_order, then N5",
                "padding": "parse with a list_size: int fields -1, labels -1.0, strings '', floats 0.0",
            },
        }

    @classmethod
    def from_json(cls, obj: Dict[str, object]) -> "ListwiseSchema":
        """Inverse of :meth:`to_json`."""
        keys = ("context_categorical", "context_int", "context_sequences", "item_categorical", "item_dense", "tasks")
        return cls(name=str(obj["name"]), item_scores=tuple(obj.get("item_scores", ())),  # type: ignore[arg-type]
                   **{k: tuple(obj[k]) for k in keys})  # type: ignore[arg-type]


#: The HCCP pre-ranking schema written by ``pipelines.hybrid_samples`` (tasks: click, purchase, diversity).
HCCP = ListwiseSchema(
    name="hccp",
    context_categorical=("request_id", "user_id", "user_segment", "scenario"),
    context_int=("day", "num_retrieved", "num_ranked", "num_exposed"),
    context_sequences=("all_scenario_clicks", "all_scenario_purchases", "click_history", "click_history_category"),
    item_categorical=("item_id", "category"),
    item_dense=("price",),
    tasks=("click", "purchase", "diversity"),
)
