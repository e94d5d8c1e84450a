"""Pre-ranking metrics of HCCP (section 4.1.2) in NumPy: hit@K, MAP@K, NDCG@K, and the popularity-octile split.

Layout: one request per row, ``[U, L]`` arrays of scores and flags, with ``mask`` False on padded slots (excluded
from every ranking). Readings of the paper, which gives only hit@K's formula:

* **hit@K** (ISH / ISPH / ASH / ASPH): ``hit@K = 1/|U| sum_u |top_K(u) n I_u| / |I_u|``, with ``top_K(u)`` the K
  best-scored of the request's pre-ranking candidates and ``I_u`` the request's positives: its clicks or purchases
  in the current scenario (ISH, ISPH) or in all scenarios (ASH, ASPH). ``|I_u|`` counts every positive, also
  those that are not among the candidates (an all-scenario click on an item that was never retrieved can never
  be hit, and the metric says so), passed as ``num_relevant``. Requests with no positive are left out of the
  mean (``1/|I_u|`` is undefined for them); the result reports how many requests entered.
* **MAP@K, NDCG@K** (consistency with ranking): the relevant set is the ranking stage's top-K of the request
  (``1 <= rank <= K``); the model's top-K over the candidates is scored against it with binary gains.
  ``AP@K = 1/min(K, |G|) sum_{i<=K} P@i rel_i`` and ``NDCG@K = DCG@K / IDCG@K`` with
  ``DCG@K = sum_{i<=K} rel_i / log2(i + 1)`` and the ideal ``IDCG@K = sum_{i<=min(K,|G|)} 1 / log2(i + 1)``
  (Liu 2009, the paper's reference [15]).
  ``tfr.metrics.NDCGMetric(topn=K)`` computes the same NDCG for binary labels (its gain ``2^rel - 1`` is ``rel``
  for rel in {0, 1}; ties in the scores are broken differently); ``tfr.metrics.MeanAveragePrecisionMetric(topn=K)``
  divides by the number of relevant items in the whole list, not by ``min(K, |G|)``: it equals ours when
  ``|G| <= K``, which is always the case here (the ranking stage's top-K has K items), so the two agree;
  ``tests/tfrec/metrics/test_metrics_ranking.py`` checks both.
* **Popularity octiles** (Fig. 7): items sorted by their number of occurrences in the evaluated data (most
  frequent first) are cut into 8 groups of equal item counts; octile ``q``'s hit@K restricts ``I_u`` (and
  ``|I_u|``) to the positives whose item is in octile ``q``.

Ties in the scores are broken by slot order (a stable sort), so the metrics are deterministic.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np


def _check(scores: np.ndarray, *others: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [requests, list_size]; got shape {scores.shape}")
    for o in others:
        if o is not None and np.shape(o) != scores.shape:
            raise ValueError(f"all inputs must have the scores' shape {scores.shape}; got {np.shape(o)}")
    return scores


def top_k_mask(scores: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """``[U, L]`` bool: the ``k`` best-scored valid slots of each row (stable: ties keep slot order)."""
    if k <= 0:
        raise ValueError(f"`k` must be > 0. Received: k={k}")
    scores = _check(scores, mask)
    valid = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, bool)
    key = np.where(valid, -scores, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    top = np.zeros(scores.shape, bool)
    np.put_along_axis(top, order, True, axis=1)
    return top & valid


def hit_at_k(scores, relevant, k: int, mask=None, num_relevant=None) -> Dict[str, float]:
    """hit@K (HCCP 4.1.2) of each request's top-K candidates.

    Args:
      scores: ``[U, L]`` model scores of the candidates.
      relevant: ``[U, L]`` bool, the candidate is one of the request's positives ``I_u``.
      k: K.
      mask: ``[U, L]`` bool, False on padded slots.
      num_relevant: ``[U]`` ``|I_u|`` (default: the number of relevant candidates).

    Returns:
      ``{"hit": mean over the requests with |I_u| > 0 (nan if none), "requests": how many}``.
    """
    relevant = np.asarray(relevant, bool)
    scores = _check(scores, relevant, mask)
    if mask is not None:
        relevant = relevant & np.asarray(mask, bool)
    n = relevant.sum(axis=1) if num_relevant is None else np.asarray(num_relevant, np.float64)
    if np.any(n < relevant.sum(axis=1)):
        raise ValueError("num_relevant must be >= the number of relevant candidates of each request")
    hits = (top_k_mask(scores, k, mask) & relevant).sum(axis=1)
    use = n > 0
    return {"hit": float(np.mean(hits[use] / n[use])) if use.any() else float("nan"), "requests": int(use.sum())}


def _ranked_relevance(scores, relevant, k, mask):
    valid = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, bool)
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")[:, :k]
    rel = np.take_along_axis(relevant & valid, order, axis=1) & np.take_along_axis(valid, order, axis=1)
    return rel.astype(np.float64), (relevant & valid).sum(axis=1)


def map_at_k(scores, relevant, k: int, mask=None) -> float:
    """MAP@K: mean over the requests with a relevant item of ``1/min(K, |G|) sum_{i<=K} P@i rel_i``."""
    relevant = np.asarray(relevant, bool)
    scores = _check(scores, relevant, mask)
    rel, n = _ranked_relevance(scores, relevant, k, mask)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    use = n > 0
    ap = (precision * rel).sum(axis=1)[use] / np.minimum(k, n[use])
    return float(ap.mean()) if use.any() else float("nan")


def ndcg_at_k(scores, relevant, k: int, mask=None) -> float:
    """NDCG@K with binary gains: mean over the requests with a relevant item of ``DCG@K / IDCG@K``."""
    relevant = np.asarray(relevant, bool)
    scores = _check(scores, relevant, mask)
    rel, n = _ranked_relevance(scores, relevant, k, mask)
    discounts = 1.0 / np.log2(np.arange(2, rel.shape[1] + 2))
    dcg = (rel * discounts).sum(axis=1)
    ideal_discounts = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.array([ideal_discounts[:min(k, m)].sum() for m in n])
    use = n > 0
    return float((dcg[use] / idcg[use]).mean()) if use.any() else float("nan")


def popularity_octiles(item_ids, mask=None, groups: int = 8) -> Dict[object, int]:
    """Item id -> octile ``0..groups-1`` (0 = most frequent) by occurrences in ``item_ids`` (``[U, L]``).

    Items are sorted by count, descending (ties by id, so the split is deterministic) and cut into ``groups``
    groups of equal item counts (``np.array_split``)."""
    ids = np.asarray(item_ids)
    if mask is not None:
        ids = ids[np.asarray(mask, bool)]
    values, counts = np.unique(ids.reshape(-1), return_counts=True)
    order = np.lexsort((values, -counts))
    out: Dict[object, int] = {}
    for g, part in enumerate(np.array_split(order, groups)):
        for i in part:
            out[values[i].item() if hasattr(values[i], "item") else values[i]] = g
    return out
