"""The training driver: strategy, model and loss inside ``strategy.scope()``, ``fit`` with recovery.

``train(cfg)`` trains on the prepared dataset ``cfg.data.dir`` with the entry of its family
(:func:`tfrec.families.family_of`). The row families (point-wise and multi-task) train with :func:`train_rows`: it
builds the model named in ``cfg.model`` and the family's loss (``cfg.model.loss`` for DCN V2; a multi-task model
computes its own) under the distribution strategy (MirroredStrategy over ``cfg.train.replicas`` devices by
default; on a CPU host the caller must first split the CPU with ``tfrec.devices.configure_cpu_replicas``), and
runs Keras ``fit`` with:

* Adam(``learning_rate``) with a global gradient-norm clip (``clip_norm``);
* ``ReduceLROnPlateau`` (x ``plateau_factor``) and ``EarlyStopping`` (``early_stop_patience`` epochs) on the
  validation AUC named by ``monitor``: the exact AUC of the validation predictions, the number ``tfrec evaluate``
  reports (:class:`tfrec.callbacks.ExactValidation`), not Keras' 10,000-bucket approximation;
* ``BackupAndRestore`` every ``save_every_steps`` steps, so a killed run resumes where it was when restarted with
  the same ``model_dir``;
* the best weights (by ``monitor``) in ``<model_dir>/best/``, reloaded at the end;
* TensorBoard logs in ``<model_dir>/logs`` and the per-epoch history in ``<model_dir>/history.csv``;
* a NaN guard: a non-finite loss stops the run with :class:`TrainingError` naming the epoch and step;
* with ``train.gradient_diagnostics``, the per-batch gradient diagnostics (:class:`GradientDiagnostics`) in
  ``<model_dir>/gradient_diagnostics.csv`` and TensorBoard (``<model_dir>/logs/gradients``).

Files in ``model_dir``: ``config.yaml`` (the run's config), ``best/`` (weights), ``backup/`` (while running),
``logs/``, ``history.csv``, ``train_summary.json``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, Optional, Tuple

import tensorflow as tf
import tf_keras as keras

from tfrec import data as data_lib
from tfrec import devices, models, transforms
from tfrec.callbacks import (ExactValidation, GradientDiagnostics, NaNGuard, ProgressLogger, TensorBoard,
                             Throughput)
from tfrec.config import RunConfig, TrainConfig, dump_config
from tfrec.evaluate import exact_validation_metrics
from tfrec.run_config import with_run_architecture
from tfrec.jsonio import write_json


class TrainingError(RuntimeError):
    """Training cannot go on (for example, the loss became NaN)."""


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    model: keras.Model
    history: Dict[str, list]
    best_weights: str
    summary: Dict[str, object]


def best_weights_path(model_dir: str) -> str:
    return os.path.join(model_dir, "best", "weights")


def build_model(cfg: RunConfig) -> keras.Model:
    """Builds the configured row model (point-wise or multi-task) from the prepared dataset's artifacts (call
    inside ``strategy.scope()``).

    Raises:
      ConfigError: the model is not one of the dataset family's (:meth:`tfrec.families.Family.check_model`).
    """
    from tfrec.families import family_of

    data_dir = cfg.data.dir
    family_of(data_dir).check_model(cfg)
    schema = data_lib.load_schema(data_dir)
    vocabularies = models.load_vocabularies(data_dir, schema.categorical)
    transform_path = os.path.join(data_dir, "transform.json")
    if not os.path.exists(transform_path):
        raise data_lib.DatasetError(f"transform.json not found in {data_dir}")
    transform = transforms.load_params(transform_path)
    return models.build(cfg.model, schema, vocabularies, transform)


def _example_batch(cfg: RunConfig, schema):
    """A batch of train features to build the model on.

    Raises:
      DatasetError: the train split has no row.
    """
    files = data_lib.split_files(cfg.data.dir, "train")
    for features, _, _ in data_lib.make_dataset(files, schema, 2, training=False).take(1):
        return features
    raise data_lib.DatasetError(f"the train split of {cfg.data.dir} is empty ({len(files)} shard file(s), no row); "
                                "prepare it again with train rows")


def trained_weights(cfg: RunConfig) -> Tuple[str, RunConfig]:
    """``(best weights path, cfg with the run's architecture)`` of the finished run in ``cfg.train.model_dir``:
    the one loader path of every model family (:func:`load_trained_rows`,
    :func:`tfrec.train_preranking.load_trained_preranking`). The architecture is the run's own
    (:mod:`tfrec.run_config`: ``<model_dir>/config.yaml``), whatever ``cfg.model`` / ``cfg.preranking`` say.

    Raises:
      FileNotFoundError: the run has no best weights.
    """
    path = best_weights_path(cfg.train.model_dir)
    if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"no trained weights at {path} (run `tfrec train` with this model_dir first)")
    return path, with_run_architecture(cfg)


def load_trained_model(cfg: RunConfig) -> keras.Model:
    """The model of the finished run in ``cfg.train.model_dir`` with its best weights, whatever its family
    (:func:`tfrec.families.family_of_run`; its architecture from ``<model_dir>/config.yaml``)."""
    from tfrec.families import family_of_run

    return family_of_run(cfg.train.model_dir, cfg.data.dir).load_trained(cfg)


def load_trained_rows(cfg: RunConfig) -> keras.Model:
    """Rebuilds the row model (point-wise or multi-task) of a finished run (its architecture from
    ``<model_dir>/config.yaml``, see :func:`trained_weights`) and loads its best weights (no strategy needed)."""
    path, cfg = trained_weights(cfg)
    model = build_model(cfg)
    model(_example_batch(cfg, data_lib.load_schema(cfg.data.dir)), training=False)
    model.load_weights(path).expect_partial()
    return model


def start_run(cfg: RunConfig, load_schema: Callable[[str], object]) -> Tuple[object, tf.distribute.Strategy]:
    """The common start of a training run: checks the directories, loads the schema, makes the strategy, checks
    that the global batch divides over its replicas, writes ``<model_dir>/config.yaml`` and seeds Keras.

    Args:
      cfg: the run config (``data.dir``, ``train.model_dir``, ``train.replicas``, ``train.seed``,
        ``data.batch_size``).
      load_schema: ``data_dir -> schema`` of the dataset family (raises ``DatasetError`` when it is missing).

    Returns:
      ``(schema, strategy)``.

    Raises:
      DatasetError: no ``data.dir``, or the schema cannot be read.
      ValueError: no ``train.model_dir``, or ``data.batch_size`` not divisible by the replicas.
      DeviceError: fewer devices than ``train.replicas``.
    """
    t = cfg.train
    if not cfg.data.dir:
        raise data_lib.DatasetError("no dataset directory given (data.dir / --data)")
    if not t.model_dir:
        raise ValueError("no model directory given (train.model_dir / --model-dir)")
    schema = load_schema(cfg.data.dir)
    strategy = devices.make_strategy(t.replicas)
    replicas = strategy.num_replicas_in_sync
    if cfg.data.batch_size % replicas:
        raise ValueError(f"`data.batch_size` must be divisible by the {replicas} replicas. "
                         f"Received: data.batch_size={cfg.data.batch_size}")
    os.makedirs(t.model_dir, exist_ok=True)
    dump_config(cfg, os.path.join(t.model_dir, "config.yaml"))
    keras.utils.set_random_seed(t.seed)
    return schema, strategy


def make_optimizer(t: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam(``t.learning_rate``) with a global gradient-norm clip at ``t.clip_norm`` (none when it is 0); call
    inside ``strategy.scope()``."""
    return keras.optimizers.Adam(learning_rate=t.learning_rate,
                                 global_clipnorm=t.clip_norm if t.clip_norm > 0 else None)


def epoch_steps(cfg: RunConfig, written: Dict[str, int], unit: str,
                train_examples: Optional[int] = None) -> Tuple[int, int]:
    """Steps per epoch and validation steps of a run (Keras needs both for a distributed dataset).

    One epoch is one pass over the train split (``train.steps_per_epoch`` when set), the last partial batch
    dropped; validation is one pass over the valid split, the last partial batch kept.

    Args:
      cfg: the run config (``data.batch_size``, ``data.eval_batch_size``, ``train.steps_per_epoch``).
      written: examples per split, as in the dataset's ``stats.json`` (``train``, ``valid``).
      unit: what an example is, for the error message (``rows``, ``requests``).
      train_examples: the train examples one epoch sees (default ``written["train"]``; fewer after negative
        sampling).

    Returns:
      ``(steps_per_epoch, validation_steps)``.

    Raises:
      DatasetError: fewer train examples than one batch, or an empty valid split.
    """
    if train_examples is None:
        train_examples = int(written.get("train", 0))
    steps_per_epoch = cfg.train.steps_per_epoch or train_examples // cfg.data.batch_size
    if steps_per_epoch <= 0:
        raise data_lib.DatasetError(f"the train split of {cfg.data.dir} has {written.get('train', 0)} {unit}, fewer "
                                    f"than one batch of {cfg.data.batch_size}; lower data.batch_size")
    validation_steps = -(-int(written.get("valid", 0)) // cfg.data.eval_batch_size)
    if validation_steps <= 0:
        raise data_lib.DatasetError(f"the valid split of {cfg.data.dir} is empty; early stopping needs it")
    return steps_per_epoch, validation_steps


def train(cfg: RunConfig, printer: Callable[[str], None] = print,
          extra_callbacks: Optional[list] = None) -> TrainResult:
    """Trains on ``cfg.data.dir`` with the entry of the dataset's family (:meth:`tfrec.families.Family.train`).

    Raises:
      DatasetError: the dataset directory or one of its files is missing.
      DeviceError: fewer devices than ``cfg.train.replicas``.
      TrainingError: the loss became NaN.
    """
    from tfrec.families import family_of

    return family_of(cfg.data.dir).train(cfg, printer=printer, extra_callbacks=extra_callbacks)


def train_rows(cfg: RunConfig, family, printer: Callable[[str], None] = print,
               extra_callbacks: Optional[list] = None) -> TrainResult:
    """Trains ``cfg.model`` on a row dataset (point-wise or multi-task) of ``family``; see the module docstring.

    Args:
      cfg: the run config, resolved for the family (:meth:`tfrec.families.Family.resolve`).
      family: a :class:`tfrec.families.rows.RowFamily` (its loss, monitored metric and validation metrics).

    Raises:
      DatasetError: the dataset directory or one of its files is missing.
      DeviceError: fewer devices than ``cfg.train.replicas``.
      TrainingError: the loss became NaN.
    """
    t = cfg.train
    schema, strategy = start_run(cfg, family.load_schema)
    replicas = strategy.num_replicas_in_sync

    with strategy.scope():
        model = build_model(cfg)
        optimizer = make_optimizer(t)
        model.compile(optimizer=optimizer, loss=family.keras_loss(cfg))
        model(_example_batch(cfg, schema), training=False)  # built before fit (see fit_with_recovery)
    monitor = family.monitor(cfg)

    # Keras needs the number of steps of a distributed dataset: one epoch is one pass over the train split
    # (the last partial batch dropped); the train dataset repeats so an epoch never runs dry.
    rows = data_lib.load_stats(cfg.data.dir).get("rows_written", {})
    examples = int(rows.get("train", 0))
    if cfg.data.negative_keep_ratio < 1.0:  # the expected rows left after negative sampling
        rate = float((data_lib.load_stats(cfg.data.dir).get("positive_rate") or {}).get("train") or 0.0)
        examples = int(examples * (rate + (1.0 - rate) * cfg.data.negative_keep_ratio))
    steps_per_epoch, validation_steps = epoch_steps(cfg, rows, "rows", examples)
    train_ds = data_lib.distributed_dataset(strategy, cfg.data.dir, "train", schema, cfg.data.batch_size, True,
                                            cfg.data.shuffle_buffer, cfg.data.cycle_length, t.seed, repeat=True,
                                            beta_pos=cfg.data.beta_pos,
                                            negative_keep_ratio=cfg.data.negative_keep_ratio,
                                            in_memory_max_bytes=cfg.data.in_memory_max_mb << 20, rows=examples,
                                            encode=_encoder(model))
    # Under MultiWorkerMirroredStrategy a worker whose validation shard runs dry first would leave the others
    # waiting in a collective, so there the split repeats and every worker runs the same validation_steps (one
    # pass over the split in all; a shorter shard wraps around).
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    valid_ds = data_lib.distributed_dataset(strategy, cfg.data.dir, "valid", schema, cfg.data.eval_batch_size,
                                            False, cycle_length=cfg.data.cycle_length, beta_pos=cfg.data.beta_pos,
                                            repeat=multi_worker)

    # The exact metrics read the batches Keras validates on (train.validation_steps of them when set).
    exact = exact_validation_metrics(cfg, family,
                                     min(validation_steps, t.validation_steps) if t.validation_steps else 0)
    return fit_with_recovery(cfg, model, train_ds, valid_ds, steps_per_epoch, validation_steps, replicas, printer,
                             extra_callbacks, monitor=monitor, exact_validation=exact)


def _encoder(model: keras.Model) -> Optional[Callable]:
    """The model's ``features -> encoded features`` (:meth:`tfrec.layers.FeatureEmbedding.encode`), with which a
    train split held in memory is encoded once (:func:`tfrec.data_memory.encoded`); None for a model that embeds
    otherwise."""
    from tfrec.layers import FeatureEmbedding

    embedding = getattr(model, "embedding", None)
    return embedding.encode if isinstance(embedding, FeatureEmbedding) else None


def fit_with_recovery(cfg: RunConfig, model: keras.Model, train_ds, valid_ds, steps_per_epoch: int,
                      validation_steps: int, replicas: int, printer: Callable[[str], None] = print,
                      extra_callbacks: Optional[list] = None, monitor: Optional[str] = None,
                      examples_per_batch: Optional[int] = None, unit: str = "examples",
                      exact_validation: Optional[Callable[[keras.Model], Dict[str, float]]] = None) -> TrainResult:
    """Keras ``fit`` of a compiled model with the driver's callbacks (module docstring), then the summary.

    Shared by every training entry (``train`` here, ``tfrec.train_preranking``). ``monitor`` overrides
    ``cfg.train.monitor``; ``examples_per_batch`` is what the throughput counts per global batch (default
    ``cfg.data.batch_size``: rows, or requests for list-wise data). ``exact_validation`` (``model -> {name:
    value}``) computes the exact validation metrics that replace Keras' ``val_<name>`` before the checkpoint,
    the plateau and the early stop read them (:class:`tfrec.callbacks.ExactValidation`); the summary records the
    seconds it took (``exact_validation_seconds``). ``unit`` names what the throughput counts in the progress
    lines (``examples``, or ``lists``).

    Raises:
      TrainingError: the loss became NaN.
    """
    t = cfg.train
    monitor = monitor or t.monitor
    if t.validation_steps:
        validation_steps = min(validation_steps, t.validation_steps)
    if model.built:
        # The optimizer's slots are made before fit: created lazily by the first apply_gradients inside the
        # first traced train step, they make tf.function trace that step twice (measured: 2 tracings, first step
        # 47.6 s vs 18.5 s). Adam's build is idempotent.
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    guard = NaNGuard()
    throughput = Throughput(examples_per_batch or cfg.data.batch_size)
    best = best_weights_path(t.model_dir)
    exact = ExactValidation(exact_validation) if exact_validation is not None else None
    callbacks = [
        *([exact] if exact is not None else []),  # first: every callback below reads its val_* values
        keras.callbacks.BackupAndRestore(os.path.join(t.model_dir, "backup"),
                                         save_freq=t.save_every_steps or "epoch", delete_checkpoint=True),
        guard,
        throughput,
        keras.callbacks.ModelCheckpoint(best, monitor=monitor, mode="max", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="max", factor=t.plateau_factor,
                                          patience=t.plateau_patience, min_delta=0.0, verbose=0),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=t.early_stop_patience,
                                      min_delta=0.0),
        TensorBoard(os.path.join(t.model_dir, "logs"), update_freq="epoch", profile_batch=0),
        keras.callbacks.CSVLogger(os.path.join(t.model_dir, "history.csv"), append=True),
    ]
    if t.log_every_seconds > 0 or t.verbose == 0:
        callbacks.append(ProgressLogger(t.log_every_seconds, cfg.data.batch_size, t.epochs, printer, unit=unit))
    if t.gradient_diagnostics:
        callbacks.append(GradientDiagnostics(os.path.join(t.model_dir, "gradient_diagnostics.csv"),
                                             log_dir=os.path.join(t.model_dir, "logs")))
    callbacks.extend(extra_callbacks or [])

    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=valid_ds, epochs=t.epochs, steps_per_epoch=steps_per_epoch,
                        validation_steps=validation_steps, callbacks=callbacks, verbose=t.verbose)
    wall = time.perf_counter() - start
    if guard.event is not None:
        e = guard.event
        raise TrainingError(
            f"loss became {e['loss']} at epoch {e['epoch']} step {e['step']} (last finite loss: "
            f"{e['last_finite']}); lower train.learning_rate or check the input data for extreme values")
    if tf.io.gfile.exists(best + ".index"):
        model.load_weights(best).expect_partial()
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    monitored = hist.get(monitor, [])
    summary = {
        "epochs_run": len(hist.get("loss", [])),
        "best_epoch": (int(max(range(len(monitored)), key=monitored.__getitem__)) + 1) if monitored else None,
        "monitor": monitor,
        "best_" + monitor: max(monitored) if monitored else None,
        "replicas": replicas,
        "global_batch_size": cfg.data.batch_size,
        "train_steps": throughput.steps,
        "train_examples_per_second": throughput.examples_per_second,
        "epoch_examples_per_second": throughput.epoch_rates,
        "exact_validation_seconds": exact.seconds if exact is not None else None,
        "wall_seconds": wall,
    }
    write_json(os.path.join(t.model_dir, "train_summary.json"), {"summary": summary, "history": hist})
    return TrainResult(model=model, history=hist, best_weights=best, summary=summary)
