"""Latency of ``score_candidates`` for one request with 1000 candidates, in process.

A ThreeTower at its default size (hash bins 20000, embedding 16, 8 experts, towers of 64, output 32) is exported
with ``export.export_model`` (the real export: every signature, warmup records from the request below) and
reloaded with ``tf.saved_model.load``. On one serialized ``ExampleListWithContext`` (context: user, segment,
scenario, 20 click-history items; 1000 candidate items with category and price), measured side by side in one
run, the paths taking turns in rounds:

1. ``signature``:   ``loaded.signatures["score_candidates"](lists=...)`` (parse + three towers + scores);
2. ``keras``:       the Keras model's ``score(context, items)`` called eagerly on the already parsed request;
3. ``keras_parse``: the same Keras path with the parse (``ServingFunctions.score_candidates`` eagerly);
4. ``keras_function``: the Keras model's ``score`` inside a ``tf.function`` (traced once) on the parsed request.

Prints p50 / p99 (ms) of each and the ratios to the signature, with the machine's load average. Checks that the
signature and the Keras model give the same scores (within 1e-6) before timing.

Usage: python bench/bench_score_candidates.py [--candidates 1000] [--iters 200] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import print_json  # noqa: E402


def request(candidates: int, pool: int = 5000, history: int = 20, seed: int = 0) -> bytes:
    """One serialized ``ExampleListWithContext`` with ``candidates`` items."""
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    rng = np.random.default_rng(seed)

    def b(*values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    ids = rng.choice(pool, size=candidates + history, replace=False)
    hist = [f"i{j}" for j in ids[candidates:]]
    context = tf.train.Example(features=tf.train.Features(feature={
        "user_id": b("u17"), "user_segment": b("s2"), "scenario": b("a"), "click_history": b(*hist),
        "click_history_category": b(*[f"c{int(h[1:]) % 20}" for h in hist])}))
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "item_id": b(f"i{j}"), "category": b(f"c{j % 20}"),
        "price": tf.train.Feature(float_list=tf.train.FloatList(value=[float(1 + j % 997)]))}))
        for j in ids[:candidates]]
    return input_pb2.ExampleListWithContext(context=context, examples=examples).SerializeToString()


def percentiles(calls, iters: int, rounds: int):
    for fn in calls.values():
        for _ in range(5):
            fn()
    lat = {k: [] for k in calls}
    per = max(1, iters // rounds)
    for _ in range(rounds):
        for name, fn in calls.items():
            for _ in range(per):
                t = time.perf_counter()
                fn()
                lat[name].append(time.perf_counter() - t)
    return {k: {"p50_ms": float(np.percentile(np.array(v) * 1e3, 50)),
                "p99_ms": float(np.percentile(np.array(v) * 1e3, 99)), "calls": len(v)} for k, v in lat.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=200, help="timed calls per path")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()

    import tensorflow as tf
    import tf_keras as keras

    from export import export_model
    from tfrec.models.preranking import ThreeTower

    keras.utils.set_random_seed(0)
    model = ThreeTower()
    model(model.dummy_inputs(), training=False)
    rng = np.random.default_rng(0)  # off the initial values, so the scores spread
    model.set_weights([rng.normal(scale=0.2, size=w.shape).astype(w.dtype) for w in model.get_weights()])
    serialized = request(args.candidates)
    serving = model.serving_functions()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(model, os.path.join(tmp, "hccp"), examples=[serialized], model_name="hccp").path
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["score_candidates"]
        lists = tf.constant([serialized])
        context, items, _ = serving.parse_lists(lists)
        scored = tf.function(lambda c, i: model.score(c, i, training=False), autograph=False)
        got = signature(lists=lists)
        want = model.score(context, items, training=False)
        diff = float(np.max(np.abs(got["click"].numpy() - want["click"].numpy())))
        if got["click"].shape != (1, args.candidates) or diff > 1e-6:
            raise SystemExit(f"the signature and the Keras model disagree: shape {got['click'].shape}, diff {diff}")
        calls = {
            "signature": lambda: signature(lists=lists)["click"].numpy(),
            "keras": lambda: model.score(context, items, training=False)["click"].numpy(),
            "keras_parse": lambda: serving.score_candidates(lists)["click"].numpy(),
            "keras_function": lambda: scored(context, items)["click"].numpy(),
        }
        result = percentiles(calls, args.iters, args.rounds)
    base = result["signature"]["p50_ms"]
    print_json("score_candidates_latency", {
        "candidates": args.candidates, "max_abs_diff_signature_vs_keras": diff, "latency": result,
        "p50_ratio_to_signature": {k: v["p50_ms"] / base for k, v in result.items()},
        "load_average": os.getloadavg(),
    })


if __name__ == "__main__":
    main()
