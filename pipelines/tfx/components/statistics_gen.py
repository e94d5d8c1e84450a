"""StatisticsGen: per split row counts, positive rate per label and per feature presence, range and percentiles.

Statistics are computed from the written TFRecords (what training reads), not from the raw logs. The pass is
in-process (one record at a time, O(rows x features)); it reads every split file of the ``Examples`` artifact.

The labels are the family's (``tfrec.families.Family.labels``: ``label`` for ``pointwise``, ``click`` and
``conversion`` for ``multitask``); ``positives`` / ``positive_rate`` are the first label's, ``labels`` has each
label's. A family of list-wise records (``preranking``: ``ExampleListWithContext`` records) takes
:func:`pipelines.tfx.components.listwise_stats.split_statistics` instead (same layout; rows are lists, labels are
counted on impressions, features are the context and per-item features).

``statistics.json``: ``{split: {"rows", "positives", "positive_rate", "labels": {label: {"positives",
"positive_rate"}}, "features": {name: {"kind"
("float" | "bytes" | "int"), "present", "presence", "percentiles" (numeric: 101 values, 0..100), "distinct"
(bytes: distinct values, capped at 100000)}}}}``.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, Sequence, Tuple

import numpy as np

from pipelines.tfx.artifacts import Statistics
from pipelines.tfx.components import write_json
from pipelines.tfx.components.example_gen import family
from pipelines.tfx.components.value_ranges import count_values_outside

NAME = "statistics_gen"
INPUTS = ("examples",)
LABEL = "label"
DISTINCT_CAP = 100_000


def parameters(cfg) -> Dict[str, object]:
    from tfrec.families import EXAMPLE_LIST

    fam = family(cfg)
    labels = tuple(fam.labels)
    if fam.records == EXAMPLE_LIST:
        return {"labels": list(labels), "records": EXAMPLE_LIST}
    return {"label": LABEL} if labels == (LABEL,) else {"labels": list(labels)}


def split_statistics(files, labels: Sequence[str] = (LABEL,)) -> Dict[str, object]:
    """The statistics of the tf.Example records in ``files`` (GZIP TFRecords); ``labels``: the label features,
    main label first (counted, not described as features)."""
    import tensorflow as tf

    rows = 0
    positives = {name: 0.0 for name in labels}
    kinds: Dict[str, str] = {}
    present: Dict[str, int] = {}
    values: Dict[str, list] = {}
    distinct: Dict[str, set] = {}
    for record in tf.data.TFRecordDataset(list(files), compression_type="GZIP").as_numpy_iterator():
        ex = tf.train.Example.FromString(record)
        rows += 1
        for name, feat in ex.features.feature.items():
            kind = feat.WhichOneof("kind")
            vals = getattr(feat, kind).value if kind else []
            if name in positives:
                positives[name] += float(vals[0]) if len(vals) else 0.0
                continue
            kinds.setdefault(name, {"float_list": "float", "int64_list": "int", "bytes_list": "bytes"}.get(kind, "none"))
            if not len(vals):
                continue
            present[name] = present.get(name, 0) + 1
            if kind == "bytes_list":
                s = distinct.setdefault(name, set())
                if len(s) < DISTINCT_CAP:
                    s.update(vals)
            else:
                values.setdefault(name, []).extend(vals)
    features = {}
    for name, kind in sorted(kinds.items()):
        f = {"kind": kind, "present": present.get(name, 0), "presence": present.get(name, 0) / rows if rows else 0.0}
        if name in values:
            f["percentiles"] = [float(v) for v in np.percentile(np.asarray(values[name], np.float64),
                                                                np.arange(101))]
        if name in distinct:
            f["distinct"] = len(distinct[name])
        features[name] = f
    per_label = {name: {"positives": p, "positive_rate": p / rows if rows else None} for name, p in positives.items()}
    main = per_label[labels[0]]
    return {"rows": rows, "positives": main["positives"], "positive_rate": main["positive_rate"], "labels": per_label,
            "features": features}


def count_outside(files, ranges: Dict[str, Tuple[float, float]]) -> Dict[str, Tuple[int, int]]:
    """Exactly how many values of each numeric feature of ``ranges`` (name -> ``(lo, hi)``) lie outside its
    ``[lo, hi]``, in the tf.Example records of ``files``: name -> ``(outside, values)`` (every value of a
    multi-valued feature counts, as in the percentiles)."""
    import tensorflow as tf

    counts = {name: [0, 0] for name in ranges}
    for record in tf.data.TFRecordDataset(list(files), compression_type="GZIP").as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        for name, (lo, hi) in ranges.items():
            count_values_outside(feature, name, lo, hi, counts[name])
    return {name: (c[0], c[1]) for name, c in counts.items()}


def execute(ctx, inputs, params):
    data_dir = inputs["examples"].path(ctx.root)
    labels = params.get("labels", [LABEL])
    listwise = params.get("records") == "ExampleListWithContext"
    if listwise:
        import pipelines.tfx.components.listwise_stats as listwise_stats
        from tfrec.families import family_of

        schema = family_of(data_dir).load_schema(data_dir)
    stats = {}
    for split in ("train", "valid", "test"):
        files = sorted(glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord.gz")))
        stats[split] = (listwise_stats.split_statistics(files, schema, labels) if listwise
                        else split_statistics(files, labels))
    path = os.path.join(ctx.output_dir, "statistics.json")
    write_json(path, stats)
    return {"statistics": Statistics(uri=ctx.relative(ctx.output_dir), properties={
        "rows": {s: stats[s]["rows"] for s in stats}, "positive_rate": {s: stats[s]["positive_rate"] for s in stats}})}
