"""List-wise vs point-wise training throughput of the Three-Tower model on the same hybrid samples (HCCP Table 4).

HCCP organises its samples list-wise, one ``ExampleListWithContext`` per request, so a training step runs the user
tower once per request and the item / cross towers once per item: ``O(F_u(d/r) + F_i(d))`` against point-wise
``O(F_u(d) + F_i(d))`` (Table 4, "HCCP(Ours)" vs "HCCP(Point)"). Measured side by side in one run:

1. the cascade simulator's logs -> the hybrid-sample Beam pipeline (``pipelines.hybrid_samples``, DirectRunner;
   cached under ``$TFREC_BENCH_DIR``), the train split read with the training reader at ``train_list_size`` and
   held in memory (no file reading or parsing in the timed loop);
2. list-wise: ThreeTower (default size) train steps on ``[B, L]`` batches of B requests;
3. point-wise: the same model on the same samples flattened to one row per (request, item): each batch holds the
   valid items of the same B requests as ``[N, 1]`` lists, the context repeated per row, so the user tower runs
   per row;

both at variant ``base`` (Eq. 1's BCE on the impressions, the same objective in both layouts), and list-wise at
variant ``hccp`` (the whole Eq. 6, which needs lists) for reference. The layouts take turns in rounds so a change
in the machine's load falls on each alike. Prints samples/s (valid (request, item) pairs per second) and the
ratios.

Usage: python bench/bench_listwise_training.py [--requests 1500] [--batch 64] [--steps 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import DEFAULT_DIR, in_memory, print_json  # noqa: E402


def hybrid_dataset(requests: int, root: str = DEFAULT_DIR) -> str:
    """Simulated cascade logs -> hybrid samples (Beam), once per request count."""
    from pipelines.hybrid_samples import run
    from tfrec.config import CascadeConfig, HybridSamplesConfig
    from tfrec.simulation.cascade import simulate_cascade

    base = os.path.join(root, f"hccp_{requests}")
    out = os.path.join(base, "data")
    if os.path.exists(os.path.join(out, "stats.json")):
        return out
    logs = os.path.join(base, "logs")
    simulate_cascade(CascadeConfig(output=logs, requests=requests))
    run(HybridSamplesConfig(inputs=[os.path.join(logs, "requests.jsonl")], items=[os.path.join(logs, "items.jsonl")],
                            output=out, runner="DirectRunner"))
    return out


def flatten(features, labels):
    """One ``[B, L]`` list-wise batch -> the point-wise batch of its valid items, ``[N, 1]`` lists (numpy)."""
    from tfrec.models.preranking.towers import CONTEXT, HISTORY

    mask = labels["example_mask"].numpy().astype(bool)
    rows = np.nonzero(mask)[0]
    fx = {}
    for k in CONTEXT + HISTORY:
        fx[k] = features[k].numpy()[rows]
    for k in ("item_id", "category", "price"):
        fx[k] = features[k].numpy()[mask][:, None]
    fy = {}
    for k, v in labels.items():
        v = v.numpy()[mask][:, None]
        if k.endswith("_position"):
            v = np.where(v >= 0, 0, -1).astype(v.dtype)  # a one-item list: position 0 where the item has an order
        fy[k] = v
    return fx, fy


def train_function(variant: str, seed: int = 0):
    import tf_keras as keras

    from tfrec.models.preranking import ThreeTower

    keras.utils.set_random_seed(seed)
    model = ThreeTower(variant=variant)
    model(model.dummy_inputs(), training=False)
    model.compile(keras.optimizers.Adam(1e-3))
    return model.make_train_function()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1500, help="simulated requests (the train split is ~70%%)")
    ap.add_argument("--batch", type=int, default=64, help="requests per batch")
    ap.add_argument("--list-size", dest="list_size", type=int, default=48, help="train list size (padding)")
    ap.add_argument("--batches", type=int, default=8, help="distinct batches held in memory")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per layout per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import tensorflow as tf

    from tfrec.data import split_files
    from tfrec.listwise_data import make_listwise_dataset
    from tfrec.train_preranking import load_listwise_schema

    data = hybrid_dataset(args.requests)
    schema = load_listwise_schema(data)
    ds = make_listwise_dataset(split_files(data, "train"), schema, args.batch, args.list_size, training=True,
                               seed=0)
    lists = list(ds.take(args.batches))
    if not lists:
        raise SystemExit(f"the train split of {data} has fewer than {args.batch} requests; raise --requests")
    points = [flatten(x, y) for x, y in lists]
    samples = [int(y["example_mask"].numpy().sum()) for _, y in lists]
    per_step = float(np.mean(samples))
    setups = {
        "listwise_base": (train_function("base"), lists),
        "pointwise_base": (train_function("base"), [(
            {k: tf.constant(v) for k, v in x.items()}, {k: tf.constant(v) for k, v in y.items()}) for x, y in points]),
        "listwise_hccp": (train_function("hccp"), lists),
    }
    iters = {}
    for name, (fn, batches) in setups.items():
        iters[name] = iter(in_memory(batches))
        for _ in range(2):  # trace + warm up
            fn(iters[name])
    seconds = {name: 0.0 for name in setups}
    steps = {name: 0 for name in setups}
    per_round = []  # list-wise / point-wise (base) ratio of each round: the spread under a changing load
    for _ in range(args.rounds):
        this = {}
        for name, (fn, _) in setups.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = fn(iters[name])
            float(logs["loss"])  # wait for the last step
            this[name] = time.perf_counter() - start
            seconds[name] += this[name]
            steps[name] += args.steps
        per_round.append(this["pointwise_base"] / this["listwise_base"])
    rate = {name: steps[name] * per_step / seconds[name] for name in setups}
    print_json("listwise_vs_pointwise_training", {
        "requests_per_batch": args.batch, "list_size": args.list_size, "samples_per_batch": per_step,
        "items_per_request": per_step / args.batch,
        "samples_per_s": rate,
        "step_ms": {name: 1e3 * seconds[name] / steps[name] for name in setups},
        "ratio_listwise_over_pointwise_base": rate["listwise_base"] / rate["pointwise_base"],
        "ratio_listwise_hccp_over_pointwise_base": rate["listwise_hccp"] / rate["pointwise_base"],
        "ratio_listwise_over_pointwise_base_per_round": per_round,
        "load_average": os.getloadavg(),
    })


if __name__ == "__main__":
    main()
