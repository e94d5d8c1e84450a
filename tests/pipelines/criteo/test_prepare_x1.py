"""Criteo x1 as FuxiCTR / BARS prepare it: its numeric columns (already normalised floats) reach the model as they
are, categorical values seen once are kept (min count 1); the Kaggle TSV keeps min count 10 and log_minmax; a key
the config sets wins; formats whose defaults differ need the key set."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import pipelines.criteo as criteo
from tfrec.config import ConfigError, PrepareConfig
from tfrec.features import CRITEO, CRITEO_CATEGORICAL, CRITEO_DENSE
from tfrec.layers.embedding import transform_dense

X1_HEADER = ",".join(["label", *CRITEO_DENSE, *CRITEO_CATEGORICAL])


def _x1_file(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows, dense = [], []
    for i in range(n):
        # x1's numeric columns: floats in a small range (some negative, some missing).
        d = [None if rng.random() < 0.1 else float(np.float32(rng.uniform(-0.5, 1.5))) for _ in CRITEO_DENSE]
        cats = [f"v{i}" if j == 0 else f"t{i % 3}" for j in range(len(CRITEO_CATEGORICAL))]  # C1: each seen once
        rows.append(",".join([str(i % 2)] + ["" if x is None else repr(x) for x in d] + cats))
        dense.append(d)
    path.write_text(X1_HEADER + "\n" + "\n".join(rows) + "\n")
    return dense


def _kaggle_file(path, n=20):
    lines = []
    for i in range(n):
        lines.append("\t".join([str(i % 2)] + [str(i * 100 + j) for j in range(13)]
                               + [f"{i % 4:08x}"] * len(CRITEO_CATEGORICAL)))
    path.write_text("\n".join(lines) + "\n")


def _read_dense(out_dir):
    files = sorted(tf.io.gfile.glob(os.path.join(str(out_dir), "train-*.tfrecord.gz")))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1000)
    parsed = [tf.io.parse_example(b, CRITEO.parse_spec()) for b in ds]
    return {f: np.concatenate([p[f].numpy() for p in parsed]) for f in CRITEO_DENSE}


@pytest.mark.parametrize("input_format", ["x1", "auto"])
def test_x1_numeric_columns_pass_through_unchanged(tmp_path, input_format):
    dense = _x1_file(tmp_path / "train.csv")
    out = tmp_path / "out"
    stats = criteo.run(PrepareConfig(inputs=[str(tmp_path / "train.csv")], output=str(out), input_format=input_format,
                                     split_ratios=[1.0, 0.0, 0.0], num_shards=1, runner="DirectRunner"))
    assert stats["numeric_transform"] == "none" and stats["min_count"] == 1
    transform = json.load(open(out / "transform.json"))
    assert transform["kind"] == "none"
    got = _read_dense(out)
    written = sorted(tuple(np.nan if x is None else x for x in row) for row in dense)
    # What the model feeds its numeric embeddings: the transform of the stored values, equal to the CSV's floats
    # (missing -> 0), not log-scaled a second time.
    fed = np.stack([transform_dense(tf.constant(got[f]), transform["kind"], transform["scale"][f]).numpy()
                    for f in CRITEO_DENSE], axis=1)
    want = np.nan_to_num(np.asarray(written, dtype=np.float32), nan=0.0)
    np.testing.assert_array_equal(np.asarray(sorted(map(tuple, fed))), np.asarray(sorted(map(tuple, want))))
    # min count 1: every C1 value (each seen once) is in the vocabulary.
    vocab = (out / "vocab" / "C1.txt").read_text().split()
    assert sorted(vocab) == sorted(f"v{i}" for i in range(40))


def test_kaggle_keeps_its_defaults(tmp_path):
    _kaggle_file(tmp_path / "train.txt")
    out = tmp_path / "out"
    stats = criteo.run(PrepareConfig(inputs=[str(tmp_path / "train.txt")], output=str(out), input_format="kaggle",
                                     split_ratios=[1.0, 0.0, 0.0], num_shards=1, runner="DirectRunner"))
    assert stats["numeric_transform"] == "log_minmax" and stats["min_count"] == 10
    assert json.load(open(out / "transform.json"))["kind"] == "log_minmax"
    assert (out / "vocab" / "C1.txt").read_text().split() == []  # 4 values, 5 times each: all under 10
    got = _read_dense(out)["I13"]
    assert sorted(got.tolist()) == [float(i * 100 + 12) for i in range(20)]  # stored raw; the model takes the log


def test_min_count_default_per_format_and_explicit_values_win():
    assert PrepareConfig(input_format="x1").with_format_defaults().min_count == 1
    assert PrepareConfig(input_format="x1").with_format_defaults().numeric_transform == "none"
    for fmt in ("kaggle", "aliexpress", "aliccp"):
        cfg = PrepareConfig(input_format=fmt).with_format_defaults()
        assert (cfg.min_count, cfg.numeric_transform) == (10, "log_minmax")
    auto = PrepareConfig()
    assert auto.with_format_defaults(["x1", "x1"]).min_count == 1
    assert auto.with_format_defaults(["kaggle"]).min_count == 10
    given = PrepareConfig(input_format="x1", min_count=10, numeric_transform="log_minmax").with_format_defaults()
    assert (given.min_count, given.numeric_transform) == (10, "log_minmax")
    with pytest.raises(ConfigError, match="prepare.min_count"):
        auto.with_format_defaults(["x1", "kaggle"])
    mixed = PrepareConfig(min_count=5, numeric_transform="minmax").with_format_defaults(["x1", "kaggle"])
    assert (mixed.min_count, mixed.numeric_transform) == (5, "minmax")
    assert math.isclose(PrepareConfig().beta_pos, 1.0)
