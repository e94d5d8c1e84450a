"""The driver's callbacks cost nothing per step they do not need: Keras hands their batch hooks the logs as tensors
(no host sync of every metric after every step), the NaN guard still stops on a NaN tensor, and TensorBoard in
per-epoch mode makes no per-batch summary calls while writing the same epoch scalars as Keras' own."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import callbacks
from tfrec.experiments.kdd.runner import TrainBCE


def test_driver_batch_hooks_take_tensor_logs(tmp_path):
    cbs = [callbacks.NaNGuard(), callbacks.Throughput(8), callbacks.ProgressLogger(0, 8, 1, printer=lambda _: None),
           callbacks.GradientDiagnostics(str(tmp_path / "g.csv")), TrainBCE(str(tmp_path / "t.csv")),
           callbacks.TensorBoard(str(tmp_path / "logs"), update_freq="epoch")]
    assert keras.callbacks.CallbackList(cbs)._batch_hooks_support_tf_logs
    # One callback without it makes Keras convert every log after every step (what this change removed).
    assert not keras.callbacks.CallbackList(cbs + [keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, l: None)])._batch_hooks_support_tf_logs


def test_nan_guard_reads_tensor_logs():
    guard = callbacks.NaNGuard()
    guard.set_model(keras.Sequential([keras.layers.Dense(1)]))
    guard.on_epoch_begin(0)
    guard.on_train_batch_end(0, {"loss": tf.constant(0.25)})
    assert guard.event is None and guard._last_finite == 0.25
    guard.on_train_batch_end(1, {"loss": tf.constant(np.nan)})
    assert guard.event["step"] == 2 and np.isnan(guard.event["loss"]) and guard.event["last_finite"] == 0.25
    assert guard.model.stop_training


def _fit(tensorboard, epochs=2):
    tf.random.set_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.arange(48, dtype=np.float32).reshape(16, 3) / 48.0
    # As in the driver, another callback has batch hooks, so Keras calls every callback's (TensorBoard's included).
    other = callbacks.Throughput(4)
    model.fit(x, x[:, :1], batch_size=4, epochs=epochs, callbacks=[other, tensorboard], verbose=0)


def _tags(log_dir):
    tags = {}
    for path in glob.glob(os.path.join(log_dir, "train", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                tags.setdefault(v.tag, []).append(event.step)
    return {k: sorted(v) for k, v in tags.items()}


@pytest.fixture
def scalar_calls(monkeypatch):
    from tf_keras.src import callbacks as keras_callbacks  # its `tf` is tensorflow.compat.v2: another module object

    calls = []
    summary = keras_callbacks.tf.summary
    real = summary.scalar

    def spy(name, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(summary, "scalar", spy)
    return calls


def test_tensorboard_per_epoch_makes_no_batch_summary_calls(tmp_path, scalar_calls):
    _fit(keras.callbacks.TensorBoard(str(tmp_path / "keras"), update_freq="epoch"))
    keras_calls = [c for c in scalar_calls if c.startswith("batch_")]
    assert len(keras_calls) == 8  # Keras': one per log (loss) per step, 4 steps x 2 epochs, none of them written
    scalar_calls.clear()
    _fit(callbacks.TensorBoard(str(tmp_path / "ours"), update_freq="epoch"))
    assert [c for c in scalar_calls if c.startswith("batch_")] == []
    ours, theirs = _tags(str(tmp_path / "ours")), _tags(str(tmp_path / "keras"))
    assert ours == theirs and ours["epoch_loss"] == [0, 1]  # the same epoch scalars (and graph) as Keras'


def test_tensorboard_per_step_is_keras(tmp_path, scalar_calls):
    _fit(callbacks.TensorBoard(str(tmp_path / "ours"), update_freq=1))
    assert [c for c in scalar_calls if c.startswith("batch_")] == ["batch_loss"] * 8
    assert len(_tags(str(tmp_path / "ours"))["batch_loss"]) == 8  # written: Keras' per-step mode is untouched
