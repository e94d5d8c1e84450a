"""The validation metrics that pick the best weights, lower the learning rate and stop early are the exact ones
`tfrec evaluate` reports, not Keras' 10,000-bucket AUC: on a validation split whose predictions fall in a range
narrower than one bucket the two differ (0.5 against ~0.9 here); single-task under 2 replicas, multi-task, and
list-wise pre-ranking training."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import roc_auc_score

from tfrec.config import load_config
from tfrec.evaluate import evaluate, predict_split
from tfrec.features import CRITEO, MISSING_TOKEN
from tfrec.train import train


def write_narrow_dataset(out_dir, rows=(256, 512, 64), seed=0):
    """A prepared Criteo-layout dataset where only I1 is present (0..999, the label rises with it) and every
    categorical feature is missing; I1's transform scale (10) keeps its model input in [0, 0.7], so an untrained
    DCN V2's probabilities span about 4e-6 (well inside one of Keras' 1e-4 wide AUC buckets) yet still rank the
    rows by I1."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_dir, "vocab"), exist_ok=True)
    for c in CRITEO.categorical:
        with open(os.path.join(out_dir, "vocab", f"{c}.txt"), "w") as f:
            f.write(f"00000001\n{MISSING_TOKEN}\n")
    with open(os.path.join(out_dir, "schema.json"), "w") as f:
        json.dump(CRITEO.to_json(), f)
    with open(os.path.join(out_dir, "transform.json"), "w") as f:
        json.dump({"kind": "log_minmax", "scale": {d: 10.0 if d == "I1" else 1.0 for d in CRITEO.dense},
                   "missing_value": 0.0}, f)
    stats = {"rows_written": {}, "beta_pos": 1.0}
    for split, n in zip(("train", "valid", "test"), rows):
        with tf.io.TFRecordWriter(os.path.join(out_dir, f"{split}-00000-of-00001.tfrecord.gz"), options="GZIP") as w:
            for _ in range(n):
                i1 = float(rng.integers(0, 1000))
                y = float(rng.random() < 1 / (1 + np.exp(-(i1 - 500) / 150)))
                feats = {"label": tf.train.Feature(float_list=tf.train.FloatList(value=[y])),
                         "weight": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
                         "I1": tf.train.Feature(float_list=tf.train.FloatList(value=[i1]))}
                w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
        stats["rows_written"][split] = n
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump(stats, f)
    return out_dir


def test_logged_val_auc_is_the_exact_auc_under_two_replicas(tmp_path):
    data = write_narrow_dataset(str(tmp_path / "data"))
    cfg = load_config(None, [f"data.dir={data}", f"train.model_dir={tmp_path / 'm'}", "model.dnn_hidden_units=[16, 8]",
                             "data.batch_size=64", "data.eval_batch_size=64", "data.shuffle_buffer=0",
                             "train.epochs=2", "train.steps_per_epoch=2", "train.learning_rate=1e-7",
                             "train.log_every_seconds=0", "train.replicas=2"])
    result = train(cfg, printer=lambda _: None)
    assert result.summary["replicas"] == 2
    assert result.summary["exact_validation_seconds"] > 0  # its cost is recorded in train_summary.json
    p, y, w = predict_split(result.model, data, "valid", 64)
    assert p.max() - p.min() < 1e-4  # the narrow range: the validation predictions share one or two buckets
    bucketed = keras.metrics.AUC(num_thresholds=10000)
    bucketed.update_state(y, p)
    exact = roc_auc_score(y, p)
    assert abs(float(bucketed.result()) - exact) > 0.1  # where Keras' AUC is far from the exact one
    history = result.history
    # The last epoch's weights are the best ones here (a learning rate of 1e-7 leaves them equal to 1e-6), so the
    # predictions above are those the last epoch's exact metrics were computed on.
    assert history["val_auc"][-1] == pytest.approx(exact, abs=1e-6)
    assert history["val_weighted_auc"][-1] == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-6)
    report = evaluate(cfg, "valid", model=result.model)
    assert history["val_auc"][-1] == pytest.approx(report["auc"], abs=1e-6)
    assert history["val_weighted_logloss"][-1] == pytest.approx(report["weighted_logloss"], abs=1e-6)
    # The best checkpoint was chosen on the exact values: its epoch holds the best exact weighted AUC.
    assert result.summary["best_val_weighted_auc"] == max(history["val_weighted_auc"])
    with open(tmp_path / "m" / "history.csv") as f:
        rows = f.read().splitlines()
    header = rows[0].split(",")
    logged = float(rows[-1].split(",")[header.index("val_auc")])
    assert logged == pytest.approx(exact, abs=1e-6)  # the CSV history has the exact value too


def test_preranking_val_auc_is_the_exact_impression_auc(tmp_path):
    from tests.support.hccp_files import write_listwise_dataset
    from tfrec.train_preranking import evaluate_preranking, train_preranking

    data = write_listwise_dataset(str(tmp_path / "data"))
    cfg = load_config(None, [f"data.dir={data}", f"train.model_dir={tmp_path / 'run'}", "train.epochs=1",
                             "train.steps_per_epoch=2", "train.replicas=1", "train.log_every_seconds=0",
                             "model.name=three_tower", "model.hash_bins=64", "model.embedding_dim=4", "model.num_experts=2",
                             "model.expert_units=[8]", "model.item_units=[8]", "model.cross_units=[4]",
                             "model.output_dim=4", "preranking.train_list_size=12",
                             "preranking.eval_list_size=16", "data.batch_size=8", "data.eval_batch_size=8"])
    result = train_preranking(cfg, printer=lambda _: None)
    report = evaluate_preranking(cfg, "valid", model=result.model, output=str(tmp_path / "m.json"))
    tasks = result.model.tasks
    logged = {t: result.history[f"val_{t}_auc"][-1] for t in tasks}
    exact = {t: report[f"AUC_{t}"] for t in tasks}
    assert np.isfinite(exact["click"])
    for t in tasks:
        assert logged[t] == pytest.approx(exact[t], abs=1e-6, nan_ok=True), (t, logged, exact)
    assert result.history["val_auc"][-1] == pytest.approx(exact["click"], abs=1e-6)
