r"""A click -> conversion funnel simulator with noisy clicks, written in the AliExpress CSV layout.

PWiseR's premise (papers 002 / 003) is that click-only samples are noisier than conversions: some clicks are
accidental or come from bots and say nothing about the user's interest, while a conversion does. This simulator
makes that premise a knob (``noisy_click_share``) and writes the result in the exact AliExpress layout, so the
multi-task pipeline (``pipelines.multitask``) and models run on it unchanged.

Files
-----
``cfg.output`` (CSV)
  The header ``search_id,categorical_1,...,categorical_16,numerical_1,...,numerical_63,click,conversion`` then
  one exposure per line (``\n``-terminated). ``search_id`` is the session id (a session is
  :data:`SESSION_SIZE` exposures of one user); categorical values are decimal ids; numerical values are
  ``%.4g`` floats; ``click`` and ``conversion`` are ``0`` / ``1`` and a conversion always has a click.
``cfg.output + ".truth"`` (CSV, header ``p_click,p_conversion,noisy_click``)
  Per line of the data file: the true genuine-click propensity ``p_c``, the true conversion propensity of a
  genuine click ``p_v`` and ``1`` when the row's click is a noisy one.
``cfg.output + ".meta.json"``
  The configuration, the fitted intercepts, the realised click rate, conversion rate per click, noisy-click
  share (noisy clicks / all clicks), and the Bayes AUCs: ``truth_ctr_auc`` of
  ``P(click) = p_c + (1 - p_c) q`` over exposures, ``truth_cvr_auc`` of ``P(conversion | click) = p_c p_v /
  P(click)`` over the clicked rows and ``truth_ctcvr_auc`` of ``p_c p_v`` over exposures.

Generative model
----------------
Drawn once from ``default_rng([seed, 0])``: user vectors ``a_u ~ N(0, I_K)`` and item vectors ``b_i ~ N(0,
I_K)`` (:data:`LATENT_DIM` ``K``), user and item biases ``~ N(0, 0.5^2)``, and two ``K x K`` affinity matrices
``W_c = G_s + G_c`` and ``W_v = G_s + G_v`` sharing the part ``G_s`` (entries ``N(0, 1 / (2K))``), so the
click and conversion tasks are related but different (what multi-task models exploit). Per row (chunk ``c`` of
:data:`CHUNK_ROWS` rows from ``default_rng([seed, 1, c])``): a session's user ``u`` uniform, each exposure's item
``i`` from a Zipf(1.1) popularity law over the items, then::

    z_c = beta_c + signal * a_u' W_c b_i / sqrt(K) + bias_c[u] + bias_c[i]     p_c = sigmoid(z_c)
    z_v = beta_v + signal * a_u' W_v b_i / sqrt(K) + bias_v[i]                 p_v = sigmoid(z_v)
    genuine click g ~ Bernoulli(p_c);   conversion = g * Bernoulli(p_v)
    noisy click   e ~ Bernoulli(q) when g = 0 (independent of the features);   click = max(g, e)

``beta_c`` and ``beta_v`` are fitted by bisection on a calibration sample (``default_rng([seed, 2])``,
:data:`CALIBRATION_ROWS` exposures) so that ``mean(p_c) = click_rate`` and ``mean(p_v) = conversion_rate``;
``q = click_rate * s / ((1 - s) (1 - click_rate))`` with ``s = noisy_click_share``, so that noisy clicks make
``s`` of all clicks in expectation. Noisy clicks never convert.

Features (what a model sees): ``categorical_1`` user id, ``categorical_2`` item id, ``categorical_3`` the
user's segment (the nearest of 8 prototypes of ``a_u``), ``categorical_4`` the item's category (nearest of 16
prototypes of ``b_i``), ``categorical_5`` .. ``categorical_16`` pure-noise ids (uniform over 2 .. 50 values);
``numerical_1..K`` ``a_u`` plus ``N(0, 0.5^2)`` noise, ``numerical_K+1..2K`` ``b_i`` plus noise, the rest
``N(0, 1)`` noise. The output is a deterministic function of the config.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict

import numpy as np

from tfrec.config import SimulationConfig
from tfrec.features import ALIEXPRESS_CATEGORICAL, ALIEXPRESS_COLUMNS, ALIEXPRESS_DENSE
from tfrec.metrics.classification import auc
from tfrec.simulation.files import atomic_writes

CHUNK_ROWS = 50_000
CALIBRATION_ROWS = 50_000
LATENT_DIM = 4
SESSION_SIZE = 10
_USER_SEGMENTS = 8
_ITEM_CATEGORIES = 16
_FEATURE_NOISE = 0.5


@dataclasses.dataclass(frozen=True)
class FunnelResult:
    """What :func:`simulate_funnel` wrote and the realised statistics (also in the ``.meta.json`` file)."""

    output_path: str
    truth_path: str
    meta_path: str
    rows: int
    click_rate: float
    conversion_rate: float
    noisy_click_share: float
    truth_ctr_auc: float
    truth_cvr_auc: float
    truth_ctcvr_auc: float


@dataclasses.dataclass
class _World:
    users: np.ndarray
    items: np.ndarray
    user_bias: np.ndarray
    item_bias_c: np.ndarray
    item_bias_v: np.ndarray
    w_click: np.ndarray
    w_conv: np.ndarray
    segment: np.ndarray
    category: np.ndarray
    item_cdf: np.ndarray
    noise_vocab: np.ndarray
    signal: float
    beta_c: float = 0.0
    beta_v: float = 0.0


def _nearest(vectors: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    return np.argmin(((vectors[:, None, :] - prototypes[None]) ** 2).sum(-1), axis=1)


def _world(cfg: SimulationConfig) -> _World:
    f, k = cfg.funnel, LATENT_DIM
    rng = np.random.default_rng([cfg.seed, 0])
    users, items = rng.normal(size=(f.users, k)), rng.normal(size=(f.items, k))
    shared = rng.normal(scale=np.sqrt(0.5 / k), size=(k, k))
    w_click = shared + rng.normal(scale=np.sqrt(0.5 / k), size=(k, k))
    w_conv = shared + rng.normal(scale=np.sqrt(0.5 / k), size=(k, k))
    weights = np.arange(1, f.items + 1, dtype=np.float64) ** -1.1
    rng.shuffle(weights)
    return _World(users=users, items=items, user_bias=rng.normal(scale=0.5, size=f.users),
                  item_bias_c=rng.normal(scale=0.5, size=f.items), item_bias_v=rng.normal(scale=0.5, size=f.items),
                  w_click=w_click, w_conv=w_conv,
                  segment=_nearest(users, rng.normal(size=(_USER_SEGMENTS, k))),
                  category=_nearest(items, rng.normal(size=(_ITEM_CATEGORIES, k))),
                  item_cdf=np.cumsum(weights) / weights.sum(),
                  noise_vocab=rng.integers(2, 51, size=len(ALIEXPRESS_CATEGORICAL) - 4), signal=f.signal)


def _exposures(world: _World, rng: np.random.Generator, n: int, first_session: int):
    sessions = -(-n // SESSION_SIZE)
    session_users = rng.integers(0, len(world.users), size=sessions)
    session = np.repeat(np.arange(sessions), SESSION_SIZE)[:n]
    user = session_users[session]
    item = np.minimum(np.searchsorted(world.item_cdf, rng.random(n)), len(world.items) - 1)
    return session + first_session, user, item


def _logits(world: _World, user: np.ndarray, item: np.ndarray):
    a, b = world.users[user], world.items[item]
    scale = world.signal / np.sqrt(LATENT_DIM)
    z_c = scale * np.einsum("nk,kl,nl->n", a, world.w_click, b) + world.user_bias[user] + world.item_bias_c[item]
    z_v = scale * np.einsum("nk,kl,nl->n", a, world.w_conv, b) + world.item_bias_v[item]
    return z_c, z_v


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


def _fit_intercept(z: np.ndarray, target: float) -> float:
    """``beta`` with ``mean(sigmoid(beta + z)) = target`` (bisection; the mean is increasing in ``beta``)."""
    lo, hi = -40.0, 40.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if _sigmoid(mid + z).mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _format_chunk(world: _World, rng: np.random.Generator, search_id, user, item, click, conv) -> str:
    n, k = len(user), LATENT_DIM
    cats = [user, item, world.segment[user], world.category[item]]
    cats += [rng.integers(0, v, size=n) for v in world.noise_vocab]
    dense = np.empty((n, len(ALIEXPRESS_DENSE)))
    dense[:, :k] = world.users[user] + rng.normal(scale=_FEATURE_NOISE, size=(n, k))
    dense[:, k:2 * k] = world.items[item] + rng.normal(scale=_FEATURE_NOISE, size=(n, k))
    dense[:, 2 * k:] = rng.normal(size=(n, len(ALIEXPRESS_DENSE) - 2 * k))
    columns = [search_id.astype(str)] + [c.astype(str) for c in cats]
    columns += [np.char.mod("%.4g", dense[:, j]) for j in range(dense.shape[1])]
    columns += [click.astype(str), conv.astype(str)]
    lines = [",".join(fields) for fields in zip(*[c.tolist() for c in columns])]
    return "\n".join(lines) + "\n"


def simulate_funnel(cfg: SimulationConfig) -> FunnelResult:
    """Simulates ``cfg.rows`` exposures of the funnel (``cfg.funnel``) into ``cfg.output``; see the module
    docstring for the model and the files. Files are written to temporary names and renamed when complete.

    Raises:
      tfrec.config.ConfigError: an invalid config (``cfg.validate()``).
      ValueError: an empty ``cfg.output``.
    """
    cfg.validate()
    if not cfg.output:
        raise ValueError("`simulation.output` must be a non-empty path. Received: simulation.output=''")
    f = cfg.funnel
    world = _world(cfg)
    cal_rng = np.random.default_rng([cfg.seed, 2])
    _, cu, ci = _exposures(world, cal_rng, CALIBRATION_ROWS, 0)
    zc, zv = _logits(world, cu, ci)
    world.beta_c, world.beta_v = _fit_intercept(zc, f.click_rate), _fit_intercept(zv, f.conversion_rate)
    q = f.click_rate * f.noisy_click_share / ((1.0 - f.noisy_click_share) * (1.0 - f.click_rate))

    os.makedirs(os.path.dirname(os.path.abspath(cfg.output)) or ".", exist_ok=True)
    truth_path, meta_path = cfg.output + ".truth", cfg.output + ".meta.json"
    parts: Dict[str, list] = {"p_ctr": [], "p_cvr": [], "p_ctcvr": [], "click": [], "conv": [], "noisy": []}
    with atomic_writes([cfg.output, truth_path], "w", encoding="ascii") as (out, truth):
        out.write(",".join(ALIEXPRESS_COLUMNS) + "\n")
        truth.write("p_click,p_conversion,noisy_click\n")
        for c, start in enumerate(range(0, cfg.rows, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, cfg.rows - start)
            rng = np.random.default_rng([cfg.seed, 1, c])
            search_id, user, item = _exposures(world, rng, n, start // SESSION_SIZE)
            zc, zv = _logits(world, user, item)
            p_c, p_v = _sigmoid(world.beta_c + zc), _sigmoid(world.beta_v + zv)
            genuine = rng.random(n) < p_c
            conv = genuine & (rng.random(n) < p_v)
            noisy = ~genuine & (rng.random(n) < q)
            click = genuine | noisy
            out.write(_format_chunk(world, rng, search_id, user, item, click.astype(np.int64),
                                    conv.astype(np.int64)))
            truth.write("".join(f"{a:.6g},{b:.6g},{int(e)}\n" for a, b, e in zip(p_c, p_v, noisy)))
            p_click = p_c + (1.0 - p_c) * q
            for key, value in (("p_ctr", p_click), ("p_cvr", p_c * p_v / p_click), ("p_ctcvr", p_c * p_v),
                               ("click", click), ("conv", conv), ("noisy", noisy)):
                parts[key].append(value)

    a = {key: np.concatenate(v) for key, v in parts.items()}
    clicks, conversions, noisy = int(a["click"].sum()), int(a["conv"].sum()), int(a["noisy"].sum())
    clicked = a["click"]
    result = FunnelResult(
        output_path=cfg.output, truth_path=truth_path, meta_path=meta_path, rows=cfg.rows,
        click_rate=clicks / cfg.rows, conversion_rate=conversions / clicks if clicks else float("nan"),
        noisy_click_share=noisy / clicks if clicks else float("nan"),
        truth_ctr_auc=auc(a["click"], a["p_ctr"]),
        truth_cvr_auc=auc(a["conv"][clicked], a["p_cvr"][clicked]) if clicks else float("nan"),
        truth_ctcvr_auc=auc(a["conv"], a["p_ctcvr"]))
    meta = {"format": "aliexpress_csv", "config": dataclasses.asdict(cfg), "intercepts": {
        "click": world.beta_c, "conversion": world.beta_v}, "noisy_click_probability": q,
        **{k: v for k, v in dataclasses.asdict(result).items() if not k.endswith("_path")},
        "files": {"data": os.path.basename(cfg.output), "truth": os.path.basename(truth_path)}}
    with open(meta_path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    return result
