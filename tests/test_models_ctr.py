"""DCN V2: outputs, structures, serialization, save and reload."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import data as data_lib
from tfrec.config import load_config
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
    with pytest.raises(ValueError, match="unknown model"):
        build(load_config(None, ["model.name=dcn_v3"]).model, None, None, None)


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
