"""Serializing HCCP example lists: the wire encoder of ``pipelines.hybrid_samples.encode`` against the protobuf
classes (``tf.train.Example`` maps filled through the Python API, ``SerializeToString(deterministic=True)``),
side by side on the same lists.

Simulates a small cascade log, builds each request's list once (full lists, as the valid and test splits write
them, and sampled lists, as train), then times both serializers over the same lists in alternating rounds and
checks that their outputs parse to equal messages.

Usage: python bench/bench_hybrid_encode.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from pipelines.hybrid_samples.encode import EntryCache  # noqa: E402
from pipelines.hybrid_samples.samples import build_list, to_example_list, to_example_list_reference  # noqa: E402
from pipelines.hybrid_samples.validate import parse_item, parse_request  # noqa: E402
from tfrec.config import CascadeConfig, HybridSamplesConfig  # noqa: E402
from tfrec.features import HCCP  # noqa: E402
from tfrec.simulation.cascade import simulate_cascade  # noqa: E402


def with_protobuf(req, cols, items, schema) -> bytes:
    return to_example_list_reference(req, cols, items, schema).SerializeToString(deterministic=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from tensorflow_serving.apis import input_pb2

    with tempfile.TemporaryDirectory() as d:
        simulate_cascade(CascadeConfig(output=d, requests=args.requests))
        items = {}
        with open(os.path.join(d, "items.jsonl"), "rb") as f:
            for line in f:
                k, v = parse_item(line.rstrip(b"\n"), HCCP.item_categorical, HCCP.item_dense)
                items[k] = v
        with open(os.path.join(d, "requests.jsonl"), "rb") as f:
            reqs = [parse_request(line.rstrip(b"\n"), ("user_id", "user_segment"), items) for line in f]
    pool, hcfg = sorted(items), HybridSamplesConfig()
    for kind, rates, n3 in (("full (valid/test)", [1.0] * 7, 10 ** 9), ("sampled (train)", hcfg.chunk_rates, 15)):
        lists = [build_list(r, pool, items, HCCP, hcfg.chunk_boundaries, rates, n3, 10, np.random.default_rng(i), 1)
                 for i, r in enumerate(reqs)]
        n_items = sum(len(c["item"]) for c in lists)
        cache = EntryCache(items, HCCP.item_categorical, HCCP.item_dense)
        times = {"protobuf": [], "wire": []}
        for _ in range(args.rounds):
            for name in ("protobuf", "wire"):
                t = time.perf_counter()
                if name == "protobuf":
                    out = [with_protobuf(r, c, items, HCCP) for r, c in zip(reqs, lists)]
                else:
                    out_w = [to_example_list(r, c, items, HCCP, cache) for r, c in zip(reqs, lists)]
                times[name].append(time.perf_counter() - t)
        parse = input_pb2.ExampleListWithContext.FromString
        assert all(parse(a) == parse(b) for a, b in zip(out, out_w))
        p, w = statistics.median(times["protobuf"]), statistics.median(times["wire"])
        print(f"{kind}: {len(reqs)} lists, {n_items / len(reqs):.0f} items per list; protobuf classes "
              f"{1e6 * p / n_items:.1f} us/item, wire encoder {1e6 * w / n_items:.1f} us/item; ratio {p / w:.1f}x")


if __name__ == "__main__":
    main()
