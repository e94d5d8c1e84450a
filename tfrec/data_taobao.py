"""The Taobao display-ad data contracts: DIN's point-wise examples and the HCCP lists (schemas, parse, tf.data).

Written by ``pipelines.taobao`` (see its modules for the reading of the raw files):

* ``<output>/{train,valid,test}-SSSSS-of-NNNNN.tfrecord.gz``: one ``tf.train.Example`` per impression, the DIN
  training data. Features (:func:`din_feature_spec`): the request's context :data:`CONTEXT_FEATURES` (bytes),
  the ad's :data:`ITEM_FEATURES` (bytes) and ``price`` (float), the behaviour history :data:`HISTORY_FEATURES`
  (bytes lists, oldest first; ``click_history`` holds ad ids, ``""`` for behaviour-log entries), ``day`` and
  ``time_stamp`` (int64), ``request_id`` (bytes) and ``label`` (float, the click).
* ``<lists_output>/...``: one ``ExampleListWithContext`` per request, :data:`TAOBAO_LISTS` (the HCCP list
  layout of ``tfrec.features.ListwiseSchema`` with the click task only and the ranker's score per item).

The list context keeps the names the Three-Tower model reads (``tfrec.models.preranking.towers``): ``user_id``,
``user_segment`` (the profile's ``cms_group_id``), ``scenario`` (the ``pid``), ``click_history`` and
``click_history_category``; items ``item_id`` (``adgroup_id``), ``category`` (``cate_id``) and ``price``. The
other profile fields, ``brand``, ``campaign_id``, ``customer`` and ``click_history_brand`` travel too (DIN uses
them; the Three-Tower towers ignore them).
"""

from __future__ import annotations

from typing import Dict, Optional

from tfrec.config_taobao import PROFILE_FIELDS
from tfrec.features import ListwiseSchema

CONTEXT_FEATURES = ("user_id", "user_segment", "scenario") + PROFILE_FIELDS
ITEM_FEATURES = ("item_id", "category", "brand", "campaign_id", "customer")
HISTORY_FEATURES = ("click_history", "click_history_category", "click_history_brand")
LABEL = "label"

#: The lists of the Taobao protocol (``pipelines.taobao.lists_pipeline.run_lists``).
TAOBAO_LISTS = ListwiseSchema(
    name="taobao",
    context_categorical=("request_id",) + CONTEXT_FEATURES,
    context_int=("day", "num_retrieved", "num_ranked", "num_exposed"),
    context_sequences=HISTORY_FEATURES,
    item_categorical=ITEM_FEATURES,
    item_dense=("price",),
    tasks=("click",),
    item_scores=("ranker_score",),
)


def din_feature_spec() -> Dict[str, object]:
    """``tf.io.parse_example`` spec of the point-wise examples (sequences as ``VarLenFeature``)."""
    import tensorflow as tf  # local: the Beam workers import this module without TensorFlow

    spec: Dict[str, object] = {n: tf.io.FixedLenFeature([], tf.string, default_value="")
                               for n in ("request_id",) + CONTEXT_FEATURES + ITEM_FEATURES}
    spec["price"] = tf.io.FixedLenFeature([], tf.float32, default_value=0.0)
    spec.update({n: tf.io.FixedLenFeature([], tf.int64, default_value=0) for n in ("day", "time_stamp")})
    spec.update({n: tf.io.VarLenFeature(tf.string) for n in HISTORY_FEATURES})
    spec[LABEL] = tf.io.FixedLenFeature([], tf.float32)
    return spec


def dense_history(features: Dict[str, object], max_history: int) -> Dict[str, object]:
    """The history features as dense ``[B, max_history]`` strings: each row's ``max_history`` most recent entries
    (the last ones: histories are oldest first), oldest first, ``""`` padding after them. Sparse features (as
    parsed) are cut by their own row lengths (a ``""`` brand is a value, not padding); dense ones are taken as
    already left-aligned and cut or padded to ``max_history`` columns."""
    import tensorflow as tf

    out = dict(features)
    for n in HISTORY_FEATURES:
        v = features[n]
        if isinstance(v, tf.SparseTensor):
            dense = tf.RaggedTensor.from_sparse(v)[:, -max_history:].to_tensor(default_value="")
        else:
            dense = tf.convert_to_tensor(v)[:, :max_history]
        out[n] = tf.pad(dense, [[0, 0], [0, max_history - tf.shape(dense)[1]]], constant_values="")
    return out


def din_dataset(files, batch_size: int, max_history: int, training: bool, seed: Optional[int] = None,
                shuffle_buffer: int = 10_000):
    """``(features, label)`` batches of the point-wise examples: parsed per batch, histories dense
    ``[B, max_history]`` (:func:`dense_history`), ``label`` ``[B]``."""
    import tensorflow as tf

    from tfrec.data import sharded_records

    ds = sharded_records(list(files), None, training, seed, cycle_length=max(1, len(files)))
    if training and shuffle_buffer > 0:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    spec = din_feature_spec()

    def parse(serialized):
        features = dense_history(tf.io.parse_example(serialized, spec), max_history)
        return features, features.pop(LABEL)

    ds = ds.batch(batch_size, drop_remainder=False).map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                                                         deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
