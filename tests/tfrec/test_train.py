"""Training under MirroredStrategy: 2 replicas == 1 device, resume after a kill, NaN stop, evaluation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import log_loss, roc_auc_score

from tfrec import data as data_lib
from tfrec import losses
from tfrec.config import load_config
from tfrec.devices import make_strategy
from tfrec.evaluate import evaluate
from tfrec.features import CRITEO
from tfrec.train import TrainingError, build_model, train
from tests.support import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


def _cfg(tiny_dataset, model_dir, *extra):
    return load_config(None, [f"data.dir={tiny_dataset}", f"train.model_dir={model_dir}",
                              "model.dnn_hidden_units=[16, 8]", "data.batch_size=64", "data.eval_batch_size=64",
                              "train.log_every_seconds=0", "data.shuffle_buffer=0", *extra])


def _one_step_weights(cfg, replicas, init_weights, batch, optimizer):
    strategy = make_strategy(replicas)
    with strategy.scope():
        model = build_model(cfg)
        model(batch[0], training=False)
        model.set_weights(init_weights)
        model.compile(optimizer=optimizer(), loss=losses.get("weighted_bce"))
    ds = tf.data.Dataset.from_tensors(batch)  # one global batch, split over the replicas
    model.fit(strategy.experimental_distribute_dataset(ds), epochs=1, steps_per_epoch=1, verbose=0)
    return [w for w in model.get_weights()]


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(learning_rate=0.5),  # sensitive to the loss scale
    lambda: keras.optimizers.Adam(learning_rate=1e-3, global_clipnorm=1e-3),  # the clip is active
], ids=["sgd", "adam_clipped"])
def test_two_replicas_equal_one_device(tiny_dataset, tmp_path, optimizer):
    cfg = _cfg(tiny_dataset, str(tmp_path), "model.dropout=0.0", "model.embedding_l2=0.01", "model.net_l2=0.01")
    files = data_lib.split_files(tiny_dataset, "train")
    batch = next(iter(data_lib.make_dataset(files, CRITEO, 64, training=False)))
    base = build_model(cfg)
    base(batch[0], training=False)
    init = base.get_weights()
    one = _one_step_weights(cfg, 1, init, batch, optimizer)
    two = _one_step_weights(cfg, 2, init, batch, optimizer)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(one, init))
    assert moved > 1e-4  # the step did change the weights
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.fixture(scope="module")
def signal_dataset(tmp_path_factory):
    """The tiny dataset's generator with 2048 / 256 / 512 rows: enough rows for a model trained 2 epochs to rank
    held-out rows well above chance (on 512 train rows it memorises the noise fields first)."""
    from tests.conftest import write_prepared_dataset

    return write_prepared_dataset(str(tmp_path_factory.mktemp("signal_dataset")), rows_per_split=(2048, 256, 512))


def _scores(model, data_dir, split):
    """Probabilities, labels and weights of ``split``, read and scored here (not through tfrec.evaluate)."""
    ps, ys, ws = [], [], []
    for features, y, w in data_lib.make_dataset(data_lib.split_files(data_dir, split), CRITEO, 100,
                                                training=False):
        ps.append(model(features, training=False)["probability"].numpy())
        ys.append(y.numpy())
        ws.append(w.numpy())
    return tuple(np.concatenate(a).astype(np.float64) for a in (ps, ys, ws))


def test_train_evaluate_and_artifacts(signal_dataset, tmp_path):
    cfg = _cfg(signal_dataset, str(tmp_path / "m"), "train.epochs=2", "train.learning_rate=0.01")
    lines = []
    result = train(cfg, printer=lines.append)
    assert result.summary["replicas"] == 2 and result.summary["epochs_run"] == 2
    assert result.summary["train_steps"] == 2 * (2048 // 64)
    assert any("epoch 2/2 done" in l for l in lines)
    for name in ("config.yaml", "history.csv", "train_summary.json", "best/weights.index"):
        assert os.path.exists(tmp_path / "m" / name), name
    assert not os.path.exists(tmp_path / "m" / "backup")  # deleted after a finished run
    report = evaluate(cfg)
    assert report["rows"] == 512
    valid = evaluate(cfg, split="valid")
    with open(tmp_path / "m" / "metrics.json") as f:
        recorded = json.load(f)
    assert recorded["test"]["weighted_logloss"] == pytest.approx(report["weighted_logloss"])
    assert recorded["valid"]["rows"] == valid["rows"] == 256
    # The reports are scikit-learn's metrics of the trained model's (best weights') predictions on each split,
    # and the model ranks held-out rows better than chance (the label depends on I1 and C1).
    for split, rep in (("test", report), ("valid", valid)):
        p, y, w = _scores(result.model, signal_dataset, split)
        assert rep["auc"] == pytest.approx(roc_auc_score(y, p), rel=1e-9), split
        assert rep["weighted_auc"] == pytest.approx(roc_auc_score(y, p, sample_weight=w), rel=1e-9), split
        assert rep["logloss"] == pytest.approx(log_loss(y, p), rel=1e-6), split
        assert rep["weighted_logloss"] == pytest.approx(log_loss(y, p, sample_weight=w), rel=1e-6), split
        assert rep["positive_rate"] == pytest.approx(y.mean()), split
        assert rep["auc"] > 0.55, split


def test_nan_loss_stops_with_clear_message(tiny_dataset, tmp_path):
    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                for v in self.model.trainable_variables:
                    v.assign(tf.fill(v.shape, np.nan))

    cfg = _cfg(tiny_dataset, str(tmp_path / "m"), "train.epochs=2")
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1 step 4"):
        train(cfg, printer=lambda _: None, extra_callbacks=[Poison()])


def test_resume_after_kill_mid_epoch(tiny_dataset, tmp_path):
    model_dir = str(tmp_path / "m")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT,
                                                                                   os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, os.path.join(HERE, "train_kill_helper.py"), tiny_dataset, model_dir]
    killed = subprocess.run(cmd + ["--kill-at", "2", "5"], capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL in epoch 3, step 6 (0-based 2, 5)
    assert os.path.isdir(os.path.join(model_dir, "backup"))
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = json.loads(resumed.stdout.strip().splitlines()[-1])
    # 4 epochs of 8 steps in all. The backup is saved every 2 steps, so the last one before the kill (epoch 3,
    # step 6) holds 2 * 8 + 6 = 22 optimizer steps: the resumed run starts there, finishes the 2 steps left of
    # epoch 3 and runs epoch 4.
    assert state["start_iterations"] == 22
    assert state["first_epoch_in_this_run"] == 3
    assert state["steps_per_epoch_in_this_run"] == [2, 8]


def test_first_train_step_traced_once(tiny_dataset, tmp_path):
    """The model and the optimizer's slots exist before ``fit``, so the train function is traced once (slots made
    inside the first traced step make tf.function trace it a second time)."""
    cfg = _cfg(tiny_dataset, str(tmp_path), "train.epochs=1", "train.replicas=2", "train.steps_per_epoch=2")
    result = train(cfg)
    assert result.model.train_function.experimental_get_tracing_count() == 1
