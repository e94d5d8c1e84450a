"""Evaluation of a pre-ranking model on full candidate lists (HCCP 4.1.2): hit rates, consistency, AUC, octiles.

:func:`collect` runs the model over a list-wise split (valid / test lists keep every candidate) and keeps, per
request, the scores of the Cxr tasks and the fields the metrics need; :func:`preranking_report` computes:

* ``ISH@K`` / ``ISPH@K``: hit@K of the click / purchase score's top-K among the pre-ranking candidates (N1-N3:
  the retrieved items; N5 pool items are not candidates) against the request's in-scenario clicks / purchases;
* ``ASH@K`` / ``ASPH@K``: the same against the user's all-scenario clicks / purchases of the day
  (``all_scenario_clicks`` / ``all_scenario_purchases``; ``|I_u|`` counts those never retrieved);
* ``MAP@K`` / ``NDCG@K``: the click score's top-K against the ranking stage's top-K (``1 <= rank <= K``);
* ``AUC_<task>``: AUC of each task's probability on the impressions;
* ``octile_ISH@K`` / ``octile_ISPH@K``: lists of 8 values, hit@K with the positives restricted to each item
  popularity octile (Fig. 7; octile 0 = most frequent items of the evaluated candidate lists).

K values scale the paper's (10, 100, 1000, 2000 over JD's candidate sets) to the simulator's: the defaults are
``hit_ks = (10, 50, 100, 200)`` over ~500 retrieved candidates and ``consistency_ks = (10, 50, 100)`` over
``N^r = 200`` ranked ones (the paper leaves out the tail, K = 2000, for consistency).
Metric definitions: :mod:`tfrec.metrics.ranking`.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from tfrec.features import SAMPLE_N1, SAMPLE_N2, SAMPLE_N3
from tfrec.metrics.classification import auc
from tfrec.metrics.ranking import hit_at_k, map_at_k, ndcg_at_k, popularity_octiles

_KEEP = ("example_mask", "sample_type", "rank", "click", "purchase", "item_id", "all_scenario_clicks",
         "all_scenario_purchases")


def predict_function(model, dataset, tasks: Sequence[str]):
    """``features -> {task: [b, L] probability}`` of ``model``, traced once for ``dataset``'s feature spec."""
    # One trace for every batch (the dataset's spec: its batch dimension is None, the last batch is short), and
    # no AutoGraph: the inference pass has no tensor-dependent Python control flow, and converting the model's
    # code costs far more than the evaluation of a small split (tests: same scores as the eager call).
    return tf.function(lambda x: {t: model(x, training=False)[t] for t in tasks},
                       input_signature=[dataset.element_spec[0]], autograph=False)


def collect(model, dataset, tasks: Sequence[str], keep: Sequence[str] = _KEEP, predict=None) -> Dict[str, np.ndarray]:
    """Scores and fields of every request of ``dataset`` (``(features, labels)`` batches of one list size).

    Args:
      model: the pre-ranking model.
      dataset: ``(features, labels)`` batches.
      tasks: the tasks whose scores (``score_<task>``) and labels are kept.
      keep: the feature fields kept besides the tasks' labels (default: every field the report needs).
      predict: a :func:`predict_function` of ``model`` for ``dataset`` (default: one is traced for this call).
    """
    predict = predict or predict_function(model, dataset, tasks)
    keep = tuple(dict.fromkeys(tuple(keep) + tuple(tasks)))  # every task's labels too (AUC per task)
    parts: Dict[str, list] = {}
    width = {}
    for features, _ in dataset:
        out = predict(features)
        row = {**{f"score_{t}": out[t].numpy() for t in tasks}, **{k: features[k].numpy() for k in keep}}
        for k, v in row.items():
            parts.setdefault(k, []).append(v)
            if v.ndim == 2:
                width[k] = max(width.get(k, 0), v.shape[1])
    merged = {}
    for k, vs in parts.items():
        if vs[0].ndim == 2 and k.startswith("all_scenario"):  # variable-width string sequences: pad with ""
            vs = [np.pad(v, ((0, 0), (0, width[k] - v.shape[1])), constant_values=b"") for v in vs]
        merged[k] = np.concatenate(vs, axis=0)
    return merged


#: The fields :func:`impression_aucs` needs (with each task's labels).
AUC_FIELDS = ("example_mask", "sample_type")


def impression_aucs(data: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Exact AUC of each task's probability (``score_<task>``) against its label on the impressions (N1 items of
    the lists); NaN for a task without both classes there."""
    impressions = data["example_mask"].astype(bool) & (data["sample_type"] == SAMPLE_N1)
    out = {}
    for key in (k for k in data if k.startswith("score_")):
        task = key[len("score_"):]
        if task in data:
            labels = data[task][impressions]
            out[task] = auc(labels, data[key][impressions]) if 0 < labels.sum() < labels.size else float("nan")
    return out


def _membership(item_ids: np.ndarray, sets: np.ndarray):
    """``[U, L]`` bool item in the row's set, and ``[U]`` the set sizes (distinct, non-empty values)."""
    rows = [set(s[s != b""].tolist()) for s in sets]
    member = np.array([[i in r for i in items] for items, r in zip(item_ids, rows)], bool)
    return member, np.array([len(r) for r in rows], np.float64), rows


def preranking_report(data: Dict[str, np.ndarray], hit_ks: Sequence[int] = (10, 50, 100, 200),
                      consistency_ks: Sequence[int] = (10, 50, 100), octile_k: int = 100) -> Dict[str, object]:
    """The metrics of the module docstring from :func:`collect`'s arrays."""
    mask = data["example_mask"].astype(bool)
    st = data["sample_type"]
    candidates = mask & np.isin(st, (SAMPLE_N1, SAMPLE_N2, SAMPLE_N3))
    impressions = mask & (st == SAMPLE_N1)
    ids = data["item_id"]
    report: Dict[str, object] = {"requests": int(mask.shape[0])}
    positives = {}
    for name, task, seq in (("IS", "click", None), ("ISP", "purchase", None),
                            ("AS", "click", "all_scenario_clicks"), ("ASP", "purchase", "all_scenario_purchases")):
        if seq is None:
            rel = impressions & (data[task] > 0.5)
            n, sets = rel.sum(axis=1).astype(np.float64), None
        else:
            member, n, sets = _membership(ids, data[seq])
            rel = candidates & member
        positives[name] = (task, rel, n, sets)
        for k in hit_ks:
            report[f"{name}H@{k}"] = hit_at_k(data[f"score_{task}"], rel, k, candidates, n)["hit"]
    for k in consistency_ks:
        ranked = candidates & (data["rank"] >= 1) & (data["rank"] <= k)
        report[f"MAP@{k}"] = map_at_k(data["score_click"], ranked, k, candidates)
        report[f"NDCG@{k}"] = ndcg_at_k(data["score_click"], ranked, k, candidates)
    report.update({f"AUC_{task}": value for task, value in impression_aucs(data).items()})
    octile = popularity_octiles(ids, candidates)
    oct_of = np.vectorize(lambda i: octile.get(i, -1), otypes=[np.int64])(ids)
    for name in ("IS", "ISP"):
        task, rel, _, _ = positives[name]
        values = []
        for q in range(8):
            rq = rel & (oct_of == q)
            values.append(hit_at_k(data[f"score_{task}"], rq, octile_k, candidates)["hit"])
        report[f"octile_{name}H@{octile_k}"] = values
    return report
