"""Margin InfoNCE (HCCP Algorithm 1) vs plain InfoNCE: forward + backward time on the same inputs.

Both functions use Algorithm 1's layout (``[B*K]`` slots, ``[B*K, 2K]`` repeated negatives, gather of the positive
rows), so the ratio shows what the margin itself costs: lines 2-4 (cos, margin logits, blend) and the gradient into
the norms. Each step is one ``tf.function``-compiled call computing the loss and its gradient (with respect to the
logits, and for the margin loss also ``u_norm`` and ``i_norm``, as in training). The two run in interleaved rounds
so machine noise hits both alike; the median step time of each is reported.
Usage: python bench/bench_infonce.py [--quick] [--shapes 1024x64,2048x128] [--rounds R] [--steps S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import print_json  # noqa: E402
from tfrec.losses.infonce import info_nce, margin_info_nce  # noqa: E402

MARGIN, TEMPERATURE, NEG_MIN = 0.9, 0.1, -1e9


def make_inputs(B: int, K: int, dim: int = 32, seed: int = 0):
    """Dot products, norms and role masks of B requests x K slots (10% positive, 30% hard, 50% easy, 10% unused)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(B, dim)).astype(np.float32) / np.sqrt(dim)
    items = rng.normal(size=(B, K, dim)).astype(np.float32) / np.sqrt(dim)
    logits = np.einsum("bd,bkd->bk", u, items)
    u_norm = np.repeat(np.linalg.norm(u, axis=1)[:, None], K, axis=1)
    i_norm = np.linalg.norm(items, axis=2)
    roles = rng.choice(4, size=(B, K), p=[0.1, 0.1, 0.3, 0.5])
    roles[:, 0] = 1
    flat = lambda a: tf.constant(a.reshape(-1))  # noqa: E731
    return {"logits": flat(logits), "u_norm": flat(u_norm), "i_norm": flat(i_norm), "p_mask": flat(roles == 1),
            "n_hard_mask": flat(roles == 2), "n_easy_mask": flat(roles == 3)}


def make_steps(B: int, K: int, beta: float = 0.5):
    beta_var = tf.Variable(beta, trainable=False)

    @tf.function
    def margin_step(logits, u_norm, i_norm, p_mask, n_hard_mask, n_easy_mask):
        with tf.GradientTape() as tape:
            tape.watch([logits, u_norm, i_norm])
            loss = margin_info_nce(logits, u_norm, i_norm, p_mask, n_hard_mask, n_easy_mask, B, K, MARGIN, beta_var,
                                   TEMPERATURE, NEG_MIN)
        return loss, tape.gradient(loss, [logits, u_norm, i_norm])

    @tf.function
    def plain_step(logits, u_norm, i_norm, p_mask, n_hard_mask, n_easy_mask):
        del u_norm, i_norm
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = info_nce(logits, p_mask, n_hard_mask, n_easy_mask, B, K, TEMPERATURE, NEG_MIN)
        return loss, tape.gradient(loss, [logits])

    return {"margin_info_nce": margin_step, "info_nce": plain_step}


def time_steps(step, inputs, steps: int) -> float:
    """Seconds per step over ``steps`` calls (waits for the results)."""
    start = time.perf_counter()
    for _ in range(steps):
        loss, grads = step(**inputs)
    _ = float(loss), [g.numpy() for g in grads]
    return (time.perf_counter() - start) / steps


def bench_shape(B: int, K: int, rounds: int, steps: int):
    inputs = make_inputs(B, K)
    fns = make_steps(B, K)
    for fn in fns.values():
        time_steps(fn, inputs, 2)  # trace and warm up
    times = {name: [] for name in fns}
    for r in range(rounds):
        names = list(fns) if r % 2 == 0 else list(fns)[::-1]  # alternate who goes first
        for name in names:
            times[name].append(time_steps(fns[name], inputs, steps))
    med = {name: statistics.median(v) for name, v in times.items()}
    return {"B": B, "K": K, "positives": int(tf.reduce_sum(tf.cast(inputs["p_mask"], tf.int32))),
            "median_ms_per_step": {n: 1e3 * t for n, t in med.items()},
            "ratio_margin_over_plain": med["margin_info_nce"] / med["info_nce"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repetitions (a smoke run)")
    ap.add_argument("--shapes", default=None, help="comma-separated BxK (default 1024x64,2048x128; quick: 256x32)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args(argv)
    shapes = args.shapes or ("256x32" if args.quick else "1024x64,2048x128")
    rounds = args.rounds or (3 if args.quick else 7)
    steps = args.steps or (3 if args.quick else 5)
    results = []
    for shape in shapes.split(","):
        B, K = (int(v) for v in shape.lower().split("x"))
        res = bench_shape(B, K, rounds, steps)
        results.append(res)
        print_json(f"forward+backward, B={B} K={K} ({rounds} interleaved rounds of {steps} steps, median)", res)
    for res in results:
        verdict = "ok" if res["ratio_margin_over_plain"] <= 1.3 else "ABOVE the 1.3x target"
        print(f"B={res['B']} K={res['K']}: margin_info_nce / info_nce = {res['ratio_margin_over_plain']:.2f}x "
              f"({verdict})")


if __name__ == "__main__":
    main()
