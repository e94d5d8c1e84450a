"""Pre-ranking metrics (HCCP 4.1.2): hit@K, MAP@K, NDCG@K against hand-computed values and TF-Ranking's metrics,
the popularity-octile split, and the report on a tiny collected batch."""

import numpy as np
import pytest

from tfrec.evaluate_preranking import preranking_report
from tfrec.metrics.ranking import hit_at_k, map_at_k, ndcg_at_k, popularity_octiles, top_k_mask

SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.5, 0.3, 0.9, 0.2]])
REL = np.array([[True, False, True, False, False], [False, False, True, False, True]])


def test_top_k_stable_and_masked():
    s = np.array([[1.0, 1.0, 0.5, 2.0]])
    assert top_k_mask(s, 2).tolist() == [[True, False, False, True]]  # tie: the lower slot wins
    assert top_k_mask(s, 2, mask=np.array([[True, True, True, False]])).tolist() == [[True, True, False, False]]
    with pytest.raises(ValueError, match="k"):
        top_k_mask(s, 0)


def test_hit_at_k_by_hand():
    # row 0: top-2 = slots 0, 1 -> 1 of 2 positives; row 1: top-2 = slots 3, 1 -> 0 of 2
    assert hit_at_k(SCORES, REL, 2)["hit"] == pytest.approx((0.5 + 0.0) / 2)
    # row 1 top-3 = 3, 1, 2 -> 1 of 2; with |I_u| = 4 for row 0 (two positives never retrieved): 1/4
    r = hit_at_k(SCORES, REL, 3, num_relevant=np.array([4, 2]))
    assert r["hit"] == pytest.approx((2 / 4 + 1 / 2) / 2) and r["requests"] == 2
    # a request without positives leaves the mean
    rel = REL.copy()
    rel[1] = False
    assert hit_at_k(SCORES, rel, 2) == {"hit": 0.5, "requests": 1}
    # padding is never in the top-K
    mask = np.array([[False, True, True, True, True], [True] * 5])
    assert hit_at_k(SCORES, REL, 2, mask=mask)["hit"] == pytest.approx((1 / 1 + 0) / 2)
    with pytest.raises(ValueError, match="num_relevant"):
        hit_at_k(SCORES, REL, 2, num_relevant=np.array([1, 2]))


def test_map_and_ndcg_by_hand():
    # row 0 ranking: rel 1,0,1,0,0 -> AP@3 = (1/1 + 2/3) / min(3, 2) ; row 1 order 3,1,2,4,0: rel 0,0,1,1,0
    ap0 = (1 + 2 / 3) / 2
    ap1 = (1 / 3) / 2
    assert map_at_k(SCORES, REL, 3) == pytest.approx((ap0 + ap1) / 2)
    d = 1 / np.log2(np.arange(2, 7))
    nd0 = (d[0] + d[2]) / (d[0] + d[1])
    nd1 = d[2] / (d[0] + d[1])
    assert ndcg_at_k(SCORES, REL, 3) == pytest.approx((nd0 + nd1) / 2)
    assert ndcg_at_k(SCORES, REL, 5) == pytest.approx(((d[0] + d[2]) / (d[0] + d[1]) + (d[2] + d[3]) / (d[0] + d[1])) / 2)
    assert np.isnan(map_at_k(SCORES, np.zeros_like(REL), 3))


def test_agree_with_tensorflow_ranking_where_semantics_match():
    import tensorflow_ranking as tfr

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 12))
    rel = np.zeros((6, 12), bool)
    for b in range(6):  # |G| = K relevant items per list, the consistency setting (ranking's top-K)
        rel[b, rng.choice(12, 4, replace=False)] = True
    for k in (4, 8):
        g = rel if k == 4 else rel  # |G| = 4 <= K in both
        ndcg = tfr.keras.metrics.NDCGMetric(topn=k)
        ndcg.update_state(g.astype(np.float32), scores.astype(np.float32))
        assert ndcg_at_k(scores, g, k) == pytest.approx(float(ndcg.result()), rel=1e-5)
        mean_ap = tfr.keras.metrics.MeanAveragePrecisionMetric(topn=k)
        mean_ap.update_state(g.astype(np.float32), scores.astype(np.float32))
        assert map_at_k(scores, g, k) == pytest.approx(float(mean_ap.result()), rel=1e-5)
    # where |G| > K the normalisers differ: ours divides by min(K, |G|), TF-Ranking's by |G|
    mean_ap = tfr.keras.metrics.MeanAveragePrecisionMetric(topn=2)
    mean_ap.update_state(rel.astype(np.float32), scores.astype(np.float32))
    assert map_at_k(scores, rel, 2) == pytest.approx(float(mean_ap.result()) * 4 / 2, rel=1e-5)


def test_popularity_octiles():
    ids = np.array([["a", "a", "b", "c"], ["a", "b", "d", "e"]])
    oct_ = popularity_octiles(ids, groups=4)
    # a: 3 occurrences, b: 2, then c, d, e (1 each) by id; 5 items in 4 groups: the first group gets 2
    assert oct_ == {"a": 0, "b": 0, "c": 1, "d": 2, "e": 3}


def test_report_on_tiny_lists():
    B, L = 2, 6
    data = {
        "example_mask": np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], bool),
        "sample_type": np.array([[1, 1, 2, 3, 5, -1], [1, 2, 2, 3, 3, 5]]),
        "rank": np.array([[2, 1, 3, -1, -1, -1], [1, 2, 3, -1, -1, -1]]),
        "click": np.array([[1, 0, 0, 0, 0, -1], [0, 0, 0, 0, 0, 0]], np.float32),
        "purchase": np.array([[1, 0, 0, 0, 0, -1], [0, 0, 0, 0, 0, 0]], np.float32),
        "item_id": np.array([[b"a", b"b", b"c", b"d", b"e", b""], [b"a", b"f", b"g", b"h", b"i", b"j"]]),
        "all_scenario_clicks": np.array([[b"a", b"z"], [b"g", b""]]),
        "all_scenario_purchases": np.array([[b"", b""], [b"", b""]]),
        "score_click": np.array([[0.1, 0.9, 0.5, 0.2, 3.0, 0.0], [0.0, 0.3, 0.8, 0.1, 0.2, 5.0]]),
        "score_purchase": np.array([[0.9, 0.1, 0.5, 0.2, 0.0, 0.0], [0.0, 0.3, 0.8, 0.1, 0.2, 5.0]]),
    }
    r = preranking_report(data, hit_ks=(1, 2), consistency_ks=(1, 2), octile_k=2)
    # the N5 slot (score 3.0) is not a candidate: row 0 top-1 = b, top-2 = b, c
    assert r["ISH@1"] == 0.0 and r["ISH@2"] == 0.0 and r["ISPH@1"] == 1.0
    # ASH: row 0 {a, z} (z never retrieved) -> 0 hits in top-2; row 1 {g}: top-1 = g -> 1
    assert r["ASH@1"] == pytest.approx(0.5) and np.isnan(r["ASPH@1"])
    # MAP@1 vs ranking's top-1: row 0 item b (rank 1) is the top -> 1; row 1 item a is not -> 0
    assert r["MAP@1"] == pytest.approx(0.5) and r["NDCG@1"] == pytest.approx(0.5)
    # impressions: positive 0.1 against negatives 0.9 and 0.0 -> AUC 0.5
    assert r["AUC_click"] == pytest.approx(0.5) and len(r["octile_ISH@2"]) == 8
    assert r["requests"] == B and L == 6
