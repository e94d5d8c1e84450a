"""Tests of HCCP's per-request sample construction (``pipelines.hybrid_samples.samples``, section 3.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.hybrid_samples.samples import (arrange, build_list, chunk_rates, chunk_sample, diversity_labels,
                                              sample_pool, sample_uniform)
from tfrec.config import ConfigError, HybridSamplesConfig, load_config
from tfrec.features import HCCP, NO_ORDER, SAMPLE_N1, SAMPLE_N2, SAMPLE_N3, SAMPLE_N5

PAPER_RATES = [0.5, 0.125, 0.1, 0.05, 0.025, 0.01, 0.005]


def test_defaults_are_the_papers_rates():
    cfg = HybridSamplesConfig()
    assert cfg.chunk_rates == PAPER_RATES
    assert cfg.preranking_samples == 15 and cfg.pool_samples == 10


def test_chunk_rates_eq2_boundaries():
    # Eq. 2: s_1 if 1 <= r < N_1, ..., s_m if N_{m-1} <= r <= N^r.
    b = [3, 5]
    got = chunk_rates(np.arange(1, 9), b, [0.9, 0.5, 0.1])
    np.testing.assert_allclose(got, [0.9, 0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1])
    # configurable: other boundaries move the rates
    np.testing.assert_allclose(chunk_rates(np.arange(1, 5), [2], [1.0, 0.0]), [1.0, 0.0, 0.0, 0.0])


def test_chunk_sampling_rates_statistically():
    """Each unexposed item of chunk j is kept with probability s_j: 400 seeded draws over N^r = 1000 ranks, every
    chunk's kept share within 5 binomial standard deviations of its rate, and the per-draw count exact."""
    boundaries = [50, 100, 200, 400, 600, 800]
    ranks = np.arange(1, 1001)
    exposed = np.zeros(1000, bool)
    rng = np.random.default_rng(0)
    draws = 400
    kept = np.zeros(1000)
    chunk = np.searchsorted(boundaries, ranks, side="right")
    sizes = np.bincount(chunk)
    for _ in range(draws):
        keep = chunk_sample(ranks, exposed, boundaries, PAPER_RATES, rng)
        per_chunk = np.bincount(chunk[keep], minlength=7)
        for j, s in enumerate(PAPER_RATES):  # k_j = floor or ceil of s_j n_j
            assert math.floor(s * sizes[j]) <= per_chunk[j] <= math.ceil(s * sizes[j])
        kept += keep
    for j, s in enumerate(PAPER_RATES):
        trials = sizes[j] * draws
        share = kept[chunk == j].sum() / trials
        sd = math.sqrt(s * (1 - s) / trials)
        assert abs(share - s) < 5 * sd + 1e-12, (j, share, s)
    # within a chunk the draw is uniform: the first and the second half of chunk 4 (ranks 200..399) agree
    c = np.flatnonzero(chunk == 3)
    half = len(c) // 2
    a, b = kept[c[:half]].sum() / (half * draws), kept[c[half:]].sum() / ((len(c) - half) * draws)
    assert abs(a - b) < 5 * math.sqrt(2 * 0.05 * 0.95 / (half * draws))


def test_impressions_always_kept():
    ranks = np.arange(1, 301)
    exposed = np.zeros(300, bool)
    exposed[[0, 5, 150, 299]] = True
    rng = np.random.default_rng(1)
    for _ in range(50):
        keep = chunk_sample(ranks, exposed, [10, 100], [0.0, 0.0, 0.0], rng)
        np.testing.assert_array_equal(keep, exposed)  # rates 0: only the impressions
        keep = chunk_sample(ranks, exposed, [10, 100], [0.5, 0.1, 0.01], rng)
        assert keep[exposed].all()


def test_arrangement_hand_computed():
    # N^r = 6; sampled ranks 1, 2, 3, 5, 6; exposed 2, 3, 5; clicked 3.
    ranks = np.array([1, 2, 3, 5, 6])
    e = np.array([0, 1, 1, 1, 0])
    clk = np.array([0, 0, 1, 0, 0])
    rc, pos = arrange(ranks, e, clk, 6)
    # r^c = r - (e + l_clk) * N^r: 1, 2-6, 3-12, 5-6, 6
    np.testing.assert_array_equal(rc, [1, -4, -9, -1, 6])
    # ascending r^c: rank 3 (clicked), 2, 5 (unclicked impressions), 1, 6 (unexposed)
    np.testing.assert_array_equal(pos, [3, 1, 0, 2, 4])
    # local order over the exposure sequence, purchase on rank 5: r^t = 2-6, 3-6, 5-12
    rt, tpos = arrange(ranks[e == 1], e[e == 1], np.array([0, 0, 1]), 6)
    np.testing.assert_array_equal(rt, [-4, -3, -7])
    np.testing.assert_array_equal(tpos, [1, 2, 0])


def test_diversity_labels():
    np.testing.assert_array_equal(diversity_labels(["a", "b", "a", "c", "b"]), [1, 1, 0, 1, 0])
    assert diversity_labels([]).shape == (0,)


def _request():
    retrieved = [f"i{k}" for k in range(40)]  # pre-ranking order
    ranking = ["i3", "i0", "i1", "i5", "i2", "i4"]  # ranking order: i3 has r = 1
    return {"request_id": "r1", "day": 0, "scenario": "s0", "user": {"user_id": "u1", "user_segment": "g0"},
            "retrieved": retrieved, "ranking": ranking, "exposed": ["i1", "i5", "i0"], "clicks": ["i5"],
            "purchases": ["i5"], "all_scenario_clicks": ["i5", "i99"], "all_scenario_purchases": []}


def _table(n=200):
    # categories: i0 -> c0, i1 -> c1, i5 -> c1 (so i5 repeats a category on screen), others c2..
    cats = {0: "c0", 1: "c1", 5: "c1"}
    return {f"i{k}": (f"i{k}", cats.get(k, f"c{2 + k % 3}"), float(k)) for k in range(n)}


def test_build_list_hand_made_request():
    table = _table()
    pool = sorted(table)
    cols = build_list(_request(), pool, table, HCCP, [3], [1.0, 1.0], preranking_samples=5, pool_samples=4,
                      rng=np.random.default_rng(3), category_slot=1)
    types = cols["sample_type"]
    assert types == [SAMPLE_N1] * 3 + [SAMPLE_N2] * 3 + [SAMPLE_N3] * 5 + [SAMPLE_N5] * 4
    # R^c: clicked i5 (r=4), then unclicked impressions i0 (r=2), i1 (r=3), then unexposed i3, i2, i4 (r=1, 5, 6)
    assert cols["item"][:6] == ["i5", "i0", "i1", "i3", "i2", "i4"]
    assert cols["rank"][:6] == [4, 2, 3, 1, 5, 6]
    assert cols["rc"][:6] == [4 - 12, 2 - 6, 3 - 6, 1, 5, 6]
    assert cols["rc_position"][:6] == [0, 1, 2, 3, 4, 5]
    assert cols["display_position"][:6] == [1, 2, 0, -1, -1, -1]
    assert cols["exposure"][:6] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert cols["click"][:6] == [1.0, 0, 0, 0, 0, 0] and cols["purchase"][:6] == [1.0, 0, 0, 0, 0, 0]
    # diversity in display order i1 (c1, new), i5 (c1, repeat), i0 (c0, new)
    assert cols["diversity"][:6] == [0.0, 1.0, 1.0, 0, 0, 0]
    # r^t over the impressions: click and purchase put i5 first; diversity puts i0 (r=2), i1 (r=3) first
    assert cols["rt_click_position"][:6] == [0, 1, 2, -1, -1, -1]
    assert cols["rt_purchase"][:3] == [4 - 12, 2 - 6, 3 - 6]
    assert cols["rt_diversity_position"][:6] == [2, 0, 1, -1, -1, -1]
    assert cols["rt_diversity"][:3] == [4 - 6, 2 - 12, 3 - 12]
    # N3: from retrieved minus ranking, in pre-ranking order; N5: never retrieved
    n3, n5 = cols["item"][6:11], cols["item"][11:]
    assert set(n3) <= set(_request()["retrieved"]) - set(_request()["ranking"])
    assert cols["preranking_order"][6:11] == sorted(cols["preranking_order"][6:11])
    assert not set(n5) & set(_request()["retrieved"]) and len(set(n5)) == 4
    assert all(cols["rank"][i] == NO_ORDER and cols["rc_position"][i] == NO_ORDER for i in range(6, 15))
    assert cols["preranking_order"][11:] == [NO_ORDER] * 4
    assert all(cols[t][i] == 0.0 for t in HCCP.label_fields() for i in range(6, 15))


def test_build_list_deterministic_per_seed():
    table = _table()
    args = (_request(), sorted(table), table, HCCP, [2, 4], [0.5, 0.5, 0.5], 5, 4)
    a = build_list(*args, rng=np.random.default_rng([2024, 11]), category_slot=1)
    b = build_list(*args, rng=np.random.default_rng([2024, 11]), category_slot=1)
    assert a == b


def test_preranking_and_pool_sampling_sizes_and_disjointness():
    rng = np.random.default_rng(5)
    pool = [f"i{k}" for k in range(1000)]
    retrieved = set(pool[::3])
    for k in (0, 1, 10, 50):
        got = sample_pool(pool, retrieved, k, rng)
        assert len(got) == k and len(set(got)) == k and not set(got) & retrieved
    # fewer eligible than asked: all of them
    small = [f"i{k}" for k in range(12)]
    got = sample_pool(small, set(small[:5]), 10, rng)
    assert sorted(got) == sorted(small[5:])
    assert sample_pool(small, set(small), 3, rng) == []
    # uniform over the eligible items
    counts = {}
    for _ in range(2000):
        for x in sample_pool(small, set(small[:2]), 2, rng):
            counts[x] = counts.get(x, 0) + 1
    assert set(counts) == set(small[2:])
    assert max(counts.values()) / min(counts.values()) < 1.3
    idx = sample_uniform(list(range(30)), 15, rng)
    assert len(idx) == 15 and idx == sorted(set(idx))
    assert sample_uniform([1, 2], 15, rng) == [0, 1]


def test_config_validation():
    with pytest.raises(ConfigError, match="chunk_rates"):
        load_config(None, ["hybrid.chunk_rates=[0.5, 0.1]"])
    with pytest.raises(ConfigError, match="chunk_boundaries"):
        load_config(None, ["hybrid.chunk_boundaries=[10, 5, 20, 30, 40, 50]"])
    with pytest.raises(ConfigError, match="split_by"):
        load_config(None, ["hybrid.split_by=week"])
    cfg = load_config(None, ["hybrid.chunk_boundaries=[100]", "hybrid.chunk_rates=[1.0, 0.1]"])
    assert cfg.hybrid.chunk_boundaries == [100]


def test_wire_encoding_parses_to_the_protobuf_message():
    from tensorflow_serving.apis import input_pb2

    from pipelines.hybrid_samples.encode import EntryCache
    from pipelines.hybrid_samples.samples import to_example_list, to_example_list_reference

    table = {**_table(), "i7": ("i7", "c\u00e9", 1e-3)}  # a non-ASCII category, a small float
    cache = EntryCache(table, HCCP.item_categorical, HCCP.item_dense)
    for seed, purchases in ((0, ["i5"]), (1, [])):
        req = {**_request(), "purchases": purchases, "all_scenario_purchases": []}
        cols = build_list(req, sorted(table), table, HCCP, [3], [0.7, 0.4], 5, 4, np.random.default_rng(seed), 1)
        got = to_example_list(req, cols, table, HCCP, cache)
        want = to_example_list_reference(req, cols, table, HCCP)
        assert input_pb2.ExampleListWithContext.FromString(got) == want
        assert to_example_list(req, cols, table, HCCP) == got  # deterministic, with or without the cache
        ctx = input_pb2.ExampleListWithContext.FromString(got).context.features.feature
        assert list(ctx["all_scenario_purchases"].bytes_list.value) == []  # an empty list stays a bytes_list
        assert ctx["all_scenario_purchases"].WhichOneof("kind") == "bytes_list"
