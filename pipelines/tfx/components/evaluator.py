"""Evaluator: metrics of the candidate SavedModel on the evaluation split, thresholds, blessing.

The candidate is blessed when its AUC >= ``evaluator.min_auc``, its logloss <= ``evaluator.max_logloss`` (when
set) and, if a model was blessed before, its AUC >= that model's AUC on the same split - ``max_auc_drop``. Both
models are scored here through their ``serving_default`` signature (serialized tf.Examples in, as TF Serving
would), so the comparison does not depend on how either was built. ``evaluation.json`` holds the metrics, the
thresholds and the reasons; ``BLESSED`` or ``NOT_BLESSED`` marks the outcome (TFX's file names).

The metrics are those of the exported task ``evaluator.task`` (output ``<task>``, default ``ctr``: the CTR AUC of
a multi-task model) against ``evaluator.label`` (default: the family's label of that task).

A family of list-wise records (``preranking``) is scored through the SavedModel's ``score_candidates`` signature instead (one
serialized ``ExampleListWithContext`` per request in, ``[B, L]`` scores per task out, as a pre-ranking server is
called) on the split's lists, and the metrics are over the impressions (N1 items) only: the AUC and logloss of
the task's probability (``click``: the click task, the default of the ``preranking`` pipeline config) against its label, the
impression being the only item whose label was observed.
"""

from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np

from pipelines.tfx.artifacts import ModelBlessing
from pipelines.tfx.components import ComponentError, write_json
from pipelines.tfx.components.example_gen import family

NAME = "evaluator"
INPUTS = ("examples", "model", "baseline_model")
BATCH = 4096
#: Lists per ``score_candidates`` call (an evaluation list holds every candidate of its request, ~500 items).
LIST_BATCH = 64
SCORE_CANDIDATES = "score_candidates"


def signature_of(fam) -> str:
    """The signature that scores the records of family ``fam`` (a :class:`tfrec.families.Family`):
    ``score_candidates`` for list-wise records (scored as a pre-ranking server is called), ``""`` (the
    ``serving_default`` of :func:`score`) for the others."""
    from tfrec.families import EXAMPLE_LIST

    return SCORE_CANDIDATES if fam.records == EXAMPLE_LIST else ""


def parameters(cfg):
    params = dataclasses.asdict(cfg.evaluator)
    fam = family(cfg)
    if not params["label"]:
        task_labels = fam.task_labels
        if params["task"] not in task_labels:
            raise ComponentError(f"evaluator.task {params['task']!r} has no default label in the "
                                 f"{fam.name!r} family (known: {sorted(task_labels)}); set evaluator.label")
        params["label"] = task_labels[params["task"]]
    if signature_of(fam):
        params["signature"] = signature_of(fam)
    return params


def check_family(params, fam) -> None:
    """That ``params`` (of :func:`parameters`) score the records of family ``fam`` (the evaluated dataset's, from
    its ``schema.json``) with the family's signature (:func:`signature_of`).

    Raises:
      ComponentError: they do not (parameters of another family's pipeline config).
    """
    have, want = params.get("signature", ""), signature_of(fam)
    if have != want:
        raise ComponentError(
            f"the evaluator's parameters score through {have or 'serving_default'}, but the "
            f"examples are the {fam.name!r} family's, scored through {want or 'serving_default'}: derive the "
            "parameters from a pipeline config of that family (pipeline.family)")


def score(saved_model_dir: str, files, task: str = "ctr", label: str = "label"):
    """``(labels, probabilities, weights)`` of the records in ``files``: output ``task`` of the SavedModel's
    serving_default against the float feature ``label``.

    Raises:
      ComponentError: the signature has no output ``task``.
    """
    import tensorflow as tf

    fn = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    if task not in fn.structured_outputs:
        raise ComponentError(f"the model {saved_model_dir} has no output {task!r} (evaluator.task); outputs: "
                             f"{sorted(fn.structured_outputs)}")
    probs, labels, weights = [], [], []
    spec = {label: tf.io.FixedLenFeature([], tf.float32),
            "weight": tf.io.FixedLenFeature([], tf.float32, default_value=1.0)}
    for batch in tf.data.TFRecordDataset(list(files), compression_type="GZIP").batch(BATCH):
        out = fn(examples=batch)
        probs.append(out[task].numpy().reshape(-1))
        parsed = tf.io.parse_example(batch, spec)
        labels.append(parsed[label].numpy())
        weights.append(parsed["weight"].numpy())
    return np.concatenate(labels), np.concatenate(probs), np.concatenate(weights)


def score_lists(saved_model_dir: str, files, task: str = "click", label: str = "click"):
    """``(labels, probabilities, weights)`` of the impressions of the ``ExampleListWithContext`` records in
    ``files``: output ``task`` of the SavedModel's ``score_candidates`` signature against the item label ``label``
    (weights 1: list-wise records carry none).

    Raises:
      ComponentError: the model has no ``score_candidates`` signature or no output ``task``, or its scores do not
        line up with the lists' items.
    """
    import tensorflow as tf
    import tensorflow_ranking as tfr

    from tfrec.features import NO_ORDER, SAMPLE_N1

    loaded = tf.saved_model.load(saved_model_dir)
    if SCORE_CANDIDATES not in loaded.signatures:
        raise ComponentError(f"the model {saved_model_dir} has no {SCORE_CANDIDATES} signature (not a pre-ranking "
                             f"export); signatures: {sorted(loaded.signatures)}")
    fn = loaded.signatures[SCORE_CANDIDATES]
    if task not in fn.structured_outputs:
        raise ComponentError(f"the model {saved_model_dir} has no output {task!r} (evaluator.task); outputs: "
                             f"{sorted(fn.structured_outputs)}")
    spec = {"sample_type": tf.io.FixedLenFeature([], tf.int64, default_value=NO_ORDER),
            label: tf.io.FixedLenFeature([], tf.float32, default_value=-1.0)}
    probs, labels = [], []
    for batch in tf.data.TFRecordDataset(list(files), compression_type="GZIP").batch(LIST_BATCH):
        out = fn(lists=batch)
        parsed = tfr.data.parse_from_example_list(batch, list_size=None, example_feature_spec=spec,
                                                  mask_feature_name="mask")
        p, mask = out[task].numpy(), parsed["mask"].numpy()
        if p.shape != mask.shape or not np.array_equal(out["example_mask"].numpy().astype(bool), mask):
            raise ComponentError(f"{SCORE_CANDIDATES} of {saved_model_dir} returned scores of shape {p.shape} for "
                                 f"lists of shape {mask.shape}")
        keep = mask & (parsed["sample_type"].numpy() == SAMPLE_N1)
        probs.append(p[keep])
        labels.append(parsed[label].numpy()[keep])
    y = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    return y, np.concatenate(probs) if probs else np.zeros(0, np.float32), np.ones_like(y)


def metrics_of(saved_model_dir: str, files, task: str = "ctr", label: str = "label", signature: str = ""):
    """``tfrec.metrics.binary_report`` of :func:`score` (or of :func:`score_lists` when ``signature`` is
    ``score_candidates``)."""
    from tfrec.metrics import binary_report

    scorer = score_lists if signature == SCORE_CANDIDATES else score
    return {k: float(v) for k, v in binary_report(*scorer(saved_model_dir, files, task, label)).items()
            if isinstance(v, (int, float, np.floating, np.integer))}


def execute(ctx, inputs, params):
    files = sorted(glob.glob(os.path.join(inputs["examples"].path(ctx.root), f"{params['split']}-*.tfrecord.gz")))
    model = inputs["model"]
    serving = os.path.join(model.path(ctx.root), model.properties["serving_model_dir"])
    signature = params.get("signature", "")
    metrics = metrics_of(serving, files, params["task"], params["label"], signature)
    reasons = []
    if metrics["auc"] < params["min_auc"]:
        reasons.append(f"AUC {metrics['auc']:.5f} < evaluator.min_auc {params['min_auc']}")
    if params["max_logloss"] and metrics["logloss"] > params["max_logloss"]:
        reasons.append(f"logloss {metrics['logloss']:.5f} > evaluator.max_logloss {params['max_logloss']}")
    baseline = inputs.get("baseline_model")
    baseline_metrics = None
    if baseline is not None:
        baseline_metrics = metrics_of(os.path.join(baseline.path(ctx.root), baseline.properties["serving_model_dir"]),
                                      files, params["task"], params["label"], signature)
        floor = baseline_metrics["auc"] - params["max_auc_drop"]
        if metrics["auc"] < floor:
            reasons.append(f"AUC {metrics['auc']:.5f} is below the blessed model's {baseline_metrics['auc']:.5f}"
                           f" - max_auc_drop {params['max_auc_drop']} ({baseline.uri})")
    blessed = not reasons
    write_json(os.path.join(ctx.output_dir, "evaluation.json"), {
        "blessed": blessed, "reasons": reasons, "metrics": metrics, "baseline_metrics": baseline_metrics,
        "baseline_model": baseline.uri if baseline is not None else None, "thresholds": params})
    open(os.path.join(ctx.output_dir, "BLESSED" if blessed else "NOT_BLESSED"), "w").close()
    ctx.printer(f"      AUC {metrics['auc']:.5f}" + (f" (blessed model {baseline_metrics['auc']:.5f})"
                                                    if baseline_metrics else "")
                + ("; blessed" if blessed else "; not blessed: " + "; ".join(reasons)))
    return {"blessing": ModelBlessing(uri=ctx.relative(ctx.output_dir), properties={
        "blessed": blessed, "reasons": reasons, "metrics": metrics, "model_uri": model.uri,
        "model_fingerprint": model.fingerprint})}
