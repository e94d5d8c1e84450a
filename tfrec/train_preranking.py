"""Training and evaluation entries of the HCCP pre-ranking model on a prepared hybrid-sample dataset.

``train_preranking(cfg)`` reads the list-wise TFRecords of ``pipelines.hybrid_samples`` (``cfg.data.dir``;
``schema.json`` of the list-wise family), builds :class:`tfrec.models.preranking.ThreeTower` from the
``preranking`` config section under the distribution strategy, and runs the same driver as the point-wise models
(:func:`tfrec.train.fit_with_recovery`: BackupAndRestore, best weights, plateau, early stopping, TensorBoard,
NaN guard). Batches count requests (``data.batch_size`` requests per global batch; train lists padded to
``preranking.train_list_size`` items, validation lists to ``preranking.eval_list_size``). The monitored metric
is the validation click AUC on impressions (``val_auc``; ``val_weighted_auc`` is read as ``val_auc``, list-wise
data carries no sample weights).

``evaluate_preranking(cfg, split)`` computes the HCCP report (:mod:`tfrec.evaluate_preranking`) of the best
weights and records it in ``<model_dir>/preranking_metrics.json`` under the split's name.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Dict, Optional

import tensorflow as tf

from tfrec import data as data_lib
from tfrec.config import RunConfig, load_config
from tfrec.evaluate import record_report
from tfrec.evaluate_preranking import collect, preranking_report
from tfrec.features import ListwiseSchema
from tfrec.listwise_data import distributed_listwise_dataset, make_listwise_dataset
from tfrec.models.preranking import ThreeTower
from tfrec.train import TrainResult, best_weights_path, epoch_steps, fit_with_recovery, make_optimizer, start_run


def is_listwise(data_dir: str) -> bool:
    """True when ``data_dir/schema.json`` describes a list-wise (``ExampleListWithContext``) dataset."""
    path = os.path.join(data_dir, "schema.json")
    if not os.path.exists(path):
        return False
    with open(path, "r", encoding="utf-8") as f:
        return "ExampleListWithContext" in str(json.load(f).get("format", ""))


def load_listwise_schema(data_dir: str) -> ListwiseSchema:
    """The :class:`ListwiseSchema` of a prepared hybrid-sample dataset.

    Raises:
      DatasetError: the directory or its ``schema.json`` is missing, or the schema is not list-wise.
    """
    if not os.path.isdir(data_dir):
        raise data_lib.DatasetError(f"prepared dataset directory not found: {data_dir}")
    if not is_listwise(data_dir):
        raise data_lib.DatasetError(f"{data_dir}/schema.json is missing or not a list-wise (hybrid-sample) schema")
    with open(os.path.join(data_dir, "schema.json"), "r", encoding="utf-8") as f:
        return ListwiseSchema.from_json(json.load(f))


def build_preranking_model(cfg: RunConfig, schema: ListwiseSchema) -> ThreeTower:
    """The configured model (call inside ``strategy.scope()``); its weights are built on a dummy input."""
    p = cfg.preranking
    missing = [t for t in p.tasks if t not in schema.tasks]
    if missing:
        raise ValueError(f"`preranking.tasks` {missing} are not labels of the dataset (its tasks: {list(schema.tasks)})")
    if p.variant == "rethink" and "ranker_score" not in schema.item_scores:
        raise ValueError("`preranking.variant` rethink distils the ranker's predicted CTR: the dataset has no "
                         "ranker_score (the Taobao lists of pipelines.taobao carry it)")
    model = ThreeTower(**p.model_kwargs(), name="three_tower")
    model(model.dummy_inputs(), training=False)
    return model


def train_preranking(cfg: RunConfig, printer: Callable[[str], None] = print,
                     extra_callbacks: Optional[list] = None) -> TrainResult:
    """Trains the Three-Tower model on ``cfg.data.dir`` (module docstring).

    Raises:
      DatasetError: missing dataset files or an empty split. DeviceError: too few devices. TrainingError: NaN.
    """
    t = cfg.train
    schema, strategy = start_run(cfg, load_listwise_schema)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_preranking_model(cfg, schema)
        model.compile(optimizer=make_optimizer(t))
    rows = data_lib.load_stats(cfg.data.dir).get("requests_written", {})
    steps, validation_steps = epoch_steps(cfg, rows, "requests")
    p = cfg.preranking
    train_ds = distributed_listwise_dataset(strategy, cfg.data.dir, "train", schema, cfg.data.batch_size,
                                            p.train_list_size, True, cfg.data.shuffle_buffer, t.seed, repeat=True)
    # As in tfrec.train: under MultiWorkerMirroredStrategy validation repeats, so no worker runs dry first.
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    valid_ds = distributed_listwise_dataset(strategy, cfg.data.dir, "valid", schema, cfg.data.eval_batch_size,
                                            p.eval_list_size, False, repeat=multi_worker)
    monitor = "val_auc"
    return fit_with_recovery(cfg, model, train_ds, valid_ds, steps, validation_steps, replicas, printer,
                             extra_callbacks, monitor=monitor)


def load_trained_preranking(cfg: RunConfig) -> ThreeTower:
    """The model of a finished run with its best weights (no strategy needed). The architecture is the run's own
    (the ``preranking`` section of ``<model_dir>/config.yaml``), whatever ``cfg.preranking`` says."""
    path = best_weights_path(cfg.train.model_dir)
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"no trained weights at {path} (run `tfrec train` with this model_dir first)")
    run_config = os.path.join(cfg.train.model_dir, "config.yaml")
    if os.path.exists(run_config):
        cfg = dataclasses.replace(cfg, preranking=load_config(run_config).preranking)
    model = build_preranking_model(cfg, load_listwise_schema(cfg.data.dir))
    model.load_weights(path).expect_partial()
    return model


def evaluate_preranking(cfg: RunConfig, split: str = "test", model: Optional[ThreeTower] = None,
                        output: Optional[str] = None) -> Dict[str, object]:
    """The HCCP report (:func:`tfrec.evaluate_preranking.preranking_report`) of ``model`` (default: the best
    weights of ``cfg.train.model_dir``) on ``split``, recorded in ``preranking_metrics.json``."""
    if split not in data_lib.SPLITS:
        raise ValueError(f"`split` must be one of {data_lib.SPLITS}. Received: split={split!r}")
    schema = load_listwise_schema(cfg.data.dir)
    model = model or load_trained_preranking(cfg)
    p = cfg.preranking
    ds = make_listwise_dataset(data_lib.split_files(cfg.data.dir, split), schema, cfg.data.eval_batch_size,
                               p.eval_list_size, training=False)
    report = preranking_report(collect(model, ds, model.tasks), p.hit_ks, p.consistency_ks, p.octile_k)
    record_report(output or os.path.join(cfg.train.model_dir, "preranking_metrics.json"), split, report)
    return report
