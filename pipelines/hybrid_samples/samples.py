r"""HCCP hybrid multi-level samples of one request (section 3.2): pure functions, no Beam, no TensorFlow ops.

Reading of section 3.2.1 (the ranking sequence), followed here:

* ``R^r`` is the ranking list in ranking order ``r = 1 .. N^r`` (``N^r`` = the request's ranking-list length).
* Non-uniform chunked sampling, Eq. 2: rank ``r`` lies in chunk ``j`` when ``N_{j-1}^r <= r < N_j^r`` (``N_0^r =
  1``; ``chunk_boundaries`` are ``N_1^r < ... < N_{m-1}^r``; the last chunk runs to ``N^r``) and has sample rate
  ``s_j``. "Impressions are retained during sampling": every exposed item is kept, and the rate applies to the
  chunk's unexposed items: of the ``n_j`` unexposed items of chunk ``j``, ``k_j = floor(s_j n_j) + Bernoulli(frac(s_j
  n_j))`` are drawn uniformly without replacement, so each is kept with probability exactly ``s_j`` and the
  sample keeps ``M = sum_j s_j n_j`` of them in expectation (the paper's ``M = sum_i s_i N_i^r``) plus the
  impressions. The result ``~R^r`` keeps the original relative order.
* Arrangement, global: ``r^c = r - (e + l^clk) * N^r`` over ``~R^r`` (``r`` the ORIGINAL ranking order, not the
  position in the sample). As ``1 <= r <= N^r`` and clicks only occur on impressions (``e + l^clk`` is 0, 1 or 2),
  ``R^c`` (ascending ``r^c``) is: clicked impressions, then unclicked impressions, then unexposed items, each
  part in ranking order. ``r^c`` is negative for impressions, and the loss (``tfrec.losses.list_mle``) reads a
  negative rank as padding, so the examples carry both the raw ``rc`` and ``rc_position``, the 0-based position
  in ``R^c``, which is the list_mle label of Eq. 3.
* Arrangement, local, per task ``t``: ``R^t = [j in R^c, e_j = 1]`` (the impressions) ordered by ``r^t = r - (e +
  l^t) * N^r``, i.e. the task's positives first, each part in ranking order; stored as raw ``rt_<t>`` and
  ``rt_<t>_position`` (0-based position in ``R^t``, the list_mle label of Eq. 4; -1 on unexposed items).
* Diversity task label (the paper names the task but not its label): an impression whose category appears at no
  earlier display position of the request's exposure list (the first item of each category on screen).

Section 3.2.2: ``R^p`` = the retrieved items that did not enter ranking (``N^p - N^r`` of them); N3 ``B^p`` is a
uniform sample without replacement of ``preranking_samples`` of them (all when fewer). Section 3.2.4: N5 ``B^c``
is a uniform sample without replacement of ``pool_samples`` items of the item table that are not among the
request's retrieved items (so pool negatives are never retrieved candidates).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from pipelines.hybrid_samples import encode
from pipelines.hybrid_samples.encode import EntryCache
from tfrec.features import NO_ORDER, SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5, ListwiseSchema


def chunk_rates(ranks: np.ndarray, boundaries: Sequence[int], rates: Sequence[float]) -> np.ndarray:
    """Eq. 2: the sample rate ``s_j`` of each 1-based ranking order in ``ranks``."""
    return np.asarray(rates, dtype=np.float64)[np.searchsorted(np.asarray(boundaries), ranks, side="right")]


def chunk_sample(ranks: np.ndarray, exposed: np.ndarray, boundaries: Sequence[int], rates: Sequence[float],
                 rng: np.random.Generator) -> np.ndarray:
    """Non-uniform chunked sampling of the ranking sequence (Eq. 2); impressions are always kept.

    Args:
      ranks: ``[n]`` 1-based ranking orders.
      exposed: ``[n]`` bool, the impressions.
      boundaries / rates: Eq. 2's chunk starts ``N_1^r < ... < N_{m-1}^r`` and rates ``s_1 .. s_m``.
      rng: the request's generator.

    Returns:
      ``[n]`` bool keep mask.
    """
    ranks = np.asarray(ranks)
    keep = np.asarray(exposed, dtype=bool).copy()
    chunk = np.searchsorted(np.asarray(boundaries), ranks, side="right")
    for j, s in enumerate(rates):
        candidates = np.flatnonzero((chunk == j) & ~keep)
        expected = s * len(candidates)
        k = int(math.floor(expected)) + int(rng.random() < expected - math.floor(expected))
        if k:
            keep[rng.choice(candidates, size=k, replace=False)] = True
    return keep


def arrange(ranks: np.ndarray, exposure: np.ndarray, labels: np.ndarray, n_ranked: int):
    """Section 3.2.1's arranged order ``r - (e + l) * N^r`` and each item's 0-based position in it.

    Args:
      ranks: ``[n]`` original 1-based ranking orders ``r`` of the items of the sequence.
      exposure: ``[n]`` ``e`` (0/1).
      labels: ``[n]`` the task label ``l`` (``l^clk`` for ``r^c``; ``l^t`` for ``r^t``).
      n_ranked: ``N^r``.

    Returns:
      ``(raw, position)``: int64 ``[n]`` arrays; ``position[i]`` is item ``i``'s index in the sequence sorted by
      ascending ``raw`` (ties, impossible for distinct ranks, by input order).
    """
    raw = np.asarray(ranks, np.int64) - (np.asarray(exposure, np.int64) + np.asarray(labels, np.int64)) * n_ranked
    position = np.empty(len(raw), np.int64)
    position[np.argsort(raw, kind="stable")] = np.arange(len(raw))
    return raw, position


def diversity_labels(categories: Sequence[str]) -> np.ndarray:
    """1.0 for each item (in display order) whose category appears at no earlier position, else 0.0."""
    seen: set = set()
    out = np.zeros(len(categories), np.float32)
    for i, c in enumerate(categories):
        if c not in seen:
            out[i] = 1.0
            seen.add(c)
    return out


def sample_uniform(candidates: Sequence[str], k: int, rng: np.random.Generator) -> List[int]:
    """Indices of ``min(k, len(candidates))`` candidates drawn without replacement, ascending."""
    k = min(k, len(candidates))
    return sorted(rng.choice(len(candidates), size=k, replace=False).tolist()) if k else []


def sample_pool(pool: Sequence[str], excluded: set, k: int, rng: np.random.Generator) -> List[str]:
    """``min(k, eligible)`` distinct items of ``pool`` not in ``excluded`` (``excluded`` a subset of ``pool``), drawn
    uniformly without replacement: rejection sampling of uniform draws when the eligible items are plenty, an
    exact permutation of the eligible items otherwise."""
    if len(pool) - len(excluded) <= 2 * k:
        rest = [x for x in pool if x not in excluded]
        return [rest[i] for i in rng.permutation(len(rest))[:k].tolist()]
    out: List[str] = []
    chosen: set = set()
    while len(out) < k:
        for d in rng.integers(0, len(pool), size=2 * (k - len(out)) + 8).tolist():
            x = pool[d]
            if x not in excluded and x not in chosen:
                out.append(x)
                chosen.add(x)
                if len(out) == k:
                    break
    return out


def build_list(req: dict, item_ids: Sequence[str], item_index: Dict[str, int], schema: ListwiseSchema,
               boundaries: Sequence[int], rates: Sequence[float], preranking_samples: int, pool_samples: int,
               rng: np.random.Generator, category_slot: int) -> Dict[str, list]:
    """The hybrid sample list of one validated request: per-item columns in list order (R^c, then N3, then N5).

    Args:
      req: a validated request (``validate.parse_request``).
      item_ids: the item pool (item table ids, sorted).
      item_index: item id -> features tuple index into the table (``item_id`` first).
      schema: the list-wise schema (tasks must be click, purchase, diversity or a subset).
      boundaries / rates: Eq. 2 chunks.
      preranking_samples / pool_samples: N3 and N5 sizes.
      rng: the request's generator.
      category_slot: index of ``category`` in the item features tuple (for the diversity label).

    Returns:
      dict column name -> list: ``item`` (ids) and every order and label field of ``schema``.
    """
    ranking, exposed = req["ranking"], req["exposed"]
    n_ranked = len(ranking)
    ranks = np.arange(1, n_ranked + 1)
    display = {x: i for i, x in enumerate(exposed)}
    e = np.array([x in display for x in ranking], np.int64)
    clicks, buys = set(req["clicks"]), set(req["purchases"])
    categories = [item_index[x][category_slot] for x in exposed]
    div = dict(zip(exposed, diversity_labels(categories)))
    keep = np.flatnonzero(chunk_sample(ranks, e.astype(bool), boundaries, rates, rng))
    seq = [ranking[i] for i in keep]
    labels = {"click": np.array([x in clicks for x in seq], np.int64),
              "purchase": np.array([x in buys for x in seq], np.int64),
              "diversity": np.array([div.get(x, 0.0) for x in seq], np.int64)}
    e_seq, r_seq = e[keep], ranks[keep]
    rc, rc_pos = arrange(r_seq, e_seq, labels["click"], n_ranked)
    order = np.argsort(rc_pos)
    cols: Dict[str, list] = {k: [] for k in ("item",) + schema.order_fields() + schema.label_fields()}
    imp = np.flatnonzero(e_seq)
    rt = {}
    for t in schema.tasks:
        raw, pos = arrange(r_seq[imp], e_seq[imp], labels[t][imp], n_ranked)
        full_raw, full_pos = np.zeros(len(seq), np.int64), np.full(len(seq), NO_ORDER, np.int64)
        full_raw[imp], full_pos[imp] = raw, pos
        rt[t] = (full_raw, full_pos)
    retrieved_pos = {x: i for i, x in enumerate(req["retrieved"])}

    def add(item, sample_type, rank, rc_v, rc_p, exposure, task_labels, task_rt):
        cols["item"].append(item)
        cols["sample_type"].append(sample_type)
        cols["preranking_order"].append(retrieved_pos.get(item, NO_ORDER))
        cols["rank"].append(rank)
        cols["display_position"].append(display.get(item, NO_ORDER))
        cols["rc"].append(rc_v)
        cols["rc_position"].append(rc_p)
        cols["exposure"].append(float(exposure))
        for t in schema.tasks:
            cols[t].append(float(task_labels[t]))
            cols[f"rt_{t}"].append(task_rt[t][0])
            cols[f"rt_{t}_position"].append(task_rt[t][1])

    for i in order.tolist():
        add(seq[i], SAMPLE_N1 if e_seq[i] else SAMPLE_N2, int(r_seq[i]), int(rc[i]), int(rc_pos[i]), e_seq[i],
            {t: labels[t][i] for t in schema.tasks}, {t: (int(rt[t][0][i]), int(rt[t][1][i])) for t in schema.tasks})
    zeros = {t: 0 for t in schema.tasks}
    none = {t: (0, NO_ORDER) for t in schema.tasks}
    in_ranking = set(ranking)
    rest = [x for x in req["retrieved"] if x not in in_ranking]  # R^p, in pre-ranking order
    for i in sample_uniform(rest, preranking_samples, rng):
        add(rest[i], SAMPLE_N3, NO_ORDER, 0, NO_ORDER, 0, zeros, none)
    for x in sample_pool(item_ids, set(req["retrieved"]), pool_samples, rng):
        add(x, SAMPLE_N5, NO_ORDER, 0, NO_ORDER, 0, zeros, none)
    return cols


def context_sequences(req: dict, items: Dict[str, tuple], schema: ListwiseSchema) -> Dict[str, List[str]]:
    """The context's list features: the request's own lists, and ``click_history_category`` (the category of each
    ``click_history`` item, from the item table, aligned with it)."""
    out = {n: list(req.get(n, [])) for n in schema.context_sequences}
    if "click_history_category" in out:
        slot = schema.item_categorical.index("category")
        out["click_history_category"] = [items[x][slot] for x in req.get("click_history", [])]
    return out


def to_example_list(req: dict, cols: Dict[str, list], items: Dict[str, tuple], schema: ListwiseSchema,
                    cache: Optional[EntryCache] = None) -> bytes:
    """Serializes one request's list as an ``ExampleListWithContext`` (deterministic bytes; encoded on the wire by
    :mod:`pipelines.hybrid_samples.encode`, which says why).

    Context: ``request_id``, ``scenario``, the ``user`` fields, ``day``, ``num_retrieved`` (``N^p``),
    ``num_ranked`` (``N^r``), ``num_exposed``, and the all-scenario positives. Examples: the item features from the
    item table (``items[id]`` in ``item_categorical + item_dense`` order) and ``cols``' order and label fields.

    Args:
      cache: the encoded entries to reuse across requests (one per worker); a fresh one when omitted.
    """
    cache = cache or EntryCache(items, schema.item_categorical, schema.item_dense)
    values = {"request_id": req["request_id"], "scenario": req["scenario"], **req["user"]}
    ints = {"day": req["day"], "num_retrieved": len(req["retrieved"]), "num_ranked": len(req["ranking"]),
            "num_exposed": len(req["exposed"])}
    context = [(n, encode.map_entry(n, encode.bytes_feature([values[n].encode("utf-8")])))
               for n in schema.context_categorical]
    context += [(n, cache.int64(n, int(ints[n]))) for n in schema.context_int]
    sequences = context_sequences(req, items, schema)
    context += [(n, encode.map_entry(n, encode.bytes_feature([x.encode("utf-8") for x in sequences[n]])))
                for n in schema.context_sequences]
    int_fields, label_fields = schema.order_fields(), schema.label_fields()
    keys = list(schema.item_categorical + schema.item_dense + int_fields + label_fields)
    order = sorted(range(len(keys)), key=keys.__getitem__)  # protobuf's deterministic order: keys ascending
    parts = []
    int64, float32 = cache.int64, cache.float32
    for j, item in enumerate(cols["item"]):
        entries = [e for _, e in cache.item(item)]
        entries += [int64(n, cols[n][j]) for n in int_fields]
        entries += [float32(n, cols[n][j]) for n in label_fields]
        parts.append(encode.field(0x0A, encode.example([entries[i] for i in order])))
    parts.append(encode.field(0x12, encode.example([e for _, e in sorted(context, key=lambda kv: kv[0])])))
    return b"".join(parts)


def to_example_list_reference(req: dict, cols: Dict[str, list], items: Dict[str, tuple],
                              schema: ListwiseSchema):
    """The same list built with the protobuf classes (``ExampleListWithContext`` message): the oracle of
    :func:`to_example_list` in the tests and its baseline in ``bench/bench_hybrid_encode.py``."""
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import input_pb2

    out = input_pb2.ExampleListWithContext()
    ctx = out.context.features.feature
    values = {"request_id": req["request_id"], "scenario": req["scenario"], **req["user"]}
    for name in schema.context_categorical:
        ctx[name].bytes_list.value.append(values[name].encode("utf-8"))
    ints = {"day": req["day"], "num_retrieved": len(req["retrieved"]), "num_ranked": len(req["ranking"]),
            "num_exposed": len(req["exposed"])}
    for name in schema.context_int:
        ctx[name].int64_list.value.append(ints[name])
    sequences = context_sequences(req, items, schema)
    for name in schema.context_sequences:
        ctx[name].bytes_list.value.extend(x.encode("utf-8") for x in sequences[name])
    n_cat = len(schema.item_categorical)
    for j, item in enumerate(cols["item"]):
        ex = example_pb2.Example()
        f = ex.features.feature
        for k, name in enumerate(schema.item_categorical):
            f[name].bytes_list.value.append(items[item][k].encode("utf-8"))
        for k, name in enumerate(schema.item_dense):
            f[name].float_list.value.append(items[item][n_cat + k])
        for name in schema.order_fields():
            f[name].int64_list.value.append(cols[name][j])
        for name in schema.label_fields():
            f[name].float_list.value.append(cols[name][j])
        out.examples.append(ex)
    return out
