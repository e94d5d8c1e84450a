"""TFDV validation of point-wise data against the last validated data, with the labels' drift (ValidationGate).

The reference is the schema and the statistics of the last data that passed validation in this pipeline (kept in
a baseline directory, :class:`Baseline`); on the first run it is this run's own (the data is only checked against
itself). Three kinds of anomaly, all found by ``tfdv.validate_statistics``:

* the stock ExampleValidator's anomalies of this run (read from its ExampleAnomalies artifact, per split);
* each split's statistics against the reference schema (a missing feature, a new feature, a feature of another
  type, values outside a categorical domain in more than ``validator.max_out_of_range_fraction`` of the rows:
  the schema's ``distribution_constraints.min_domain_mass``);
* the drift of each label of the train split, through TFDV's drift comparator: the Jensen-Shannon divergence of the
  label's histogram against the reference train statistics. The threshold is the divergence of a relative change of
  ``validator.positive_rate_drift`` at the reference rate (:func:`jsd_threshold`), so the setting means what it
  means for the home-made runner: ``|p - p_ref| / p_ref`` beyond it is an anomaly.
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Dict, List, Optional, Sequence

SCHEMA_FILE = "schema.pbtxt"


def bernoulli_jsd(p: float, q: float) -> float:
    """Jensen-Shannon divergence in bits of Bernoulli(p) and Bernoulli(q): the divergence TFDV computes from the
    histograms of a 0/1 label (one bucket of zeros, one of ones).

    ``JSD = H((p + q) / 2) - (H(p) + H(q)) / 2`` with ``H`` the binary entropy in bits.
    """
    def h(x):
        return 0.0 if x <= 0.0 or x >= 1.0 else -(x * math.log2(x) + (1 - x) * math.log2(1 - x))

    return h((p + q) / 2) - (h(p) + h(q)) / 2


def jsd_threshold(p_ref: float, relative: float) -> float:
    """The JSD threshold of a relative rate change ``relative`` at the reference rate ``p_ref``: the smaller of the
    divergences at ``p_ref (1 - relative)`` and ``p_ref (1 + relative)`` (capped to [0, 1]), so a change beyond
    ``relative`` on either side exceeds it."""
    lo, hi = max(0.0, p_ref * (1 - relative)), min(1.0, p_ref * (1 + relative))
    return min(bernoulli_jsd(p_ref, lo), bernoulli_jsd(p_ref, hi))


class Baseline:
    """The last validated data of a pipeline: ``<dir>/schema.pbtxt`` and ``<dir>/Split-<name>/FeatureStats.pb``
    (a copy of that run's statistics artifact), replaced in one rename when new data passes."""

    def __init__(self, path: str):
        self.path = path

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self.path, SCHEMA_FILE))

    def schema(self):
        import tensorflow_data_validation as tfdv

        return tfdv.load_schema_text(os.path.join(self.path, SCHEMA_FILE))

    def statistics(self, split: str):
        from tensorflow_metadata.proto.v0 import statistics_pb2

        return _read_stats(os.path.join(self.path, f"Split-{split}"), statistics_pb2)

    def replace(self, schema, stats_uri: str, splits: Sequence[str]) -> None:
        """Keeps ``schema`` and the statistics artifact at ``stats_uri`` as the new baseline."""
        import tensorflow_data_validation as tfdv

        tmp = self.path.rstrip("/") + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        tfdv.write_schema_text(schema, os.path.join(tmp, SCHEMA_FILE))
        for split in splits:
            shutil.copytree(os.path.join(stats_uri, f"Split-{split}"), os.path.join(tmp, f"Split-{split}"))
        old = self.path.rstrip("/") + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(self.path):
            os.rename(self.path, old)
        os.rename(tmp, self.path)
        shutil.rmtree(old, ignore_errors=True)


def _read_stats(split_dir: str, statistics_pb2):
    """The ``DatasetFeatureStatisticsList`` of a statistics split directory (TFX 1.15: ``FeatureStats.pb``)."""
    for name in ("FeatureStats.pb", "stats_tfrecord"):
        path = os.path.join(split_dir, name)
        if os.path.exists(path):
            if name.endswith(".pb"):
                with open(path, "rb") as f:
                    return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
            import tensorflow_data_validation as tfdv

            return tfdv.load_statistics(path)
    raise FileNotFoundError(f"no statistics in {split_dir}")


def label_mean(stats, label: str) -> Optional[float]:
    """The mean of numeric feature ``label`` in a ``DatasetFeatureStatisticsList`` (its positive rate)."""
    for ds in stats.datasets:
        for f in ds.features:
            if f.path.step and f.path.step[-1] == label and f.HasField("num_stats"):
                return float(f.num_stats.mean)
    return None


def reference_schema(schema, reference_train_stats, labels: Sequence[str], params: Dict):
    """A copy of ``schema`` with the drift comparators of ``labels`` and the domain mass of the categorical
    features set from ``params`` (``positive_rate_drift``, ``max_out_of_range_fraction``)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    for f in out.feature:
        if f.HasField("domain") or f.HasField("string_domain"):
            f.distribution_constraints.min_domain_mass = 1.0 - float(params["max_out_of_range_fraction"])
    for label in labels:
        p_ref = label_mean(reference_train_stats, label)
        if p_ref is None or p_ref <= 0.0:
            continue
        feature = tfdv.get_feature(out, label)
        feature.drift_comparator.jensen_shannon_divergence.threshold = jsd_threshold(
            p_ref, float(params["positive_rate_drift"]))
    return out


def describe(anomalies, split: str, source: str, current_stats=None, reference_stats=None) -> List[Dict]:
    """One dict per anomaly of a TFDV ``Anomalies`` proto: ``kind``, ``split``, ``feature``, ``message``."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    drift_types = {anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
                   anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH}
    out = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        kept = [r for r in info.reason if r.type not in drift_types]  # drift is reported below, with its numbers
        if not kept:
            continue
        reasons = "; ".join(f"{r.short_description}: {r.description}" for r in kept)
        out.append({"kind": "schema", "source": source, "split": split, "feature": name,
                    "message": f"feature {name} in {split}: {reasons}"})
    if anomalies.HasField("dataset_anomaly_info"):
        out.append({"kind": "dataset", "source": source, "split": split, "feature": "",
                    "message": f"{split}: {anomalies.dataset_anomaly_info.description}"})
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for m in info.drift_measurements:
            if m.value <= m.threshold:
                continue
            rates = ""
            if current_stats is not None and reference_stats is not None:
                p, p_ref = label_mean(current_stats, name), label_mean(reference_stats, name)
                if p is not None and p_ref:
                    rates = (f"; {split} rate {p:.4f} against {p_ref:.4f} of the last validated data "
                             f"({abs(p - p_ref) / p_ref:.0%} change)")
            out.append({"kind": "drift", "source": source, "split": split, "feature": name, "value": m.value,
                        "threshold": m.threshold,
                        "message": f"drift of {name}: Jensen-Shannon divergence {m.value:.5f} > {m.threshold:.5f}"
                                   + rates})
    return out
