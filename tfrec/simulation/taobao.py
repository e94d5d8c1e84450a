r"""A simulator of the public Taobao display-ad log, in its two layouts, with clicks that depend on the history.

:func:`simulate_taobao` writes under ``cfg.output`` (layouts of :mod:`pipelines.taobao.parse`):

* ``layout: alibaba`` (or ``both``): ``raw_sample.csv``, ``ad_feature.csv``, ``user_profile.csv`` (its header ends
  with ``new_user_class_level `` and a trailing space, as the real file's) and, with ``behavior_log``,
  ``behavior_log.csv``; ``brand`` is ``NULL`` for a share of the ads and behaviours, ``pvalue_level`` and
  ``new_user_class_level`` are empty for a share of the users, a share of the users has no profile row;
* ``layout: joined`` (or ``both``): ``taobao_joined.csv``, FuxiCTR's pre-joined layout of the same impressions
  (``time_stamp`` as local ``YYYY-MM-DD HH:MM:SS``, UTC+8; missing brand and profile values empty;
  ``click_sequence`` the ``^``-joined ids of the user's clicked ads strictly before the request, at most
  :data:`SEQUENCE_MAX`, oldest first);
* ``meta.json``: the config and the counts (rows per file, clicks, requests, missing values) and the AUC of the
  true click probability (the best any model can reach).

Line ends are ``\n``, or ``\r\n`` with ``crlf``. The files are a deterministic function of the config.

Generative model (``K`` categories): ads have a category (Zipf popularity over categories), a brand of that
category, a campaign, a customer, a price (lognormal) and a quality ``q_a ~ N(0, 0.3^2)``. Users have a profile,
an activity (Zipf), and a long-term category preference (Dirichlet(0.3)). Each user's *current interest* is two
categories drawn from the preference, redrawn at Poisson change points (every 1.5 days on average). Behaviours
(``pv`` 90%, ``cart`` / ``fav`` / ``buy`` the rest) come at uniform times, their category from the current
interest (80%) or the preference (20%). A request (user by activity, uniform time over the days, pid
``430548_1007`` or ``430539_1007``) shows 1 to ``max_per_request`` distinct ads, half of them from the current
interest's categories. The click logit of ad ``a`` at time ``T``::

    t = -4.0 + history_weight * share of a's category among the user's last 10 behaviours before T
             + brand_weight * [a's brand among their brands] + 0.6 * [a's category in the current interest]
             + q_a + 0.2 * [pid = 430548_1007]

so a ranker that reads the behaviour sequence (DIN) can beat one that does not.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Dict, List

import numpy as np

from tfrec.config_taobao import TaobaoSimConfig
from tfrec.simulation.files import atomic_writes

START_UNIX = 1494000000  # 2017-05-06 00:00:00 UTC+8: day 1 of the real log
PIDS = ("430548_1007", "430539_1007")
BTAG_NAMES = ("pv", "cart", "fav", "buy")
BTAG_P = (0.9, 0.04, 0.03, 0.03)
RECENT = 10  # behaviours the click model reads
SEQUENCE_MAX = 50  # click_sequence length of the joined layout
UTC_OFFSET_S = 8 * 3600
FILES = {"raw_sample": "raw_sample.csv", "ad_feature": "ad_feature.csv", "user_profile": "user_profile.csv",
         "behavior_log": "behavior_log.csv", "joined": "taobao_joined.csv"}
HEADERS = {
    "raw_sample": "user,time_stamp,adgroup_id,pid,nonclk,clk",
    "ad_feature": "adgroup_id,cate_id,campaign_id,customer,brand,price",
    "user_profile": "userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                    "occupation,new_user_class_level ",
    "behavior_log": "user,time_stamp,btag,cate,brand",
    "joined": "clk,time_stamp,userid,adgroup_id,pid,cate_id,campaign_id,customer,brand,price,cms_segid,"
              "cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,occupation,"
              "new_user_class_level,click_sequence",
}


def _ids(rng: np.random.Generator, n: int, low: int) -> np.ndarray:
    """``n`` distinct random integer ids from ``[low, low + 20 n)``."""
    return low + rng.choice(20 * n, size=n, replace=False)


def _world(cfg: TaobaoSimConfig, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    k = cfg.categories
    w: Dict[str, np.ndarray] = {}
    w["cat_ids"] = _ids(rng, k, 1000)
    cat_pop = 1.0 / (1.0 + rng.permutation(k)) ** 0.8
    w["brand_cat"] = rng.integers(0, k, cfg.brands)
    w["brand_ids"] = _ids(rng, cfg.brands, 100000)
    w["ad_ids"] = _ids(rng, cfg.ads, 1)
    w["ad_cat"] = rng.choice(k, cfg.ads, p=cat_pop / cat_pop.sum())
    brand_of = [np.flatnonzero(w["brand_cat"] == c) for c in range(k)]
    w["ad_brand"] = np.array([rng.choice(brand_of[c]) if len(brand_of[c]) else -1 for c in w["ad_cat"]])
    w["ad_brand"][rng.random(cfg.ads) < cfg.null_brand_rate] = -1
    w["ad_campaign"] = rng.integers(1, cfg.campaigns + 1, cfg.ads)
    w["ad_customer"] = rng.integers(1, cfg.customers + 1, cfg.ads)
    w["ad_price"] = np.round(np.exp(rng.normal(4.0, 1.0, cfg.ads)), 2)
    w["ad_quality"] = rng.normal(0.0, 0.3, cfg.ads)
    w["ad_pop"] = 1.0 / (1.0 + rng.permutation(cfg.ads)) ** 0.7
    w["user_ids"] = _ids(rng, cfg.users, 1)
    w["activity"] = 1.0 / (1.0 + rng.permutation(cfg.users)) ** 0.6
    w["pref"] = rng.dirichlet(np.full(k, 0.3), cfg.users)
    w["brand_of"] = brand_of  # type: ignore[assignment]
    u = cfg.users
    prof = np.stack([rng.integers(0, 98, u), rng.integers(0, 13, u), rng.integers(1, 3, u), rng.integers(0, 7, u),
                     rng.integers(1, 4, u), rng.integers(1, 4, u), rng.integers(0, 2, u), rng.integers(1, 5, u)], 1)
    w["profile"] = prof.astype(str).astype(object)
    for col in (4, 7):  # pvalue_level and new_user_class_level are the real file's columns with empty values
        w["profile"][rng.random(u) < cfg.empty_profile_rate, col] = ""
    w["has_profile"] = rng.random(u) >= cfg.no_profile_rate
    return w


def _user_timeline(cfg: TaobaoSimConfig, w, u: int, rng: np.random.Generator):
    """Interest change points and interests, and the behaviours (times sorted, category, brand, btag)."""
    span = cfg.days * 86400
    n_changes = rng.poisson(cfg.days / 1.5)
    changes = np.sort(rng.integers(0, span, n_changes)) + START_UNIX
    pref = w["pref"][u]
    interests = [rng.choice(cfg.categories, 2, replace=False, p=pref) for _ in range(n_changes + 1)]
    n_beh = rng.poisson(cfg.behaviors_per_day * cfg.days) + 1
    times = np.sort(rng.integers(0, span, n_beh)) + START_UNIX
    phase = np.searchsorted(changes, times, side="right")
    from_interest = rng.random(n_beh) < 0.8
    cats = np.array([interests[p][rng.integers(0, 2)] if fi else rng.choice(cfg.categories, p=pref)
                     for p, fi in zip(phase, from_interest)], dtype=np.int64)
    brands = np.array([rng.choice(w["brand_of"][c]) if len(w["brand_of"][c]) else -1 for c in cats], np.int64)
    brands[rng.random(n_beh) < cfg.null_brand_rate] = -1
    btags = rng.choice(len(BTAG_NAMES), n_beh, p=BTAG_P)
    return changes, interests, times, cats, brands, btags


def _sizes(cfg: TaobaoSimConfig, rng: np.random.Generator) -> np.ndarray:
    """Impressions per request, summing to exactly ``cfg.impressions``."""
    mean = (1 + cfg.max_per_request) / 2
    sizes = rng.integers(1, cfg.max_per_request + 1, int(cfg.impressions / mean * 1.2) + 10)
    while sizes.sum() < cfg.impressions:
        sizes = np.concatenate([sizes, rng.integers(1, cfg.max_per_request + 1, len(sizes))])
    n = int(np.searchsorted(np.cumsum(sizes), cfg.impressions)) + 1
    sizes = sizes[:n].copy()
    sizes[-1] -= int(sizes.sum()) - cfg.impressions
    return sizes


def simulate_rows(cfg: TaobaoSimConfig) -> Dict[str, object]:
    """The simulated world and impressions as arrays (no files): what :func:`simulate_taobao` writes."""
    rng = np.random.default_rng([cfg.seed, 0])
    w = _world(cfg, rng)
    sizes = _sizes(cfg, rng)
    users_of = rng.choice(cfg.users, len(sizes), p=w["activity"] / w["activity"].sum())
    ad_p = w["ad_pop"] / w["ad_pop"].sum()
    by_cat = [np.flatnonzero(w["ad_cat"] == c) for c in range(cfg.categories)]
    cols: Dict[str, List] = {k: [] for k in ("user", "time", "ad", "pid", "clk", "prob")}
    behaviors: Dict[int, tuple] = {}
    by_user = np.argsort(users_of, kind="stable")  # each user's requests, in request order
    starts = np.searchsorted(users_of[by_user], np.arange(cfg.users + 1))
    for u in range(cfg.users):
        urng = np.random.default_rng([cfg.seed, 1, u])
        changes, interests, b_times, b_cats, b_brands, b_tags = _user_timeline(cfg, w, u, urng)
        behaviors[u] = (b_times, b_cats, b_brands, b_tags)
        reqs = by_user[starts[u]:starts[u + 1]]
        if not len(reqs):
            continue
        times = np.sort(urng.integers(0, cfg.days * 86400, len(reqs))) + START_UNIX
        for t, k in zip(times, sizes[reqs]):
            interest = interests[int(np.searchsorted(changes, t, side="right"))]
            pool = np.concatenate([by_cat[c] for c in interest])
            n_int = min(len(pool), int(k) // 2 + int(urng.random() < 0.5))
            chosen = set(urng.choice(pool, n_int, replace=False).tolist()) if n_int else set()
            while len(chosen) < k:
                chosen.add(int(urng.choice(cfg.ads, p=ad_p)))
            ads = np.array(sorted(chosen))
            j = int(np.searchsorted(b_times, t, side="left"))
            recent_c, recent_b = b_cats[max(0, j - RECENT):j], b_brands[max(0, j - RECENT):j]
            share = np.array([np.mean(recent_c == c) if len(recent_c) else 0.0 for c in w["ad_cat"][ads]])
            brand_hit = np.isin(w["ad_brand"][ads], recent_b[recent_b >= 0])
            pid = int(urng.random() < 0.4)
            logit = (-4.0 + cfg.history_weight * share + cfg.brand_weight * brand_hit
                     + 0.6 * np.isin(w["ad_cat"][ads], interest) + w["ad_quality"][ads] + 0.2 * (pid == 0))
            prob = 1.0 / (1.0 + np.exp(-logit))
            cols["user"] += [u] * len(ads)
            cols["time"] += [int(t)] * len(ads)
            cols["ad"] += ads.tolist()
            cols["pid"] += [pid] * len(ads)
            cols["clk"] += (urng.random(len(ads)) < prob).astype(int).tolist()
            cols["prob"] += prob.tolist()
    rows = {k: np.asarray(v) for k, v in cols.items()}
    order = np.lexsort((rows["ad"], rows["user"], rows["time"]))
    return {"world": w, "rows": {k: v[order] for k, v in rows.items()}, "behaviors": behaviors}


def _brand(b: int, w, null: str) -> str:
    return null if b < 0 else str(w["brand_ids"][b])


def _local(ts: int) -> str:
    return datetime.datetime.fromtimestamp(int(ts) + UTC_OFFSET_S, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S")


def simulate_taobao(cfg: TaobaoSimConfig) -> Dict[str, object]:
    """Writes the files of the module docstring; returns the meta (also ``meta.json``)."""
    from tfrec.metrics.classification import auc

    cfg.validate()
    if not cfg.output:
        raise ValueError("taobao_sim.output is empty; set it to the output directory")
    os.makedirs(cfg.output, exist_ok=True)
    sim = simulate_rows(cfg)
    w, r = sim["world"], sim["rows"]
    eol = "\r\n" if cfg.crlf else "\n"
    kinds = []
    if cfg.layout in ("alibaba", "both"):
        kinds += ["raw_sample", "ad_feature", "user_profile"] + (["behavior_log"] if cfg.behavior_log else [])
    if cfg.layout in ("joined", "both"):
        kinds.append("joined")
    lines: Dict[str, List[str]] = {k: [HEADERS[k]] for k in kinds}
    uid, aid, cat_ids = w["user_ids"], w["ad_ids"], w["cat_ids"]
    if "raw_sample" in lines:
        lines["raw_sample"] += [f"{uid[u]},{t},{aid[a]},{PIDS[p]},{1 - c},{c}"
                                for u, t, a, p, c in zip(r["user"], r["time"], r["ad"], r["pid"], r["clk"])]
        lines["ad_feature"] += [f"{aid[a]},{cat_ids[w['ad_cat'][a]]},{w['ad_campaign'][a]},{w['ad_customer'][a]},"
                                f"{_brand(w['ad_brand'][a], w, 'NULL')},{w['ad_price'][a]:g}" for a in range(cfg.ads)]
        lines["user_profile"] += [f"{uid[u]}," + ",".join(w["profile"][u]) for u in range(cfg.users)
                                  if w["has_profile"][u]]
    if "behavior_log" in lines:
        beh = []
        for u, (times, cats, brands, tags) in sim["behaviors"].items():
            beh += [(int(t), uid[u], BTAG_NAMES[g], cat_ids[c], _brand(b, w, "NULL"))
                    for t, c, b, g in zip(times, cats, brands, tags)]
        lines["behavior_log"] += [f"{x[1]},{x[0]},{x[2]},{x[3]},{x[4]}" for x in sorted(beh)]
    if "joined" in lines:
        clicks: Dict[int, list] = {}
        for u, t, a, p, c in zip(r["user"], r["time"], r["ad"], r["pid"], r["clk"]):
            past = [x for x in clicks.get(u, []) if x[0] < t][-SEQUENCE_MAX:]
            prof = ",".join(w["profile"][u]) if w["has_profile"][u] else ",,,,,,,"
            lines["joined"].append(f"{c},{_local(t)},{uid[u]},{aid[a]},{PIDS[p]},{cat_ids[w['ad_cat'][a]]},"
                                   f"{w['ad_campaign'][a]},{w['ad_customer'][a]},{_brand(w['ad_brand'][a], w, '')},"
                                   f"{w['ad_price'][a]:g},{prof},{'^'.join(str(aid[x[1]]) for x in past)}")
            if c:
                clicks.setdefault(u, []).append((t, a))
    paths = [os.path.join(cfg.output, FILES[k]) for k in kinds]
    with atomic_writes(paths, "w", encoding="utf-8") as fs:
        for f, k in zip(fs, kinds):
            f.write(eol.join(lines[k]) + eol)
    requests = len({(u, t, p) for u, t, p in zip(r["user"].tolist(), r["time"].tolist(), r["pid"].tolist())})
    meta = {"config": dataclasses.asdict(cfg), "files": {k: FILES[k] for k in kinds},
            "rows": {k: len(v) - 1 for k, v in lines.items()}, "impressions": int(len(r["clk"])),
            "clicks": int(r["clk"].sum()), "click_rate": float(r["clk"].mean()), "requests": requests,
            "null_brand_ads": int((w["ad_brand"] < 0).sum()),
            "users_without_profile": int((~w["has_profile"]).sum()),
            "true_probability_auc": auc(r["clk"], r["prob"])}
    with atomic_writes([os.path.join(cfg.output, "meta.json")], "w", encoding="utf-8") as (f,):
        json.dump(meta, f, indent=2)
    return meta
