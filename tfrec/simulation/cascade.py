r"""A recommendation-cascade simulator: retrieval -> pre-ranking -> ranking -> re-ranking -> exposure -> feedback.

:func:`simulate_cascade` writes the logs a production cascade keeps for HCCP's hybrid samples (section 3.2): per
request the ``N^p`` retrieved candidates in pre-ranking order, the ``N^r`` candidates that reached ranking in
ranking order, the exposed items in display order, and the clicks and purchases, plus an item table for pool
sampling. ``pipelines.hybrid_samples`` reads exactly these files; a team with real logs writes the same two
JSON-lines files from its own tables.

Files under ``cfg.output``
--------------------------
``requests.jsonl``: one JSON object per line, one line per request (UTF-8, ``\n``-terminated). Fields:

* ``request_id`` (string): unique id of the request.
* ``day`` (integer >= 0): day of the request (``pipelines.hybrid_samples`` can split by it).
* ``scenario`` (string): the scenario (page) that served the request (``"s0"``, ``"s1"``, ...).
* ``user`` (object of strings): user / request context features; here ``user_id`` and ``user_segment``.
* ``retrieved`` (list of item ids): the ``N^p`` candidates retrieval delivered, sorted by the pre-ranking
  score, best first (index = 0-based pre-ranking order). Distinct.
* ``ranking`` (list of item ids): the top ``N^r`` of ``retrieved`` by pre-ranking, re-sorted by the ranking
  model, best first: ``ranking[j]`` has ranking order ``r = j + 1`` (HCCP's ``r``, 1-based). Distinct, a subset
  of ``retrieved``.
* ``ranking_scores`` (list of floats, optional): the ranking model's scores, aligned with ``ranking``.
* ``exposed`` (list of item ids): the impressions in display order (re-ranking output); a subset of ``ranking``.
* ``clicks`` (list of item ids): clicked impressions (a subset of ``exposed``).
* ``purchases`` (list of item ids): purchased items (a subset of ``clicks``).
* ``all_scenario_clicks`` / ``all_scenario_purchases`` (lists of item ids, optional): the user's clicks /
  purchases on the same day in every scenario (for the all-scenario hit rates ASH / ASPH of HCCP 4.1.2).
* ``click_history`` (list of item ids, optional): the user's clicks in earlier requests (every scenario), oldest
  first, at most :data:`HISTORY` items (for user-behaviour and cross features, e.g. the share of an item's
  category in the user's click sequence).

``items.jsonl``: the item pool, one JSON object per item: ``item_id`` (string), ``category`` (string),
``price`` (number > 0). Every item of ``requests.jsonl`` appears here.

``meta.json``: the config and the measured properties of the run (:func:`measure`): impressions per request,
click and purchase rates, the popularity long tail, the ranking scorer's pairwise order accuracy per popularity
quintile, and the share of requests whose all-scenario clicks differ from their in-scenario clicks.

Generative model
----------------
The world is drawn from ``default_rng([seed, 0])``; requests come in blocks of :data:`BLOCK` drawn from
``default_rng([seed, 1, block])``, so the files are byte-identical for an identical config. With ``D`` =
:data:`DIM`:

* Items ``i``: category ``c_i`` uniform; popularity ``pop_i ∝ (rank_i + 1)^-a`` (``a = popularity_exponent``,
  ``rank_i`` a random permutation); embedding ``v_i = C_{c_i} + 0.5 n_i`` with category centres ``C_c`` and
  ``n_i`` of ``N(0, 1/D)`` entries; quality ``q_i ~ N(0, 0.3^2) + 0.2 z_i`` (``z_i`` the standardised
  ``log pop_i``); price lognormal.
* Users ``u``: embedding ``w_u = C_{k_u} + 0.7 n_u`` around a favourite category ``k_u`` (``user_segment``);
  activity ``∝ (rank_u + 1)^-0.8``. Scenarios: a category affinity ``A_{s,c} ~ N(0, 0.8^2)`` per scenario.
* True preference (click logit of user ``u`` for item ``i`` in scenario ``s``):
  ``t = 3 <w_u, v_i> + q_i + A_{s, c_i} - 6.5``; purchase given click: ``sigmoid(1.5 <w_u, v_i> - 0.5 log price_i
  + 0.5 q_i - 3.5)``.
* A request: user by activity, scenario uniform, day = ``index * days // requests``. Retrieval takes the top
  ``N^p`` of ``0.7 log pop_i + t + Gumbel`` over all items. Pre-ranking (a weak scorer) sorts them by
  ``0.4 t + 0.3 log pop_i + N(0, 1)``; its top ``N^r`` go to ranking, a stronger but noisy scorer
  ``t + N(0, sd_i^2)`` with ``sd_i = noise_head + (noise_tail - noise_head) * quantile_i``, ``quantile_i`` in
  [0, 1] the item's popularity quantile (0 = most popular): least accurate on tail items. Re-ranking takes the
  top ``2E`` (``E`` uniform in [exposed_min, exposed_max]) and picks ``E`` greedily by ranking score minus
  ``0.5`` per earlier pick of the same category (diversity). Clicks: ``Bernoulli(sigmoid(t - 0.1 position))``
  on impressions; purchases ``Bernoulli`` on clicks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List

import numpy as np

from tfrec.config import CascadeConfig

#: Embedding dimension of the true preference model.
DIM = 8
#: Requests per random block (fixed: the random streams are per block).
BLOCK = 256
REQUESTS_FILE = "requests.jsonl"
ITEMS_FILE = "items.jsonl"
META_FILE = "meta.json"
#: Longest ``click_history``.
HISTORY = 20


@dataclasses.dataclass
class World:
    """The simulated world (ground truth a real log never has)."""

    item_category: np.ndarray  #: [items] int
    item_log_pop: np.ndarray  #: [items] log popularity
    item_quantile: np.ndarray  #: [items] popularity quantile, 0 = most popular
    item_emb: np.ndarray  #: [items, DIM]
    item_quality: np.ndarray  #: [items]
    item_price: np.ndarray  #: [items]
    user_emb: np.ndarray  #: [users, DIM]
    user_segment: np.ndarray  #: [users] favourite category
    user_activity: np.ndarray  #: [users] request probability
    scenario_affinity: np.ndarray  #: [scenarios, categories]

    def preference(self, user: np.ndarray, scenario: np.ndarray) -> np.ndarray:
        """True click logits ``t`` of every item, ``[len(user), items]``."""
        dot = self.user_emb[user] @ self.item_emb.T
        return 3.0 * dot + self.item_quality + self.scenario_affinity[scenario][:, self.item_category] - 6.5


def make_world(cfg: CascadeConfig) -> World:
    """Draws the world from ``default_rng([cfg.seed, 0])``."""
    rng = np.random.default_rng([cfg.seed, 0])
    centres = rng.normal(0.0, 1.0 / np.sqrt(DIM), (cfg.categories, DIM))
    category = rng.integers(0, cfg.categories, cfg.items)
    pop_rank = rng.permutation(cfg.items)
    log_pop = -cfg.popularity_exponent * np.log1p(pop_rank)
    log_pop -= np.log(np.exp(log_pop).sum())
    z = (log_pop - log_pop.mean()) / log_pop.std()
    segment = rng.integers(0, cfg.categories, cfg.users)
    activity = np.power(1.0 + rng.permutation(cfg.users), -0.8)
    return World(
        item_category=category, item_log_pop=log_pop, item_quantile=pop_rank / max(cfg.items - 1, 1),
        item_emb=centres[category] + 0.5 * rng.normal(0.0, 1.0 / np.sqrt(DIM), (cfg.items, DIM)),
        item_quality=rng.normal(0.0, 0.3, cfg.items) + 0.2 * z,
        item_price=np.round(np.exp(rng.normal(3.0, 0.8, cfg.items)), 2),
        user_emb=centres[segment] + 0.7 * rng.normal(0.0, 1.0 / np.sqrt(DIM), (cfg.users, DIM)),
        user_segment=segment, user_activity=activity / activity.sum(),
        scenario_affinity=rng.normal(0.0, 0.8, (cfg.scenarios, cfg.categories)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _top(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest keys of each row, largest first (ties by index)."""
    part = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _rerank(items: np.ndarray, scores: np.ndarray, category: np.ndarray, n: int) -> List[int]:
    """Greedy diversity re-ranking: ``n`` picks by score minus 0.5 per earlier pick of the same category."""
    adjusted = scores.astype(np.float64).copy()
    picked: List[int] = []
    for _ in range(n):
        j = int(np.argmax(adjusted))
        picked.append(j)
        adjusted[j] = -np.inf
        adjusted[category[items] == category[items[j]]] -= 0.5
    return picked


def simulate_block(cfg: CascadeConfig, world: World, block: int) -> List[Dict[str, object]]:
    """The requests of block ``block`` (indices ``block * BLOCK`` ..), as log records without the all-scenario
    fields (:func:`simulate_cascade` adds them)."""
    rng = np.random.default_rng([cfg.seed, 1, block])
    first = block * BLOCK
    index = np.arange(first, min(first + BLOCK, cfg.requests))
    n = len(index)
    user = rng.choice(len(world.user_activity), size=n, p=world.user_activity)
    scenario = rng.integers(0, cfg.scenarios, n)
    t_all = world.preference(user, scenario)  # [n, items]
    retrieval_key = 0.7 * world.item_log_pop + t_all + rng.gumbel(size=t_all.shape)
    retrieved = _top(retrieval_key, cfg.retrieved)  # [n, N^p], unordered by pre-ranking yet
    t = np.take_along_axis(t_all, retrieved, axis=1)
    pre = 0.4 * t + 0.3 * world.item_log_pop[retrieved] + rng.normal(size=t.shape)
    order = np.argsort(-pre, axis=1, kind="stable")
    retrieved, t = np.take_along_axis(retrieved, order, axis=1), np.take_along_axis(t, order, axis=1)
    ranked, t_r = retrieved[:, :cfg.ranked], t[:, :cfg.ranked]
    sd = cfg.ranking_noise_head + (cfg.ranking_noise_tail - cfg.ranking_noise_head) * world.item_quantile[ranked]
    rank_score = t_r + sd * rng.normal(size=t_r.shape)
    order = np.argsort(-rank_score, axis=1, kind="stable")
    ranked, t_r, rank_score = (np.take_along_axis(a, order, axis=1) for a in (ranked, t_r, rank_score))
    exposures = rng.integers(cfg.exposed_min, cfg.exposed_max + 1, n)
    records = []
    for b in range(n):
        e = int(exposures[b])
        window = min(2 * e, cfg.ranked)
        picks = _rerank(ranked[b, :window], rank_score[b, :window], world.item_category, e)
        exposed = ranked[b, picks]
        click = rng.random(e) < _sigmoid(t_r[b, picks] - 0.1 * np.arange(e))
        dot = world.user_emb[user[b]] @ world.item_emb[exposed].T
        p_buy = _sigmoid(1.5 * dot - 0.5 * np.log(world.item_price[exposed]) + 0.5 * world.item_quality[exposed]
                         - 3.5)
        buy = click & (rng.random(e) < p_buy)
        records.append({
            "request_id": f"r{index[b]:07d}",
            "day": int(index[b] * cfg.days // cfg.requests),
            "scenario": f"s{scenario[b]}",
            "user": {"user_id": f"u{user[b]}", "user_segment": f"g{world.user_segment[user[b]]}"},
            "retrieved": [f"i{i}" for i in retrieved[b]],
            "ranking": [f"i{i}" for i in ranked[b]],
            "ranking_scores": [round(float(x), 4) for x in rank_score[b]],
            "exposed": [f"i{i}" for i in exposed],
            "clicks": [f"i{i}" for i in exposed[click]],
            "purchases": [f"i{i}" for i in exposed[buy]],
        })
    return records


def add_all_scenario(records: List[Dict[str, object]]) -> None:
    """Sets ``all_scenario_clicks`` / ``all_scenario_purchases``: the user's positives of the day, every scenario."""
    clicks: Dict[tuple, Dict[str, None]] = {}  # (user, day) -> ordered set of items
    buys: Dict[tuple, Dict[str, None]] = {}
    for r in records:
        key = (r["user"]["user_id"], r["day"])
        clicks.setdefault(key, {}).update(dict.fromkeys(r["clicks"]))
        buys.setdefault(key, {}).update(dict.fromkeys(r["purchases"]))
    for r in records:
        key = (r["user"]["user_id"], r["day"])
        r["all_scenario_clicks"] = list(clicks[key])
        r["all_scenario_purchases"] = list(buys[key])


def add_click_history(records: List[Dict[str, object]]) -> None:
    """Sets ``click_history``: the user's clicks in earlier requests (records are in time order), the last
    :data:`HISTORY`, oldest first."""
    history: Dict[str, List[str]] = {}
    for r in records:
        past = history.setdefault(r["user"]["user_id"], [])
        r["click_history"] = past[-HISTORY:]
        past.extend(r["clicks"])
        del past[:-HISTORY]


def _pairwise_accuracy(scores: np.ndarray, truth: np.ndarray) -> tuple:
    """(concordant pairs, pairs) of ``scores`` against ``truth`` over all pairs of a 1-D set."""
    if len(scores) < 2:
        return 0, 0
    ds = np.sign(scores[:, None] - scores[None, :])
    dt = np.sign(truth[:, None] - truth[None, :])
    upper = np.triu(np.ones_like(ds, dtype=bool), 1) & (dt != 0)
    return int(np.sum((ds == dt) & upper)), int(np.sum(upper))


def measure(cfg: CascadeConfig, world: World, records: List[Dict[str, object]]) -> Dict[str, object]:
    """Measured properties of a simulated log (written to ``meta.json``).

    ``ranking_pairwise_accuracy[q]``: over pairs of ranking candidates of one request whose items both lie in
    popularity quintile ``q`` (0 = most popular 20% of the catalogue), the share that the ranking scores order
    like the true preference ``t``.
    """
    item_index = {f"i{i}": i for i in range(cfg.items)}
    exposed = np.array([len(r["exposed"]) for r in records])
    n_exp, n_clk = exposed.sum(), sum(len(r["clicks"]) for r in records)
    n_buy = sum(len(r["purchases"]) for r in records)
    impressions = np.zeros(cfg.items)
    retrievals = np.zeros(cfg.items)
    conc, pairs = np.zeros(5), np.zeros(5)
    for r in records:
        impressions[[item_index[x] for x in r["exposed"]]] += 1
        retrievals[[item_index[x] for x in r["retrieved"]]] += 1
        ranked = np.array([item_index[x] for x in r["ranking"]])
        user, scenario = int(r["user"]["user_id"][1:]), int(r["scenario"][1:])
        t = world.preference(np.array([user]), np.array([scenario]))[0, ranked]
        scores = np.asarray(r["ranking_scores"])
        quint = np.minimum((world.item_quantile[ranked] * 5).astype(int), 4)
        for q in range(5):
            c, p = _pairwise_accuracy(scores[quint == q], t[quint == q])
            conc[q] += c
            pairs[q] += p
    top = np.argsort(-world.item_log_pop)[: max(1, cfg.items // 10)]
    differs = np.mean([set(r["clicks"]) != set(r["all_scenario_clicks"]) for r in records])
    return {
        "requests": len(records),
        "impressions_per_request": {"mean": float(exposed.mean()), "min": int(exposed.min()),
                                    "max": int(exposed.max())},
        "click_rate": float(n_clk / n_exp), "purchase_per_click": float(n_buy / max(n_clk, 1)),
        "requests_with_click": float(np.mean([bool(r["clicks"]) for r in records])),
        "top10pct_items_share": {"popularity": float(np.exp(world.item_log_pop[top]).sum()),
                                 "retrievals": float(retrievals[top].sum() / retrievals.sum()),
                                 "impressions": float(impressions[top].sum() / impressions.sum())},
        "items_ever_exposed": int(np.sum(impressions > 0)),
        "ranking_pairwise_accuracy": {f"q{q}": (float(conc[q] / pairs[q]) if pairs[q] else None) for q in range(5)},
        "ranking_pairs_per_quintile": {f"q{q}": int(pairs[q]) for q in range(5)},
        "all_scenario_clicks_differ": float(differs),
    }


def _write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def simulate_cascade(cfg: CascadeConfig) -> Dict[str, object]:
    """Simulates ``cfg.requests`` requests and writes ``requests.jsonl``, ``items.jsonl`` and ``meta.json``.

    Args:
      cfg: the simulator config (validated here); ``cfg.output`` is the output directory (created).

    Returns:
      The measured properties (:func:`measure`), as written to ``meta.json`` under ``"measured"``.

    Raises:
      tfrec.config.ConfigError: an invalid config.
      ValueError: an empty ``cfg.output``.
    """
    cfg.validate()
    if not cfg.output:
        raise ValueError("cascade.output is empty; set it to the output directory of the logs")
    os.makedirs(cfg.output, exist_ok=True)
    world = make_world(cfg)
    records: List[Dict[str, object]] = []
    for block in range((cfg.requests + BLOCK - 1) // BLOCK):
        records.extend(simulate_block(cfg, world, block))
    add_all_scenario(records)
    add_click_history(records)
    _write_jsonl(os.path.join(cfg.output, REQUESTS_FILE), records)
    _write_jsonl(os.path.join(cfg.output, ITEMS_FILE), (
        {"item_id": f"i{i}", "category": f"c{world.item_category[i]}", "price": float(world.item_price[i])}
        for i in range(cfg.items)))
    measured = measure(cfg, world, records)
    with open(os.path.join(cfg.output, META_FILE), "w", encoding="utf-8") as f:
        json.dump({"config": dataclasses.asdict(cfg), "measured": measured}, f, indent=2)
    return measured
