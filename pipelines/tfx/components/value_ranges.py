"""Counting the values of a ``tf.train.Example`` feature that lie outside a range, shared by the statistics of
rows (:mod:`pipelines.tfx.components.statistics_gen`) and of lists (:mod:`pipelines.tfx.components.listwise_stats`)."""


def count_values_outside(feature, name: str, lo: float, hi: float, acc: list) -> None:
    """Adds the values of ``feature[name]`` (a proto map) outside ``[lo, hi]`` and their number to ``acc``."""
    if name not in feature:
        return
    feat = feature[name]
    kind = feat.WhichOneof("kind")
    if kind not in ("float_list", "int64_list"):
        return
    vals = getattr(feat, kind).value
    acc[0] += sum(1 for v in vals if v < lo or v > hi)
    acc[1] += len(vals)
