"""The loss landscape around a trained model (KDD 2024, Lin et al., Fig. 1b), as the authors' script draws it.

The authors' ``bce_loss_landscape.py`` / ``combined_pair_loss_landscape.py`` (SkylerLinn/Understanding-the-Ranking-
Loss) move only the final fully connected layer: with ``theta*`` its trained weights and bias concatenated,
``delta = theta* / ||theta*||`` (the direction of the trained weights) and ``nu`` a random unit vector orthogonal to
``delta``, they evaluate at ``theta = theta* + a delta + b nu`` over a grid of ``a`` in ``linspace(-5, 10, 30)``
and ``b`` in ``linspace(-10, 5, 30)`` the BCE of Eq. 15 on one test batch, ``sum_i w_i BCE_i / N`` with
``w = beta_pos`` on positives and 1 on negatives (for both methods: the landscape is of the BCE, not of the loss
each method optimised).

tfrec does the same: the penultimate representation ``h`` (the model's ``embedding`` output) is computed once on
the first batch of the test split (``data.eval_batch_size`` rows, the cell's ``beta_pos`` weights), and the
logit of every grid point is ``h . theta[:-1] + theta[-1]`` in NumPy (float64), which is what the model's
``logit`` layer computes with those weights (``tests/tfrec/experiments/test_experiments_figures.py`` checks it against
the model). ``nu`` is drawn from a normal distribution seeded by the run's ``train.seed``. Models without a one-logit
``Dense`` head named ``logit`` (JRC's two-logit head) get no landscape.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, Optional, Sequence

import numpy as np

LANDSCAPE_CSV = "landscape.csv"
A_VALUES = tuple(np.linspace(-5.0, 10.0, 30).tolist())
B_VALUES = tuple(np.linspace(-10.0, 5.0, 30).tolist())


def directions(theta: np.ndarray, seed: int):
    """``(delta, nu)``: the unit vector along ``theta`` and a seeded random unit vector orthogonal to it."""
    theta = np.asarray(theta, np.float64).ravel()
    norm = np.linalg.norm(theta)
    if norm == 0:
        raise ValueError("the head's weights are all zero: no direction to move along")
    delta = theta / norm
    r = np.random.default_rng(seed).standard_normal(theta.size)
    nu = r - np.dot(delta, r) * delta
    return delta, nu / np.linalg.norm(nu)


def weighted_bce(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Eq. 15, ``sum_i w_i BCE(y_i, sigmoid(z_i)) / N`` from logits (stable: ``softplus(z) - y z``)."""
    z = np.asarray(z, np.float64)
    bce = np.logaddexp(0.0, z) - np.asarray(y, np.float64) * z
    return float(np.sum(np.asarray(w, np.float64) * bce) / z.size)


def landscape_grid(h: np.ndarray, y: np.ndarray, w: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                   seed: int, a_values: Sequence[float] = A_VALUES,
                   b_values: Sequence[float] = B_VALUES) -> np.ndarray:
    """The BCE at ``theta* + a delta + b nu`` for every ``(b, a)``: an array ``[len(b_values), len(a_values)]``.

    Args:
      h: ``[N, d]`` penultimate representation of the batch.
      y, w: ``[N]`` labels and weights.
      kernel, bias: the trained head (``[d, 1]`` and ``[1]``).
      seed: the seed of ``nu``.
    """
    h = np.asarray(h, np.float64)
    theta = np.concatenate([np.asarray(kernel, np.float64).ravel(), np.asarray(bias, np.float64).ravel()])
    if theta.size != h.shape[1] + 1:
        raise ValueError(f"a head of {theta.size - 1} inputs for a representation of {h.shape[1]}")
    delta, nu = directions(theta, seed)
    a = np.asarray(a_values, np.float64)
    y, w = np.asarray(y, np.float64)[:, None], np.asarray(w, np.float64)[:, None]
    out = np.empty((len(b_values), len(a)))
    for i, b in enumerate(b_values):
        t = theta[None, :] + a[:, None] * delta[None, :] + b * nu[None, :]  # one row per a
        z = h @ t[:, :-1].T + t[:, -1]  # [N, len(a)]
        out[i] = np.sum(w * (np.logaddexp(0.0, z) - y * z), axis=0) / h.shape[0]
    return out


def write_landscape(model, cfg, run_dir: str) -> Optional[str]:
    """Computes the landscape of a trained model (module docstring) and writes ``<run_dir>/landscape.csv``
    (``a, b, bce``); None (nothing written) for a model without a one-logit head."""
    from tfrec import data as data_lib
    from tfrec.families import get

    head = getattr(model, "head", None)
    if head is None or getattr(head, "name", "") != "logit" or int(head.units) != 1:
        return None
    schema = data_lib.load_schema(cfg.data.dir)
    batch = get("pointwise").resolve(cfg).data.eval_batch_size
    ds = data_lib.make_dataset(data_lib.split_files(cfg.data.dir, "test"), schema, batch, training=False,
                               cycle_length=1, beta_pos=cfg.data.beta_pos)
    first = next(iter(ds), None)
    if first is None:
        return None
    features, y, w = first
    h = model(features, training=False)["embedding"].numpy()
    grid = landscape_grid(h, y.numpy(), w.numpy(), head.kernel.numpy(), head.bias.numpy(), int(cfg.train.seed))
    path = os.path.join(run_dir, LANDSCAPE_CSV)
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "bce"])
        for i, b in enumerate(B_VALUES):
            for j, a in enumerate(A_VALUES):
                out.writerow([repr(float(a)), repr(float(b)), repr(float(grid[i, j]))])
    return path


def read_landscape(run_dir: str) -> Optional[Dict[str, np.ndarray]]:
    """``{"a", "b", "bce" [len(b), len(a)]}`` of a run's ``landscape.csv``; None without one."""
    path = os.path.join(run_dir, LANDSCAPE_CSV)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(float(r["a"]), float(r["b"]), float(r["bce"])) for r in csv.DictReader(f)]
    a = np.unique([r[0] for r in rows])
    b = np.unique([r[1] for r in rows])
    grid = np.full((len(b), len(a)), np.nan)
    for ra, rb, v in rows:
        grid[np.searchsorted(b, rb), np.searchsorted(a, ra)] = v
    return {"a": a, "b": b, "bce": grid}
