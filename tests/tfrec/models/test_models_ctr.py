"""DCN V2: outputs, structures, serialization, save and reload."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import data as data_lib
from tfrec.config import ConfigError, DCNv2Config, load_config
from tfrec.models import DCNv2, build
from tfrec.train import build_model


def _cfg(tiny_dataset, *extra):
    return load_config(None, [f"data.dir={tiny_dataset}", "model.dnn_hidden_units=[16, 8]", *extra])


def _batch(tiny_dataset, n=32):
    schema = data_lib.load_schema(tiny_dataset)
    ds = data_lib.make_dataset(data_lib.split_files(tiny_dataset, "valid"), schema, n, training=False)
    return next(iter(ds))


@pytest.mark.parametrize("structure", ["parallel", "stacked"])
def test_outputs_and_shapes(tiny_dataset, structure):
    model = build_model(_cfg(tiny_dataset, f"model.structure={structure}"))
    features, _, _ = _batch(tiny_dataset)
    out = model(features, training=False)
    assert out["logit"].shape == (32,) and out["probability"].shape == (32,)
    np.testing.assert_allclose(out["probability"].numpy(), tf.sigmoid(out["logit"]).numpy(), rtol=1e-6)
    # embedding = penultimate layer: [cross (39*10) ; dnn (8)] for parallel, dnn (8) for stacked
    assert out["embedding"].shape == (32, 390 + 8 if structure == "parallel" else 8)
    assert len(model.losses) == 2  # L2 on the categorical and the dense embedding tables


def test_low_rank_and_cross_only(tiny_dataset):
    model = build_model(_cfg(tiny_dataset, "model.cross_low_rank=4", "model.dnn_hidden_units=[]"))
    features, _, _ = _batch(tiny_dataset)
    assert model(features)["embedding"].shape == (32, 390)
    names = [v.name for v in model.trainable_variables]
    assert any("/u:" in n for n in names) and not any("/w:" in n for n in names)


def test_get_config_round_trip(tiny_dataset):
    model = build_model(_cfg(tiny_dataset))
    clone = DCNv2.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    # The config refuses a model name it does not know; build refuses a section of an unknown model too.
    with pytest.raises(ConfigError, match=r"^`model.name` must be one of dcn_v2, .*Received: model.name='dcn_v3'$"):
        load_config(None, ["model.name=dcn_v3"])
    with pytest.raises(ValueError, match="unknown model"):
        build(dataclasses.replace(DCNv2Config(), name="dcn_v3"), None, None, None)


def test_save_and_reload_in_fresh_process(tiny_dataset, tmp_path):
    model = build_model(_cfg(tiny_dataset))
    features, _, _ = _batch(tiny_dataset)
    before = model(features, training=False)["probability"].numpy()
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded(features, training=False)["probability"].numpy(), before, atol=1e-7)
    # and in a fresh interpreter (only `import tfrec.models` registers the classes)
    np.save(tmp_path / "expected.npy", before)
    serialized = tf.io.serialize_tensor(tf.stack([tf.strings.as_string(v) if v.dtype != tf.string else v
                                                  for v in features.values()])).numpy()
    (tmp_path / "keys.txt").write_text("\n".join(features.keys()))
    (tmp_path / "features.bin").write_bytes(serialized)
    script = f"""
import numpy as np, tensorflow as tf, tf_keras as keras
import tfrec.models
keys = open(r"{tmp_path / 'keys.txt'}").read().split("\\n")
stacked = tf.io.parse_tensor(open(r"{tmp_path / 'features.bin'}", "rb").read(), tf.string)
feats = {{k: (stacked[i] if k.startswith("C") else tf.strings.to_number(stacked[i])) for i, k in enumerate(keys)}}
m = keras.models.load_model(r"{path}")
p = m(feats, training=False)["probability"].numpy()
np.testing.assert_allclose(p, np.load(r"{tmp_path / 'expected.npy'}"), atol=1e-6)
print("OK")
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]


# ------------------------------------------------------------------------------------------------ JRC head


def test_jrc_head_outputs(tiny_dataset):
    cfg = _cfg(tiny_dataset, "model.head=jrc")
    assert cfg.model.head == "jrc"
    model = build_model(cfg)
    features, _, _ = _batch(tiny_dataset)
    out = model(features, training=False)
    assert out["logits"].shape == (32, 2) and out["logit"].shape == (32,) and out["probability"].shape == (32,)
    z = out["logits"].numpy().astype(np.float64)
    np.testing.assert_allclose(out["logit"].numpy(), z[:, 1] - z[:, 0], rtol=1e-6, atol=1e-6)
    softmax_click = np.exp(z[:, 1]) / np.exp(z).sum(axis=1)
    np.testing.assert_allclose(out["probability"].numpy(), softmax_click, rtol=1e-5)
    assert model.head.kernel.shape[-1] == 2 and model.get_config()["head"] == "jrc"
    # the binary head keeps its one-unit layer named `logit` and has no `logits` output
    binary = build_model(_cfg(tiny_dataset))
    assert "logits" not in binary(features) and binary.head.kernel.shape[-1] == 1 and binary.head.name == "logit"
    assert binary.get_config()["head"] == "binary"


def test_jrc_head_config_validation_and_round_trip(tiny_dataset):
    from tfrec.config import ConfigError

    with pytest.raises(ConfigError, match="model.head"):
        _cfg(tiny_dataset, "model.head=three")
    model = build_model(_cfg(tiny_dataset, "model.head=jrc"))
    clone = DCNv2.from_config(model.get_config())
    assert clone.get_config() == model.get_config() and clone.head_type == "jrc"
    config = model.get_config()
    with pytest.raises(ValueError, match="`head`"):
        DCNv2.from_config({**config, "head": "three"})
    legacy = {k: v for k, v in config.items() if k != "head"}  # configs saved before the head argument
    assert DCNv2.from_config(legacy).head_type == "binary"


class _FirstBatchLogs(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.logs = {k: float(v) for k, v in logs.items()}


def _keras_auc_buckets(p, num_thresholds=10000):
    """The number of ``keras.metrics.AUC`` thresholds below each probability (predictions in a bucket tie)."""
    inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return np.searchsorted(np.array([-1e-7, *inner, 1.0 + 1e-7], np.float32), np.asarray(p, np.float32))


def test_jrc_head_trains_with_the_jrc_loss_and_reloads(tiny_dataset, tmp_path):
    from sklearn.metrics import roc_auc_score

    from tfrec import losses
    from tests.tfrec.losses.test_losses_listwise import _jrc_oracle

    # No dropout: the first train step's forward pass is the inference pass the oracle below scores.
    model = build_model(_cfg(tiny_dataset, "model.head=jrc", "model.dropout=0.0"))
    schema = data_lib.load_schema(tiny_dataset)
    ds = data_lib.make_dataset(data_lib.split_files(tiny_dataset, "train"), schema, 64, training=False)
    # run_eagerly: tracing the train function of the 39-field model costs ~20 s on 2 cores; the step is the same
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses.get("jrc", alpha=0.5), run_eagerly=True)
    features, _, _ = _batch(tiny_dataset)
    model(features)
    # The weights off their initial values: at the initial weights both logits of every row are within 2e-3 of
    # 0, where a JRC whose Eq. 7 softmax takes the wrong column agrees with the right one to 5 digits.
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(scale=0.1, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    kernel = model.head.kernel.numpy().copy()
    first_x, first_y, first_w = next(iter(ds))
    first_out = model(first_x, training=False)
    spread = first_out["logits"].numpy()
    assert np.std(spread[:, 1] - spread[:, 0]) > 0.1, np.std(spread[:, 1] - spread[:, 0])  # 0.24
    first = _FirstBatchLogs()
    hist = model.fit(ds.take(2), epochs=1, verbose=0, callbacks=[first]).history
    assert np.max(np.abs(model.head.kernel.numpy() - kernel)) > 1e-4  # both columns are trained
    assert np.all(np.max(np.abs(model.head.kernel.numpy() - kernel), axis=0) > 1e-4)
    assert np.isfinite(hist["loss"][0]) and np.isfinite(hist["jrc_clf_loss"][0])
    assert np.isfinite(hist["jrc_rank_loss"][0])
    # The first step's loss and terms are JRC's float64 oracle (KDD 2024 Eq. 6-7) of the initial logits, and its
    # AUC that of the initial click probability.
    clf, rank = _jrc_oracle(first_y.numpy(), first_out["logits"].numpy(), first_w.numpy())
    assert first.logs["jrc_clf_loss"] == pytest.approx(clf, rel=1e-5)
    assert first.logs["jrc_rank_loss"] == pytest.approx(rank, rel=1e-5)
    assert first.logs["loss"] == pytest.approx(0.5 * clf + 0.5 * rank, rel=1e-5)
    expected_auc = roc_auc_score(first_y.numpy(), _keras_auc_buckets(first_out["probability"].numpy()))
    assert first.logs["auc"] == pytest.approx(expected_auc, abs=1e-5)
    before = model(features, training=False)
    path = str(tmp_path / "jrc.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    after = reloaded(features, training=False)
    assert reloaded.get_config()["head"] == "jrc"
    for key in ("logits", "logit", "probability"):
        np.testing.assert_allclose(after[key].numpy(), before[key].numpy(), atol=1e-6)
    # The loss comes back compiled (RankingModel overrides compile, so it restores the compile config itself).
    assert isinstance(reloaded.loss, losses.JRC) and reloaded.loss.get_config() == model.loss.get_config()
    assert "jrc_clf_loss" in [m.name for m in reloaded.metrics]
