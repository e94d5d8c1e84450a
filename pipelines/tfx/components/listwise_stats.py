"""Statistics of list-wise records (``ExampleListWithContext``, the ``preranking`` family) for StatisticsGen.

One record is one request's list: a context ``tf.Example`` (user / request features) and one ``tf.Example`` per
item (N1 impressions, N2 unexposed ranking, N3 pre-ranking and N5 pool samples). The statistics have the layout of
the point-wise ones (:mod:`pipelines.tfx.components.statistics_gen`), so SchemaGen and ExampleValidator read
both alike:

* ``rows``: lists (requests); ``items``; ``sample_types``: items per sample type (``N1`` ... ``N5``);
* ``labels``: per task label, ``positives`` and ``positive_rate`` counted on the impressions (N1) only: task
  labels are 0 on unexposed items by construction, so a rate over all items would measure the sampling rates,
  not the users; ``positives`` / ``positive_rate``: the main label's (``click``);
* ``features``: the schema's context features (``level: context``, presence = share of lists) and per-item
  features (``level: item``, presence = share of items), each with its ``kind``, ``present``, ``presence``,
  ``percentiles`` (numeric) or ``distinct`` (bytes). An empty string counts as missing (it is the reader's
  missing value, :data:`tfrec.features.MISSING_CATEGORICAL`); a context sequence is present when non-empty.
  :data:`TIME_FEATURES` get ``min`` / ``max`` but no percentiles: the day moves forward with every new batch of
  logs (and is the split key of ``split_by: day``), so SchemaGen gives it no range to check.

The order fields and the ``exposure`` label describe the list's construction, not the data, and are left out.
The pass is in-process, one list at a time (O(items x features)).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from tfrec.features import MISSING_CATEGORICAL, SAMPLE_N1, SAMPLE_TYPES, ListwiseSchema

TIME_FEATURES = ("day",)
DISTINCT_CAP = 100_000
_KINDS = {"float_list": "float", "int64_list": "int", "bytes_list": "bytes"}
_TYPE_NAMES = {v: k for k, v in SAMPLE_TYPES.items()}


class _Features:
    """Presence, values and distinct counts of the features of one level (context or item)."""

    def __init__(self, names: Sequence[str], level: str):
        self.names, self.level = tuple(names), level
        self.kinds: Dict[str, str] = {}
        self.present = dict.fromkeys(self.names, 0)
        self.values: Dict[str, list] = {}
        self.distinct: Dict[str, set] = {}

    def add(self, features) -> None:
        for name in self.names:
            if name not in features:
                continue
            feat = features[name]
            kind = feat.WhichOneof("kind")
            self.kinds.setdefault(name, _KINDS.get(kind, "none"))
            vals = list(getattr(feat, kind).value) if kind else []
            if kind == "bytes_list":
                vals = [v for v in vals if v != MISSING_CATEGORICAL.encode()]
            if not vals:
                continue
            self.present[name] += 1
            if kind == "bytes_list":
                s = self.distinct.setdefault(name, set())
                if len(s) < DISTINCT_CAP:
                    s.update(vals)
            else:
                self.values.setdefault(name, []).extend(vals)

    def describe(self, total: int) -> Dict[str, dict]:
        out = {}
        for name in self.names:
            n = self.present[name]
            f = {"kind": self.kinds.get(name, "none"), "level": self.level, "present": n,
                 "presence": n / total if total else 0.0}
            if name in self.values:
                v = np.asarray(self.values[name], np.float64)
                if name in TIME_FEATURES:
                    f["min"], f["max"] = float(v.min()), float(v.max())
                else:
                    f["percentiles"] = [float(x) for x in np.percentile(v, np.arange(101))]
            if name in self.distinct:
                f["distinct"] = len(self.distinct[name])
            out[name] = f
        return out


def split_statistics(files, schema: ListwiseSchema, labels: Sequence[str]) -> Dict[str, object]:
    """The statistics (module docstring) of the ``ExampleListWithContext`` records in ``files`` (GZIP TFRecords);
    ``labels``: the task labels to count on impressions, main label first.

    Raises:
      ValueError: a context and an item feature share a name, or a label is not a task of the schema.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    context_names = schema.context_categorical + schema.context_int + schema.context_sequences
    item_names = schema.item_categorical + schema.item_dense
    shared = sorted(set(context_names) & set(item_names))
    if shared:
        raise ValueError(f"the list-wise schema {schema.name!r} names {shared} both as context and item features")
    unknown = [name for name in labels if name not in schema.tasks]
    if unknown:
        raise ValueError(f"labels {unknown} are not tasks of the list-wise schema {schema.name!r} ({schema.tasks})")
    context, item = _Features(context_names, "context"), _Features(item_names, "item")
    rows = items = impressions = 0
    types = dict.fromkeys(SAMPLE_TYPES, 0)
    positives = dict.fromkeys(labels, 0.0)
    for record in tf.data.TFRecordDataset(list(files), compression_type="GZIP").as_numpy_iterator():
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        rows += 1
        context.add(elwc.context.features.feature)
        for ex in elwc.examples:
            feats = ex.features.feature
            items += 1
            item.add(feats)
            st = feats["sample_type"].int64_list.value[0] if "sample_type" in feats else None
            name = _TYPE_NAMES.get(st)
            if name is not None:
                types[name] += 1
            if st != SAMPLE_N1:
                continue
            impressions += 1
            for label in labels:
                vals = feats[label].float_list.value if label in feats else []
                positives[label] += float(vals[0]) if len(vals) else 0.0
    per_label = {name: {"positives": p, "positive_rate": p / impressions if impressions else None}
                 for name, p in positives.items()}
    main = per_label[labels[0]]
    return {"rows": rows, "items": items, "impressions": impressions, "sample_types": types,
            "positives": main["positives"], "positive_rate": main["positive_rate"], "labels": per_label,
            "features": {**context.describe(rows), **item.describe(items)}}


def count_outside(files, schema: ListwiseSchema, ranges: Dict[str, Tuple[float, float]]) -> Dict[str, Tuple[int, int]]:
    """Exactly how many values of each numeric context or item feature of ``ranges`` (name -> ``(lo, hi)``) lie
    outside its ``[lo, hi]`` in the ``ExampleListWithContext`` records of ``files``: name -> ``(outside, values)``
    (context features counted once per list, item features once per item, as in :func:`split_statistics`)."""
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    from pipelines.tfx.components.value_ranges import count_values_outside

    context_names = set(schema.context_categorical + schema.context_int + schema.context_sequences)
    in_context = {n: r for n, r in ranges.items() if n in context_names}
    in_items = {n: r for n, r in ranges.items() if n not in context_names}
    counts = {name: [0, 0] for name in ranges}
    for record in tf.data.TFRecordDataset(list(files), compression_type="GZIP").as_numpy_iterator():
        elwc = input_pb2.ExampleListWithContext.FromString(record)
        feature = elwc.context.features.feature
        for name, (lo, hi) in in_context.items():
            count_values_outside(feature, name, lo, hi, counts[name])
        if in_items:
            for ex in elwc.examples:
                feature = ex.features.feature
                for name, (lo, hi) in in_items.items():
                    count_values_outside(feature, name, lo, hi, counts[name])
    return {name: (c[0], c[1]) for name, c in counts.items()}
