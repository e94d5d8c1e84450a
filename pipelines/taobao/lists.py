"""A scored Taobao request -> one HCCP list (``ExampleListWithContext``), pure functions (no Beam, no TensorFlow).

The Taobao log holds impressions only, so of HCCP's hybrid samples (section 3.2) a list has:

* N1, the request's impressions, with the ranking order ``r`` given by the ranker (DIN) score: ``r = 1`` for the
  best-scored impression (ties by the request's item order). Every impression is a ranking candidate and exposed
  (``N^r`` = the number of impressions), so the arrangement of cascade logs applies unchanged
  (:func:`pipelines.hybrid_samples.samples.build_list`): ``r^c = r - (e + l^clk) N^r`` puts the clicked
  impressions first, then the others, each in DIN order, and ``r^t`` (the click task) is the same order;
* N5, ``pool_samples`` ads of the item table not in the request, drawn uniformly without replacement;
* N4 (in-batch negatives) is built by the model from other requests' impressions, as for the cascade lists;
* no N2 (unexposed ranking candidates) and no N3 (pre-ranking candidates): the public log has none, and the
  pipeline's statistics say so.

Each item also carries ``ranker_score``: the ranker's predicted click probability for an impression (what the
Rethink baseline distils), ``-1.0`` for N5 items. The encoding reuses :mod:`pipelines.hybrid_samples.encode`
(deterministic bytes, entries in key order).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from pipelines.hybrid_samples import encode
from pipelines.hybrid_samples.encode import EntryCache
from pipelines.hybrid_samples.samples import build_list
from tfrec.features import SAMPLE_N1, ListwiseSchema

RANKER_SCORE = "ranker_score"
NO_SCORE = -1.0


def ranking_order(scores: Sequence[float]) -> List[int]:
    """Indices of the items by descending score, ties by index (a stable sort)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable").tolist()


def build_request_list(req: dict, scores: Sequence[float], pool: Sequence[str], items: Dict[str, tuple],
                       schema: ListwiseSchema, pool_samples: int, rng: np.random.Generator) -> Dict[str, list]:
    """The list columns of one request (see :func:`pipelines.hybrid_samples.samples.build_list`) plus
    :data:`RANKER_SCORE`.

    Args:
      req: a request of :func:`pipelines.taobao.requests.user_requests` (``items``: ``[[ad id, clk], ...]``).
      scores: the ranker's click probability of each of ``req["items"]``, in that order.
      pool: the item table's ids, sorted (N5 candidates).
      items: item id -> the item table's features tuple (``item_id`` first, ``category`` second).
      schema: the list-wise schema (:data:`tfrec.data_taobao.TAOBAO_LISTS`).
      pool_samples: N5 items per list.
      rng: the request's generator.
    """
    ids = [x for x, _ in req["items"]]
    order = ranking_order(scores)
    cascade = {"ranking": [ids[i] for i in order], "exposed": ids, "retrieved": [ids[i] for i in order],
               "clicks": [x for x, c in req["items"] if c], "purchases": []}
    slot = schema.item_categorical.index("category")
    cols = build_list(cascade, pool, items, schema, [], [1.0], 0, pool_samples, rng, slot)
    score_of = dict(zip(ids, scores))
    cols[RANKER_SCORE] = [float(score_of[x]) if t == SAMPLE_N1 else NO_SCORE
                          for x, t in zip(cols["item"], cols["sample_type"])]
    return cols


def din_inputs(reqs: Sequence[dict], items: Dict[str, tuple], max_history: int) -> Dict[str, np.ndarray]:
    """DIN's inputs (``tfrec.models.din``) for every impression of ``reqs``, in request and item order: the
    context and item features ``[N]`` (strings; ``price`` float32) and the histories' ``max_history`` most recent
    categories and brands ``[N, H]`` (``""`` padding after them, ``H`` the longest in the batch, at least 1)."""
    from tfrec.data_taobao import CONTEXT_FEATURES, ITEM_FEATURES

    cols: Dict[str, list] = {k: [] for k in CONTEXT_FEATURES + ITEM_FEATURES + ("price",)}
    hist: Dict[str, list] = {"click_history_category": [], "click_history_brand": []}
    for req in reqs:
        values = {"scenario": req["scenario"], **req["user"]}
        recent = {k: req[k][-max_history:] if max_history else [] for k in hist}
        for ad, _ in req["items"]:
            for k in CONTEXT_FEATURES:
                cols[k].append(values[k])
            features = items[ad]
            for j, k in enumerate(ITEM_FEATURES):
                cols[k].append(features[j])
            cols["price"].append(features[len(ITEM_FEATURES)])
            for k in hist:
                hist[k].append(recent[k])
    out = {k: np.array(v, dtype=object) for k, v in cols.items() if k != "price"}
    out["price"] = np.array(cols["price"], np.float32)
    width = max([1] + [len(h) for h in hist["click_history_category"]])
    for k, rows in hist.items():
        dense = np.full((len(rows), width), "", dtype=object)
        for i, h in enumerate(rows):
            dense[i, :len(h)] = h
        out[k] = dense
    return out


def context_entries(req: dict, schema: ListwiseSchema, cache: EntryCache) -> List[bytes]:
    """The context Example's entries in key order: the categorical context, the counts, the histories."""
    values = {"request_id": req["request_id"], "scenario": req["scenario"], **req["user"]}
    n = len(req["items"])
    ints = {"day": req["day"], "num_retrieved": n, "num_ranked": n, "num_exposed": n}
    entries = [(k, encode.map_entry(k, encode.bytes_feature([values[k].encode("utf-8")])))
               for k in schema.context_categorical]
    entries += [(k, cache.int64(k, int(ints[k]))) for k in schema.context_int]
    entries += [(k, encode.map_entry(k, encode.bytes_feature([x.encode("utf-8") for x in req[k]])))
                for k in schema.context_sequences]
    return [e for _, e in sorted(entries, key=lambda kv: kv[0])]


def to_example_list(req: dict, cols: Dict[str, list], schema: ListwiseSchema, cache: EntryCache) -> bytes:
    """One request's serialized ``ExampleListWithContext``: context (:func:`context_entries`) and one Example per
    item (the item table's features, the order fields, the labels and ``ranker_score``)."""
    ints, labels = schema.order_fields(), schema.label_fields()
    parts = []
    for j, item in enumerate(cols["item"]):
        entries = list(cache.item(item))
        entries += [(n, cache.int64(n, cols[n][j])) for n in ints]
        entries += [(n, cache.float32(n, cols[n][j])) for n in labels]
        # Scores take many values: encoded directly, not cached.
        entries += [(n, encode.map_entry(n, encode.float_feature([cols[n][j]]))) for n in schema.item_scores]
        parts.append(encode.field(0x0A, encode.example([e for _, e in sorted(entries, key=lambda kv: kv[0])])))
    parts.append(encode.field(0x12, encode.example(context_entries(req, schema, cache))))
    return b"".join(parts)
