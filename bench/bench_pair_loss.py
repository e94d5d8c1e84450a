"""Cost of the in-batch RankNet term (Combined-Pair, KDD 2024 Eq. 8-9): DCN V2 train step and pair term alone.

(a) DCN V2 in the BARS setting (embedding 10, 3 full-rank cross layers, DNN [500, 500, 500], dropout 0.1,
    embedding L2 1e-5, Adam 1e-3 with gradient-norm clip 10) on synthetic Criteo-shaped batches of 4096 rows with
    25% positives (in memory, so no input cost): the full compiled train step with ``weighted_bce``, with
    ``combined_pair`` (chunked RankNet with a custom gradient) and with a naive Combined-Pair (all pairs at once,
    autodiff). The variants alternate step by step (a round is one step of each, in a shuffled order) in one
    process, so machine noise hits all alike; the main ratio is the median over rounds of the per-round time
    ratios (the ratios of the lower quartiles and of the minimums are printed beside it).
(b) The pair term alone (loss and its gradient with respect to the logits) at batch 65536 with 25% positives:
    16384 x 49152 pairs, whose float32 matrix alone is 3.2 GB. Each variant runs in a fresh subprocess: one
    reset of the peak resident memory (``/proc/self/clear_refs``) after building the inputs, one warm-up call
    (tracing), then the timed calls; it reports the best time and the peak resident memory (VmHWM) over all the
    calls minus the resident memory before them. The chunked variant also runs at the naive variant's batch.
    The naive variant runs at a smaller batch (``--naive-batch``): at 65536 it needs several copies of the
    3.2 GB matrix (more memory than the shared test machines can spare).

Usage: python bench/bench_pair_loss.py [--quick] [--rounds R] [--steps S] [--vocab V]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    """Resets the process's peak resident memory (VmHWM; Linux >= 4.0). ``ru_maxrss`` cannot be reset and, after
    ``fork`` + ``exec``, even includes the parent's memory, so the children report VmHWM instead."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# (a) DCN V2 train step


def _naive_combined_pair(alpha: float = 0.5):
    """Combined-Pair with the whole N+ x N- matrix at once and autodiff (the reference, not for training)."""
    import tensorflow as tf

    from tfrec.losses.base import Loss, logits_of
    from tfrec.losses.pointwise import weighted_bce

    class NaiveCombinedPair(Loss):
        components = ("bce", "rank_net")

        def compute_terms(self, y_true, y_pred, sample_weight=None):
            logits = logits_of(y_pred)
            labels = tf.reshape(tf.cast(y_true, logits.dtype), [-1])
            bce = weighted_bce(labels, logits, sample_weight)
            pos = tf.boolean_mask(logits, tf.equal(labels, 1.0))
            neg = tf.boolean_mask(logits, tf.equal(labels, 0.0))
            pairs = tf.nn.softplus(neg[tf.newaxis, :] - pos[:, tf.newaxis])
            rank = tf.math.divide_no_nan(tf.reduce_sum(pairs), tf.cast(tf.size(pairs), logits.dtype))
            return alpha * bce + (1.0 - alpha) * rank, {"bce": bce, "rank_net": rank}

    return NaiveCombinedPair(name="naive_combined_pair")


def _synthetic_batches(n_batches: int, batch: int, vocab: int, seed: int = 0):
    import tensorflow as tf

    from tfrec.features import CRITEO

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        feats = {}
        for d in CRITEO.dense:
            v = rng.integers(0, 1000, size=batch).astype(np.float32)
            v[rng.random(batch) < 0.2] = np.nan  # missing
            feats[d] = tf.constant(v)
        for c in CRITEO.categorical:
            ids = np.minimum(rng.zipf(1.3, size=batch) - 1, vocab + 9)  # ids >= vocab are out of vocabulary
            feats[c] = tf.constant(np.array([f"{i:08x}" for i in ids]))
        y = np.zeros(batch, np.float32)
        y[rng.permutation(batch)[: batch // 4]] = 1.0  # exactly 25% positives
        w = np.where(y == 1, 0.5, 1.0).astype(np.float32)
        out.append((feats, tf.constant(y), tf.constant(w)))
    return out


def _dcn_v2(vocab: int, seed: int):
    import tf_keras as keras

    from tfrec.features import CRITEO
    from tfrec.models import DCNv2

    keras.utils.set_random_seed(seed)
    vocabularies = {c: [f"{i:08x}" for i in range(vocab)] for c in CRITEO.categorical}
    transform = {"kind": "log_minmax", "scale": {d: 7.0 for d in CRITEO.dense}}
    return DCNv2(CRITEO.dense, CRITEO.categorical, vocabularies, transform, embedding_dim=10, embedding_l2=1e-5,
                 structure="parallel", num_cross_layers=3, dnn_hidden_units=(500, 500, 500), dropout=0.1)


def bench_train_step(batch: int, vocab: int, rounds: int, steps: int) -> dict:
    import tf_keras as keras

    from bench.common import in_memory
    from tfrec import losses

    batches = _synthetic_batches(4, batch, vocab)
    variants = {"weighted_bce": losses.get("weighted_bce"), "combined_pair": losses.get("combined_pair"),
                "naive_combined_pair": _naive_combined_pair()}
    runners = {}
    for name, loss in variants.items():
        model = _dcn_v2(vocab, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss=loss)
        step = model.make_train_function()
        data = iter(in_memory(batches))

        def run(n, step=step, data=data):
            for _ in range(n):
                logs = step(data)
            float(logs["loss"])  # wait for the last step

        runners[name] = run
    for run in runners.values():
        run(2)  # trace and warm up
    times = {name: [] for name in runners}
    order = list(runners)
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)  # no variant always runs first (or right after a given other one)
        for name in order:
            start = time.perf_counter()
            runners[name](steps)
            times[name].append((time.perf_counter() - start) / steps)
    base = times["weighted_bce"]

    def q25(v):
        return statistics.quantiles(v, n=4)[0] if len(v) > 1 else v[0]

    return {"ms_per_step_median": {k: 1e3 * statistics.median(v) for k, v in times.items()},
            "ms_per_step_q25": {k: 1e3 * q25(v) for k, v in times.items()},
            "ms_per_step_min": {k: 1e3 * min(v) for k, v in times.items()},
            # per round, the variant's time over weighted_bce's time in the same round; the median of those
            "ratio_to_bce_median": {k: statistics.median(t / b for t, b in zip(v, base)) for k, v in times.items()},
            "ratio_to_bce_of_q25": {k: q25(v) / q25(base) for k, v in times.items()},
            "ratio_to_bce_of_min": {k: min(v) / min(base) for k, v in times.items()},
            "rounds": rounds, "steps_per_round": steps, "batch": batch}


# ---------------------------------------------------------------------------------------------------------------
# (b) the pair term alone, one variant per subprocess


def pair_term_child(variant: str, batch: int, reps: int, max_pairs_per_chunk: int) -> dict:
    import tensorflow as tf

    from tfrec.losses.pairwise import rank_net

    rng = np.random.default_rng(0)
    y = np.zeros(batch, np.float32)
    y[rng.permutation(batch)[: batch // 4]] = 1.0
    labels = tf.constant(y)
    logits = tf.constant(rng.normal(size=batch).astype(np.float32))

    if variant == "chunked":
        def loss_fn(z):
            return rank_net(labels, z, max_pairs_per_chunk)
    elif variant == "naive":
        def loss_fn(z):
            pos = tf.boolean_mask(z, tf.equal(labels, 1.0))
            neg = tf.boolean_mask(z, tf.equal(labels, 0.0))
            return tf.reduce_mean(tf.nn.softplus(neg[tf.newaxis, :] - pos[:, tf.newaxis]))
    else:
        raise ValueError(f"unknown variant {variant!r}")

    @tf.function
    def loss_and_grad(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = loss_fn(z)
        return loss, tape.gradient(loss, z)

    # The peak covers every call, the first (tracing, graph optimisation) included: freed blocks that the
    # allocator keeps would otherwise hide the first call's peak from later calls.
    reset = _reset_peak_rss()
    rss_before = _status_mb("VmRSS")
    warm = loss_and_grad(logits)
    float(warm[0])
    del warm
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        loss, grad = loss_and_grad(logits)
        loss, grad = float(loss), grad.numpy()
        times.append(time.perf_counter() - start)
    n_pos = int(y.sum())
    return {"variant": variant, "batch": batch, "pairs": n_pos * (batch - n_pos),
            "max_pairs_per_chunk": max_pairs_per_chunk if variant == "chunked" else None,
            "seconds_min": min(times), "seconds_median": statistics.median(times),
            "peak_rss_mb": _status_mb("VmHWM"), "rss_before_mb": rss_before,
            "peak_minus_before_mb": _status_mb("VmHWM") - rss_before, "peak_was_reset": reset,
            "pair_matrix_float32_mb": n_pos * (batch - n_pos) * 4 / 2 ** 20,
            "loss": loss, "grad_abs_sum": float(np.abs(grad).sum()), "grad_finite": bool(np.isfinite(grad).all())}


def run_child(variant: str, batch: int, reps: int, max_pairs_per_chunk: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--child-batch", str(batch),
           "--child-reps", str(reps), "--max-pairs-per-chunk", str(max_pairs_per_chunk)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"variant": variant, "batch": batch, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    from tfrec.losses.pairwise import DEFAULT_MAX_PAIRS_PER_CHUNK

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps, smaller naive batch")
    ap.add_argument("--batch", type=int, default=4096, help="(a) training batch size")
    ap.add_argument("--vocab", type=int, default=10_000, help="(a) tokens per categorical field")
    ap.add_argument("--rounds", type=int, default=None, help="(a) alternating rounds (default 40, quick 8)")
    ap.add_argument("--steps", type=int, default=None, help="(a) train steps per variant and round (default 1)")
    ap.add_argument("--pair-batch", type=int, default=65536, help="(b) batch of the pair-term measurement")
    ap.add_argument("--naive-batch", type=int, default=None, help="(b) batch of the naive variant "
                    "(default 16384, quick 8192)")
    ap.add_argument("--max-pairs-per-chunk", type=int, default=DEFAULT_MAX_PAIRS_PER_CHUNK)
    ap.add_argument("--skip-train-step", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-batch", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-reps", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(pair_term_child(args.child, args.child_batch, args.child_reps, args.max_pairs_per_chunk)))
        return

    from bench.common import print_json

    rounds = args.rounds or (8 if args.quick else 40)
    steps = args.steps or 1
    naive_batch = args.naive_batch or (8192 if args.quick else 16384)
    reps = 1 if args.quick else 3

    if not args.skip_train_step:
        res = bench_train_step(args.batch, args.vocab, rounds, steps)
        print_json(f"(a) DCN V2 train step at batch {args.batch}, 25% positives", res)
        r = res["ratio_to_bce_median"]
        q, m = res["ratio_to_bce_of_q25"], res["ratio_to_bce_of_min"]
        for name in ("combined_pair", "naive_combined_pair"):
            print(f"{name} / weighted_bce = {r[name]:.3f}x (median of per-round ratios; lower quartiles "
                  f"{q[name]:.3f}x, minimums {m[name]:.3f}x){' target <= 1.05' if name == 'combined_pair' else ''}")

    rows = [run_child("chunked", args.pair_batch, reps, args.max_pairs_per_chunk),
            run_child("chunked", naive_batch, reps, args.max_pairs_per_chunk),
            run_child("naive", naive_batch, reps, args.max_pairs_per_chunk)]
    print_json(f"(b) RankNet loss + gradient alone (25% positives), one subprocess per row", rows)
    for row in rows:
        if "error" in row:
            print(f"{row['variant']} at batch {row['batch']}: failed: {row['error']}")
            continue
        print(f"{row['variant']:>7} batch {row['batch']:>6}: {row['pairs'] / 1e6:8.1f} M pairs, "
              f"{row['seconds_min']:7.3f} s, peak RSS - RSS before = {row['peak_minus_before_mb']:8.1f} MB "
              f"(pair matrix would be {row['pair_matrix_float32_mb']:8.1f} MB)")


if __name__ == "__main__":
    main()
