"""Shared test set-up: two logical CPU devices (before TensorFlow initialises) and a tiny prepared dataset."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tfrec.devices import configure_cpu_replicas

# MirroredStrategy tests need two logical CPU devices, which must exist before TensorFlow's runtime starts.
configure_cpu_replicas(2)

from tfrec.features import CRITEO, MISSING_TOKEN  # noqa: E402


def write_prepared_dataset(out_dir: str, rows_per_split=(512, 128, 128), seed: int = 0, beta_pos: float = 0.5):
    """Writes a small dataset in the prepared layout (shards, schema, vocab, transform, stats) without Beam.

    Label depends on I1 and C1 so a model can learn something. Returns the directory.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_dir, "vocab"), exist_ok=True)
    vocab = {c: [f"{i:08x}" for i in range(8)] + [MISSING_TOKEN] for c in CRITEO.categorical}
    for c, tokens in vocab.items():
        with open(os.path.join(out_dir, "vocab", f"{c}.txt"), "w") as f:
            f.write("\n".join(tokens) + "\n")
    with open(os.path.join(out_dir, "schema.json"), "w") as f:
        json.dump(CRITEO.to_json(), f)
    with open(os.path.join(out_dir, "transform.json"), "w") as f:
        json.dump({"kind": "log_minmax", "scale": {d: 5.0 for d in CRITEO.dense}, "missing_value": 0.0}, f)
    stats = {"rows_written": {}, "beta_pos": beta_pos}
    for split, n in zip(("train", "valid", "test"), rows_per_split):
        path = os.path.join(out_dir, f"{split}-00000-of-00001.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as w:
            for _ in range(n):
                i1 = float(rng.integers(0, 50))
                c1 = int(rng.integers(0, 10))  # 8, 9 are out of vocabulary
                logit = -1.0 + 0.08 * i1 - 0.5 * (c1 % 3)
                y = float(rng.random() < 1 / (1 + np.exp(-logit)))
                feats = {"label": tf.train.Feature(float_list=tf.train.FloatList(value=[y])),
                         "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[beta_pos if y else 1.0]))}
                for d in CRITEO.dense:
                    if rng.random() < 0.8:
                        v = i1 if d == "I1" else float(rng.integers(-2, 1000))
                        feats[d] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                for c in CRITEO.categorical:
                    if rng.random() < 0.9:
                        tok = f"{c1:08x}" if c == "C1" else f"{int(rng.integers(0, 10)):08x}"
                        feats[c] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[tok.encode()]))
                w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
        stats["rows_written"][split] = n
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump(stats, f)
    return out_dir


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small prepared dataset (512 / 128 / 128 rows, beta_pos 0.5) shared by the tests of a session."""
    return write_prepared_dataset(str(tmp_path_factory.mktemp("tiny_dataset")))
