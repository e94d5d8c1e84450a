"""Training and evaluation entries of the HCCP pre-ranking model on a prepared hybrid-sample dataset.

``train_preranking(cfg)`` reads the list-wise TFRecords of ``pipelines.hybrid_samples`` (``cfg.data.dir``;
``schema.json`` of the ``preranking`` family), builds :class:`tfrec.models.preranking.ThreeTower` from the ``model``
config section (``name: three_tower``) under the distribution strategy, and runs the same driver as the point-wise models
(:func:`tfrec.train.fit_with_recovery`: BackupAndRestore, best weights, plateau, early stopping, TensorBoard,
NaN guard). Margin InfoNCE's ``beta`` follows the schedule of :func:`beta_schedule` over the run's planned
steps (``train.epochs`` x steps per epoch) and is logged per epoch as ``beta`` (history, TensorBoard). Batches
count requests (``data.batch_size`` requests per global batch, 64 when unset; train lists padded to
``preranking.train_list_size`` items, validation lists to ``preranking.eval_list_size``). The monitored metric
is the validation click AUC on impressions (``val_auc``; ``val_weighted_auc`` is read as ``val_auc``, list-wise
data carries no sample weights): the exact AUC of every task on the impressions of the valid split
(``val_<task>_auc``), as ``evaluate_preranking`` reports it (``AUC_<task>``), not Keras' bucketed one. ``loss``
and ``val_loss`` are the same objective (Eq. 6) on lists of different make-up, so they are not comparable
(:data:`LOSS_NOTE`).

Valid and test lists are read whole: a list longer than ``preranking.eval_list_size`` is a ``ConfigError`` that
names the size needed (:func:`whole_lists`), never a silent truncation.

``evaluate_preranking(cfg, split)`` computes the HCCP report (:mod:`tfrec.evaluate_preranking`) of the best
weights and records it in ``<model_dir>/preranking_metrics.json`` under the split's name.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Dict, Optional

import tensorflow as tf

from tfrec import data as data_lib
from tfrec.config import ConfigError, RunConfig, ThreeTowerLossConfig
from tfrec.evaluate import record_report
from tfrec.evaluate_preranking import AUC_FIELDS, collect, impression_aucs, predict_function, preranking_report
from tfrec.features import ListwiseSchema
from tfrec.listwise_data import TOO_LONG, distributed_listwise_dataset, longest_list, make_listwise_dataset
from tfrec.losses.classes.preranking import derived_beta_scale
from tfrec.models.preranking import ThreeTower
from tfrec.train import TrainResult, epoch_steps, fit_with_recovery, make_optimizer, start_run, trained_weights


#: Printed when training starts: why ``val_loss`` is not the training ``loss`` of held-out data.
LOSS_NOTE = ("loss is Eq. 6 on the train lists (sampled N2, 15 N3 and 10 N5 items, padded to {train} items, plus "
             "in-batch N4 negatives); val_loss is the same objective on the valid lists, which keep every candidate "
             "(up to {eval} items, no N4), so the contrastive and list-wise terms run over ~10x more negatives and "
             "val_loss sits well above loss without any overfitting. Compare epochs by val_auc (click AUC on "
             "impressions), the monitored metric.")


def load_listwise_schema(data_dir: str) -> ListwiseSchema:
    """The :class:`ListwiseSchema` of a prepared hybrid-sample dataset (the ``preranking`` family's schema).

    Raises:
      DatasetError: the directory or its ``schema.json`` is missing, or the dataset is another family's.
    """
    from tfrec.families import get

    return get("preranking").load_schema(data_dir)


#: The defaults of the run-relative ``beta`` schedule (``model.loss.beta_final``, ``model.loss.beta_final_at``).
BETA_FINAL, BETA_FINAL_AT = 0.01, 0.5


def beta_schedule(p: ThreeTowerLossConfig, planned_steps: Optional[int]) -> Dict[str, Optional[float]]:
    """The ``beta_scale`` / ``beta_final`` arguments of :class:`ThreeTower` for a run of ``planned_steps`` steps
    (``p``: the Three-Tower model's loss section, ``cfg.model.loss``).

    With ``model.loss.beta_scale`` set: that fixed factor, no floor (Algorithm 1's literal ``beta *= scale``).
    Otherwise ``beta`` goes from ``beta_init`` to ``beta_final`` (default :data:`BETA_FINAL`) in
    ``n = max(1, round(beta_final_at * planned_steps))`` steps (``beta_final_at`` default :data:`BETA_FINAL_AT`):
    ``scale = (beta_final / beta_init)**(1 / n)`` (:func:`tfrec.losses.classes.preranking.derived_beta_scale`),
    floored at ``beta_final`` after that. ``planned_steps`` None (a model loaded for inference, whose ``beta`` is
    unused): ``scale`` 1. A run that stops early (early stopping) keeps the ``beta`` its last step reached."""
    if p.beta_scale is not None:
        return {"beta_scale": p.beta_scale, "beta_final": None}
    final = min(BETA_FINAL if p.beta_final is None else p.beta_final, p.beta_init)
    if not planned_steps or final <= 0:
        return {"beta_scale": 1.0, "beta_final": final}
    at = BETA_FINAL_AT if p.beta_final_at is None else p.beta_final_at
    n = max(1, int(round(at * planned_steps)))
    return {"beta_scale": derived_beta_scale(p.beta_init, final, n), "beta_final": final}


def build_preranking_model(cfg: RunConfig, schema: ListwiseSchema,
                           planned_steps: Optional[int] = None) -> ThreeTower:
    """The configured model (``cfg.model``, ``name: three_tower``; call inside ``strategy.scope()``); its weights are
    built on a dummy input. ``planned_steps`` (epochs x steps per epoch) sets the ``beta`` schedule
    (:func:`beta_schedule`)."""
    m = cfg.model
    missing = [t for t in m.tasks if t not in schema.tasks]
    if missing:
        raise ValueError(f"`model.tasks` {missing} are not labels of the dataset (its tasks: {list(schema.tasks)})")
    if m.variant == "rethink" and "ranker_score" not in schema.item_scores:
        raise ValueError("`model.variant` rethink distils the ranker's predicted CTR: the dataset has no "
                         "ranker_score (the Taobao lists of pipelines.taobao carry it)")
    model = ThreeTower(**m.model_kwargs(), **beta_schedule(m.loss, planned_steps), name="three_tower")
    model(model.dummy_inputs(), training=False)
    return model


def _resolved(cfg: RunConfig) -> RunConfig:
    """``cfg`` resolved for the ``preranking`` family (its batch sizes count requests)."""
    from tfrec.families import get

    return get("preranking").resolve(cfg)


def train_preranking(cfg: RunConfig, printer: Callable[[str], None] = print,
                     extra_callbacks: Optional[list] = None) -> TrainResult:
    """Trains the Three-Tower model on ``cfg.data.dir`` (module docstring).

    Raises:
      DatasetError: missing dataset files or an empty split. DeviceError: too few devices. TrainingError: NaN.
    """
    cfg = _resolved(cfg)
    t = cfg.train
    schema, strategy = start_run(cfg, load_listwise_schema)
    replicas = strategy.num_replicas_in_sync
    rows = data_lib.load_stats(cfg.data.dir).get("requests_written", {})
    steps, validation_steps = epoch_steps(cfg, rows, "requests")
    with strategy.scope():
        model = build_preranking_model(cfg, schema, planned_steps=t.epochs * steps)
        model.compile(optimizer=make_optimizer(t))
    p = cfg.preranking
    train_ds = distributed_listwise_dataset(strategy, cfg.data.dir, "train", schema, cfg.data.batch_size,
                                            p.train_list_size, True, cfg.data.shuffle_buffer, t.seed, repeat=True)
    # As in tfrec.train: under MultiWorkerMirroredStrategy validation repeats, so no worker runs dry first.
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    valid_ds = distributed_listwise_dataset(strategy, cfg.data.dir, "valid", schema, cfg.data.eval_batch_size,
                                            p.eval_list_size, False, repeat=multi_worker)
    monitor = "val_auc"
    exact = exact_validation_aucs(cfg, schema, min(validation_steps, t.validation_steps) if t.validation_steps else 0)
    printer(f"training on {rows.get('train', 0):,} requests, {cfg.data.batch_size} per batch ({steps} steps an "
            f"epoch); " + LOSS_NOTE.format(train=p.train_list_size, eval=p.eval_list_size))
    with whole_lists(cfg, schema, "valid"):
        result = fit_with_recovery(cfg, model, train_ds, valid_ds, steps, validation_steps, replicas, printer,
                                   extra_callbacks, monitor=monitor, unit="lists", exact_validation=exact)
    warning = margin_warning(cfg, result.history)
    if warning:
        printer(warning)
        result.summary["margin_warning"] = warning
    return result


def margin_warning(cfg: RunConfig, history: Dict[str, list]) -> Optional[str]:
    """A one-line warning when Margin InfoNCE's ``beta`` ended above 1, i.e. the margin term weighed less than
    the plain InfoNCE term in ``(logits_m + beta * logits) / (1 + beta)`` for the whole run: the run-relative
    schedule is planned over ``train.epochs``, and early stopping ended the run before ``beta`` came down (seen
    with a 30-epoch plan whose cells stopped after 4-5 epochs: ``beta`` 176, HCCP and HCCP(w/o Margin) within
    0.11 pp on the click metrics, 0.64 pp on the purchase hit rates). None when ``beta`` came below 1 or reached ``model.loss.beta_final`` (a final beta above 1 is the
    user's choice), when the model has no margin loss, or with a fixed ``model.loss.beta_scale`` (Algorithm 1's
    literal form, also the user's choice)."""
    betas = history.get("beta") or []
    loss = cfg.model.loss
    if not betas or getattr(loss, "beta_scale", None) is not None or not betas[-1] > 1.0:
        return None
    final = getattr(loss, "beta_final", None) or BETA_FINAL
    if betas[-1] <= final * (1 + 1e-4):  # the schedule's floor (float32)
        return None
    at = getattr(loss, "beta_final_at", None) or BETA_FINAL_AT
    return (f"warning: Margin InfoNCE's beta ended at {betas[-1]:.4g} after {len(betas)} of {cfg.train.epochs} "
            f"planned epochs (the margin term's weight 1 / (1 + beta) = {1 / (1 + betas[-1]):.3g}): the schedule "
            f"reaches its final beta after model.loss.beta_final_at={at:g} of the planned epochs, and training "
            f"stopped before; plan train.epochs near the epochs the run trains, or lower model.loss.beta_final_at")


@contextlib.contextmanager
def whole_lists(cfg: RunConfig, schema: ListwiseSchema, split: str):
    """Turns the error of an evaluation reader that meets a list longer than ``preranking.eval_list_size``
    (:data:`tfrec.listwise_data.TOO_LONG`: its candidates would be dropped) into a one-line ``ConfigError`` that
    names the size the ``split`` needs (:func:`tfrec.listwise_data.longest_list`)."""
    try:
        yield
    except tf.errors.InvalidArgumentError as e:
        if TOO_LONG not in str(e):
            raise
        longest = longest_list(data_lib.split_files(cfg.data.dir, split), schema)
        raise ConfigError(f"the {split} lists of {cfg.data.dir} hold up to {longest} items, more than "
                          f"preranking.eval_list_size={cfg.preranking.eval_list_size}, and evaluation keeps every "
                          f"candidate: set preranking.eval_list_size={longest} or more") from None


def exact_validation_aucs(cfg: RunConfig, schema: ListwiseSchema, max_batches: int = 0):
    """``model -> {"<task>_auc": AUC, "auc": the first task's}``: the exact AUC of each task on the impressions
    of the valid split (:func:`tfrec.evaluate_preranking.impression_aucs`, as :func:`evaluate_preranking`
    reports it), under the names of the training logs without ``val_``; ``max_batches`` (0: all) limits the
    batches read, as ``train.validation_steps`` does."""
    ds = make_listwise_dataset(data_lib.split_files(cfg.data.dir, "valid"), schema, cfg.data.eval_batch_size,
                               cfg.preranking.eval_list_size, training=False)
    ds = ds.take(max_batches) if max_batches else ds
    cache = {}

    def compute(model) -> Dict[str, float]:
        if cache.get("model") is not model:
            cache.update(model=model, predict=predict_function(model, ds, model.tasks))
        aucs = impression_aucs(collect(model, ds, model.tasks, keep=AUC_FIELDS, predict=cache["predict"]))
        return {**{f"{t}_auc": aucs[t] for t in model.tasks}, "auc": aucs[model.tasks[0]]}

    return compute


def load_trained_preranking(cfg: RunConfig) -> ThreeTower:
    """The model of a finished run with its best weights (no strategy needed). The architecture is the run's own
    (the ``model`` section of ``<model_dir>/config.yaml``; :func:`tfrec.train.trained_weights`), whatever
    ``cfg.model`` says."""
    path, cfg = trained_weights(cfg)
    cfg = _resolved(cfg)
    model = build_preranking_model(cfg, load_listwise_schema(cfg.data.dir))
    model.load_weights(path).expect_partial()
    return model


def evaluate_preranking(cfg: RunConfig, split: str = "test", model: Optional[ThreeTower] = None,
                        output: Optional[str] = None, arrays: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """The HCCP report (:func:`tfrec.evaluate_preranking.preranking_report`) of ``model`` (default: the best
    weights of ``cfg.train.model_dir``) on ``split``, recorded in ``preranking_metrics.json``. ``arrays``, when
    given, receives the per-request arrays the report was computed from (:func:`tfrec.evaluate_preranking.collect`)."""
    if split not in data_lib.SPLITS:
        raise ValueError(f"`split` must be one of {data_lib.SPLITS}. Received: split={split!r}")
    cfg = _resolved(cfg)
    schema = load_listwise_schema(cfg.data.dir)
    model = model or load_trained_preranking(cfg)
    p = cfg.preranking
    ds = make_listwise_dataset(data_lib.split_files(cfg.data.dir, split), schema, cfg.data.eval_batch_size,
                               p.eval_list_size, training=False)
    with whole_lists(cfg, schema, split):
        collected = collect(model, ds, model.tasks)
    if arrays is not None:
        arrays.update(collected)
    report = preranking_report(collected, p.hit_ks, p.consistency_ks, p.octile_k)
    record_report(output or os.path.join(cfg.train.model_dir, "preranking_metrics.json"), split, report)
    return report
