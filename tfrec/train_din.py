"""Training, evaluation and export of DIN, the ranker of the Taobao protocol (``tfrec.models.din``).

:func:`train_din` reads the point-wise examples of ``pipelines.taobao.pipeline.run_requests``
(``<data>/{train,valid,test}-*.tfrecord.gz``, :func:`tfrec.data_taobao.din_dataset`), trains DIN with BCE (Adam,
``din.epochs`` passes over the training days; a plain ``fit`` on one device: the quick protocol's ranker is
small), evaluates the exact AUC and logloss on the validation and test impressions, and writes under
``model_dir``:

* ``din.keras``: the trained model (``keras.models.load_model`` round trip);
* ``scorer/``: a SavedModel whose ``serving_default`` signature takes the raw features (strings ``[N]``,
  ``price`` float ``[N]``, histories strings ``[N, H]``) and returns ``probability`` and ``logit`` ``[N]``: what
  the lists pipeline loads to order each request's impressions (TensorFlow only, no tfrec import needed);
* ``din.json``: the config and the metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Dict

import numpy as np

from tfrec.config_taobao import DinConfig

SCORER = "scorer"
MODEL_FILE = "din.keras"
REPORT_FILE = "din.json"


def build_din(cfg: DinConfig, use_history=None):
    """The configured DIN with its weights built."""
    from tfrec.models.din import DIN

    model = DIN(hash_bins=cfg.hash_bins, embedding_dim=cfg.embedding_dim, attention_units=cfg.attention_units,
                hidden_units=cfg.hidden_units, activation=cfg.activation,
                use_history=cfg.use_history if use_history is None else use_history,
                embedding_l2=cfg.embedding_l2, exclude=cfg.exclude, name="din")
    model(model.dummy_inputs(), training=False)
    return model


def predict(model, files, cfg: DinConfig):
    """``(labels, probabilities)`` of every example in ``files``."""
    import tensorflow as tf

    from tfrec.data_taobao import din_dataset

    ds = din_dataset(files, 1024, cfg.max_history, training=False)
    fn = tf.function(lambda x: model(x, training=False)["probability"], autograph=False,
                     input_signature=[ds.element_spec[0]])
    labels, scores = [], []
    for x, y in ds:
        labels.append(y.numpy())
        scores.append(fn(x).numpy())
    if not labels:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(labels), np.concatenate(scores)


def metrics(labels: np.ndarray, scores: np.ndarray) -> Dict[str, float]:
    """Exact AUC and logloss (NaN AUC when one class is missing), and the example count."""
    from tfrec.metrics.classification import auc

    p = np.clip(scores, 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))) if labels.size else float("nan")
    return {"auc": auc(labels, scores) if labels.size else float("nan"), "logloss": logloss,
            "examples": int(labels.size), "click_rate": float(labels.mean()) if labels.size else float("nan")}


def export_scorer(model, path: str) -> str:
    """Writes the ``scorer`` SavedModel (module docstring) of ``model`` to ``path``."""
    import tensorflow as tf

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[model.input_signature()], autograph=False)
    def score(features):
        out = model(features, training=False)
        return {"probability": out["probability"], "logit": out["logit"]}

    module.score = score
    tf.saved_model.save(module, path, signatures={"serving_default": score})
    return path


def load_scorer(path: str):
    """The ``serving_default`` function of a scorer SavedModel: ``fn(**features) -> {"probability", "logit"}``."""
    import tensorflow as tf

    return tf.saved_model.load(path).signatures["serving_default"]


def train_din(cfg: DinConfig, data_dir: str, model_dir: str, printer: Callable[[str], None] = print,
              export: bool = True) -> Dict[str, object]:
    """Trains DIN on ``data_dir`` (module docstring) and returns its report (also ``model_dir/din.json``).

    Raises:
      tfrec.data.DatasetError: no training shards in ``data_dir``.
    """
    import tensorflow as tf
    import tf_keras as keras

    from tfrec import losses
    from tfrec.data import split_files
    from tfrec.data_taobao import din_dataset

    cfg.validate()
    os.makedirs(model_dir, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    train_files = split_files(data_dir, "train")
    model = build_din(cfg)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=losses.get("weighted_bce"))
    start = time.perf_counter()
    history = model.fit(din_dataset(train_files, cfg.batch_size, cfg.max_history, True, cfg.seed),
                        epochs=cfg.epochs, verbose=0)
    train_seconds = time.perf_counter() - start
    report: Dict[str, object] = {"config": dataclasses.asdict(cfg), "train_seconds": train_seconds,
                                 "train_loss": [float(v) for v in history.history["loss"]]}
    for split in ("valid", "test"):
        files = [f for f in tf.io.gfile.glob(os.path.join(data_dir, f"{split}-*-of-*.tfrecord.gz"))]
        report[split] = metrics(*predict(model, sorted(files), cfg))
    printer(f"din: trained {cfg.epochs} epoch(s) in {train_seconds:.0f} s; test AUC {report['test']['auc']:.4f} "
            f"on {report['test']['examples']:,} impressions")
    model.save(os.path.join(model_dir, MODEL_FILE))
    if export:
        report["scorer"] = export_scorer(model, os.path.join(model_dir, SCORER))
    with open(os.path.join(model_dir, REPORT_FILE), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report
