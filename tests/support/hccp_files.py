"""A tiny hybrid-sample (HCCP) dataset in the prepared layout, written without Beam, and its item table."""

from __future__ import annotations

import json
import os

import numpy as np

from tfrec.features import HCCP

ITEMS = 30
CATEGORIES = 5


def item_table(n: int = ITEMS):
    return [{"item_id": f"i{j}", "category": f"c{j % CATEGORIES}", "price": float(1 + 3 * j)} for j in range(n)]


def _bytes(*values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def _ints(*values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _floats(*values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def request_list(rng, r: int, items, n1: int = 3, n2: int = 2, n3: int = 2, n5: int = 2) -> bytes:
    """One serialized ``ExampleListWithContext``: n1 impressions, n2 N2, n3 N3, n5 N5 items (distinct)."""
    import tensorflow as tf
    from tensorflow_serving.apis import input_pb2

    picks = rng.choice(len(items), size=n1 + n2 + n3 + n5, replace=False)
    history = [items[j] for j in rng.choice(len(items), size=int(rng.integers(0, 4)), replace=False)]
    ctx = {"request_id": _bytes(f"r{r}"), "user_id": _bytes(f"u{r % 7}"), "user_segment": _bytes(f"s{r % 3}"),
           "scenario": _bytes("a" if r % 2 else "b"), "day": _ints(0), "num_retrieved": _ints(40),
           "num_ranked": _ints(n1 + n2), "num_exposed": _ints(n1),
           "all_scenario_clicks": _bytes(), "all_scenario_purchases": _bytes(),
           "click_history": _bytes(*[h["item_id"] for h in history]),
           "click_history_category": _bytes(*[h["category"] for h in history])}
    examples = []
    types = [1] * n1 + [2] * n2 + [3] * n3 + [5] * n5
    click = [float(rng.random() < 0.5) for _ in range(n1)]
    click[0] = 1.0
    for k, (j, st) in enumerate(zip(picks, types)):
        it = items[j]
        imp = st == 1
        c = click[k] if imp else 0.0
        f = {"item_id": _bytes(it["item_id"]), "category": _bytes(it["category"]), "price": _floats(it["price"]),
             "sample_type": _ints(st), "preranking_order": _ints(k if st != 5 else -1),
             "rank": _ints(k + 1 if st in (1, 2) else -1), "display_position": _ints(k if imp else -1),
             "rc": _ints(0), "rc_position": _ints(k if st in (1, 2) else -1),
             "exposure": _floats(1.0 if imp else 0.0)}
        for t in HCCP.tasks:
            label = c if t == "click" else (c * float(rng.random() < 0.5) if t == "purchase" else float(imp))
            f[t] = _floats(label)
            f[f"rt_{t}"] = _ints(0)
            f[f"rt_{t}_position"] = _ints(k if imp else -1)
        examples.append(tf.train.Example(features=tf.train.Features(feature=f)))
    context = tf.train.Example(features=tf.train.Features(feature=ctx))
    return input_pb2.ExampleListWithContext(context=context, examples=examples).SerializeToString()


def write_listwise_dataset(out_dir: str, requests=(32, 8, 8), seed: int = 0) -> str:
    """Writes train / valid / test shards, ``schema.json``, ``stats.json`` and ``items.jsonl``; returns the dir."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    items = item_table()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "schema.json"), "w") as f:
        json.dump(HCCP.to_json(), f)
    with open(os.path.join(out_dir, "items.jsonl"), "w") as f:
        f.write("".join(json.dumps(it) + "\n" for it in items))
    written, r = {}, 0
    for split, n in zip(("train", "valid", "test"), requests):
        with tf.io.TFRecordWriter(os.path.join(out_dir, f"{split}-00000-of-00001.tfrecord.gz"), options="GZIP") as w:
            for _ in range(n):
                w.write(request_list(rng, r, items, n5=2 if split == "train" else 6))
                r += 1
        written[split] = n
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump({"requests_written": written}, f)
    return out_dir


def simulate_and_prepare_cascade(root: str) -> str:
    """The experiments' tiny cascade (120 requests, 800 items) simulated under ``root/logs`` and turned into hybrid
    samples under ``root/data`` (DirectRunner, one shard); returns the data directory."""
    from pipelines.hybrid_samples import run as prepare_hybrid
    from tfrec.config import CascadeConfig, HybridSamplesConfig
    from tfrec.simulation.cascade import simulate_cascade

    logs = os.path.join(root, "logs")
    simulate_cascade(CascadeConfig(output=logs, requests=120, users=30, items=800, categories=8, retrieved=100,
                                   ranked=40, exposed_min=6, exposed_max=8, seed=3))
    out = os.path.join(root, "data")
    prepare_hybrid(HybridSamplesConfig(inputs=[os.path.join(logs, "requests.jsonl")],
                                       items=[os.path.join(logs, "items.jsonl")], output=out,
                                       chunk_boundaries=[5, 10, 20], chunk_rates=[0.5, 0.3, 0.2, 0.1], num_shards=1,
                                       runner="DirectRunner"))
    return out
