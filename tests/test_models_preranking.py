"""HCCP Three-Tower model: the N4 in-batch mask and sampling rate, every loss component against a NumPy oracle
(Eq. 1, 3, 4, 5 and 4.1.4's InfoNCE, with N4), Eq. 6's total, the variants' switches, config round trip, fit
under 2 replicas, save / reload."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec.devices import make_strategy
from tfrec.hccp_variants import VARIANTS
from tfrec.models.preranking import ThreeTower
from tfrec.models.preranking import negatives

TASKS = ("click", "purchase")
SMALL = dict(tasks=TASKS, task_weights=(0.98, 0.2), hash_bins=64, embedding_dim=4, num_experts=2,
             expert_units=(8,), item_units=(8,), cross_units=(4,), output_dim=4)


def _lse(x):
    x = np.asarray(x, np.float64)
    return x.max() + np.log(np.exp(x - x.max()).sum())


def tiny_batch(B=4, L=7, seed=0):
    """Features and labels of B requests with L slots: 3 impressions, 1 N2, 1 N3, 1 N5, 1 padded slot;
    item ids drawn from a small pool so that requests share items (the N4 mask must catch them)."""
    rng = np.random.default_rng(seed)
    st = np.tile(np.array([1, 1, 1, 2, 3, 5, -1]), (B, 1))
    mask = st > 0
    ids = np.array([[f"i{rng.integers(0, 12)}" for _ in range(L)] for _ in range(B)])
    for b in range(B):  # distinct ids within a request
        ids[b] = [f"i{b}_{k}" if k % 2 else ids[b, k] for k in range(L)]
        while len(set(ids[b])) < L:
            ids[b] = [f"i{rng.integers(0, 40)}" for _ in range(L)]
    x = {"user_id": np.array([f"u{b}" for b in range(B)]), "user_segment": np.array(["s0", "s1"] * (B // 2)),
         "scenario": np.array(["a", "b"] * (B // 2)),
         "click_history": np.array([["i1", ""], ["i2", "i3"]] * (B // 2)),
         "click_history_category": np.array([["c1", ""], ["c2", "c1"]] * (B // 2)),
         "item_id": ids, "category": np.array([[f"c{rng.integers(0, 3)}" for _ in range(L)] for _ in range(B)]),
         "price": rng.uniform(1, 50, size=(B, L)).astype(np.float32)}
    click = np.where(st == 1, rng.integers(0, 2, size=(B, L)), 0).astype(np.float32)
    click[:, 0] = 1.0
    purchase = click * rng.integers(0, 2, size=(B, L))
    y = {"sample_type": st, "example_mask": mask, "exposure": (st == 1).astype(np.float32),
         "click": np.where(mask, click, -1.0).astype(np.float32),
         "purchase": np.where(mask, purchase, -1.0).astype(np.float32)}
    rc = np.full((B, L), -1)
    rt = {t: np.full((B, L), -1) for t in TASKS}
    for b in range(B):
        rc[b, :4] = rng.permutation(4)
        for t in TASKS:
            rt[t][b, :3] = rng.permutation(3)
    y["rc_position"] = rc
    y["rank"] = np.where(st <= 2, np.tile(np.arange(1, L + 1), (B, 1)), -1)  # ranking orders of N1-N2
    y["ranker_score"] = np.where(st == 1, rng.uniform(0, 1, size=(B, L)), -1.0).astype(np.float32)
    for t in TASKS:
        y[f"rt_{t}_position"] = rt[t]
    return {k: tf.constant(v) for k, v in x.items()}, {k: tf.constant(v) for k, v in y.items()}


# ----------------------------------------------------------------------------------------------- N4


def test_in_batch_mask_never_lets_own_items_through():
    x, y = tiny_batch(B=6, seed=3)
    keys = negatives.item_keys(x["item_id"])
    cand = negatives.candidate_mask(y["sample_type"], keys, y["example_mask"]).numpy()
    ids, st, valid = x["item_id"].numpy(), y["sample_type"].numpy(), y["example_mask"].numpy()
    B, L = ids.shape
    shared = 0
    for b in range(B):
        own = set(ids[b][valid[b]])
        for c in range(B * L):
            ob, ol = divmod(c, L)
            expected = ob != b and valid[ob, ol] and st[ob, ol] == 1 and ids[ob, ol] not in own
            assert cand[b, c] == expected, (b, c)
            shared += ob != b and st[ob, ol] == 1 and ids[ob, ol] in own
    assert shared > 0  # the batch does contain other requests' impressions of a request's own items
    # the sampled and compacted negatives are a subset of the candidates, for any seed and rate
    for seed in range(3):
        cols, m = negatives.select_in_batch(y["sample_type"], keys, y["example_mask"], 0.5,
                                            seed=tf.constant([seed, 1]))
        cols, m = cols.numpy(), m.numpy()
        assert all(cand[b, c] for b in range(B) for c, ok in zip(cols[b], m[b]) if ok)


def test_in_batch_sampling_rate():
    cand = tf.ones([40, 2000], tf.bool)
    kept = negatives.sample_in_batch(cand, 0.05, seed=tf.constant([7, 9])).numpy()
    n = kept.size
    assert abs(kept.mean() - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n)
    again = negatives.sample_in_batch(cand, 0.05, seed=tf.constant([7, 9])).numpy()
    assert (kept == again).all()
    assert not negatives.sample_in_batch(cand, 0.0, seed=tf.constant([1, 2])).numpy().any()


def test_compact_moves_kept_columns_first():
    sel = tf.constant([[False, True, False, True], [False, False, False, False]])
    cols, m = negatives.compact(sel)
    assert cols.numpy()[0].tolist() == [1, 3] and m.numpy().tolist() == [[True, True], [False, False]]
    cols, m = negatives.compact(tf.zeros([2, 3], tf.bool))
    assert cols.shape == (2, 0)


# ----------------------------------------------------------------------------------------------- loss oracle


def _list_mle_np(s, r):
    total = 0.0
    for row_s, row_r in zip(s, r):
        items = [v for _, v in sorted((rr, k) for k, rr in enumerate(row_r) if rr >= 0)]
        z = row_s[items]
        total += sum(_lse(z[j:]) - z[j] for j in range(len(z)))
    return total / s.shape[0]


def _info_nce_np(pos_rows, neg_rows, tau):
    """-1/B sum_b sum_{pos j} log(e^{p_j/tau} / (e^{p_j/tau} + sum_n e^{n/tau})) with precomputed logits."""
    total = 0.0
    for pos, neg in zip(pos_rows, neg_rows):
        for p in pos:
            total += _lse([p / tau] + [n / tau for n in neg]) - p / tau
    return total / len(pos_rows)


def _oracle(model, x, y, out):
    """Every component of the full variant with N4 = all candidates (rate 1) and beta = 0 (pure Eq. 5)."""
    o = {k: v.numpy() for k, v in out.items() if k not in ("item_key",)}
    st, valid = y["sample_type"].numpy(), y["example_mask"].numpy()
    ids = x["item_id"].numpy()
    B, L = st.shape
    imp = valid & (st == 1)
    hard = valid & np.isin(st, (2, 3))
    easy = valid & (st == 5)
    m, tau = model.margin, model.temperature
    terms, total = {}, 0.0
    if "logit_global" in o:  # the global task exists only in the variants with Eq. 3
        terms["global"] = _list_mle_np(o["logit_global"], np.where(valid, y["rc_position"].numpy(), -1))
        total = model.global_weight * terms["global"]
    for t, w in zip(model.tasks, model.task_weights):
        lab = y[t].numpy()
        z = o[f"logit_{t}"]
        bce = np.logaddexp(0, z) - lab * z
        terms[f"cali_{t}"] = bce[imp].sum() / B
        terms[f"local_{t}"] = _list_mle_np(z, np.where(valid, y[f"rt_{t}_position"].numpy(), -1))
        pos = imp & (lab > 0.5)
        terms[f"infonce_{t}"] = _info_nce_np([z[b][pos[b]] for b in range(B)], [z[b][hard[b]] for b in range(B)],
                                             tau)
        u, items = o[f"user_{t}"], o["item_embedding"]
        pos_rows, neg_rows = [], []
        for b in range(B):
            def v_cos(vec):
                v = np.linalg.norm(u[b]) * np.linalg.norm(vec)
                return v, u[b] @ vec / v
            margin_logit = [v * (c - m) for v, c in (v_cos(items[b, k]) for k in range(L) if pos[b, k])]
            negs = [v * (c - m) for v, c in (v_cos(items[b, k]) for k in range(L) if hard[b, k])]
            negs += [u[b] @ items[b, k] for k in range(L) if easy[b, k]]
            own = set(ids[b][valid[b]])
            negs += [u[b] @ items[ob, ol] for ob in range(B) for ol in range(L)
                     if ob != b and imp[ob, ol] and ids[ob, ol] not in own]  # N4, rate 1
            pos_rows.append(margin_logit)
            neg_rows.append(negs)
        terms[f"margin_infonce_{t}"] = _info_nce_np(pos_rows, neg_rows, tau)
        neg = (terms[f"infonce_{t}"] + terms[f"margin_infonce_{t}"]) / 2
        total += w * (terms[f"cali_{t}"] + model.alpha * terms[f"local_{t}"] + model.neg_weight * neg)
    return total, terms


def test_loss_components_match_oracle():
    x, y = tiny_batch()
    model = ThreeTower(**SMALL, in_batch_rate=1.0, beta_init=0.0)
    out = model(x, training=True)
    model._sample_in_batch = True
    total, terms = model.task_loss_terms(y, out)
    expected_total, expected = _oracle(model, x, y, out)
    assert set(terms) == set(expected) == set(model.loss_components())
    for k, v in expected.items():
        assert float(terms[k]) == pytest.approx(v, rel=2e-4, abs=1e-5), k
    assert float(total) == pytest.approx(expected_total, rel=2e-4)
    # without N4 (evaluation) the margin terms differ and the others do not
    model._sample_in_batch = False
    _, no_n4 = model.task_loss_terms(y, out)
    assert float(no_n4["cali_click"]) == pytest.approx(float(terms["cali_click"]))
    assert float(no_n4["margin_infonce_click"]) < float(terms["margin_infonce_click"])


def test_loss_gradients_finite_and_nonzero():
    x, y = tiny_batch()
    model = ThreeTower(**SMALL)
    model(x)
    with tf.GradientTape() as tape:
        model._sample_in_batch = True
        loss, _ = model.task_loss_terms(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) for g in grads) > 0


EXPECTED = {
    "base": {"cali"}, "base_listnet": {"cali", "local"}, "base_listmle": {"cali", "local"},
    "wo_up": {"cali", "local", "global"}, "wo_prc": {"cali", "local", "global", "margin_infonce"},
    "wo_neg": {"cali", "local", "global", "infonce", "margin_infonce"},
    "wo_margin": {"cali", "local", "global", "infonce", "margin_infonce"},
    "hccp": {"cali", "local", "global", "infonce", "margin_infonce"},
    "copr": {"cali", "copr_pairwise", "copr_reg"}, "rethink": {"cali", "rethink_list", "rethink_distill"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_turn_components_off(variant):
    x, y = tiny_batch()
    model = ThreeTower(**SMALL, variant=variant, in_batch_rate=1.0, beta_init=0.0)
    out = model(x, training=True)
    model._sample_in_batch = True
    total, terms = model.task_loss_terms(y, out)
    assert {k.rsplit("_", 1)[0] if k != "global" else k for k in terms} == EXPECTED[variant]
    assert ("user_global" in out) == ("global" in EXPECTED[variant])
    _, full = _oracle(model, x, y, out)
    # Eq. 6 from the variant's own terms
    expected = model.global_weight * float(terms["global"]) if "global" in terms else 0.0
    for t, w in zip(model.tasks, model.task_weights):
        contrastive = [float(terms[k]) for k in (f"infonce_{t}", f"margin_infonce_{t}") if k in terms]
        expected += w * (float(terms[f"cali_{t}"]) + model.alpha * float(terms.get(f"local_{t}", 0.0))
                         + (model.neg_weight * np.mean(contrastive) if contrastive else 0.0))
    # the baselines' own terms (tfrec.models.preranking.baselines) on the first task
    expected += (model.copr_weight * float(terms.get("copr_pairwise_click", 0.0))
                 + model.copr_reg_weight * float(terms.get("copr_reg_click", 0.0))
                 + model.rethink_weight * float(terms.get("rethink_list_exposure", 0.0)
                                                + terms.get("rethink_list_click", 0.0))
                 + model.rethink_distill_weight * float(terms.get("rethink_distill_click", 0.0)))
    assert float(total) == pytest.approx(expected, rel=1e-5)
    # terms shared with the full model's definition agree with the oracle
    for k in ("cali_click", "global", "infonce_click"):
        if k in terms:
            assert float(terms[k]) == pytest.approx(full[k], rel=2e-4)
    if variant == "wo_margin":  # plain InfoNCE over the same N2-N5 set as the full model's margin term
        nce = _oracle(ThreeTower(**SMALL, margin=0.0, in_batch_rate=1.0, beta_init=0.0), x, y, out)[1]
        assert float(terms["margin_infonce_click"]) == pytest.approx(nce["margin_infonce_click"], rel=2e-4)
    if variant == "base_listnet":
        z, lab = out["logit_click"].numpy(), y["click"].numpy()
        imp = y["sample_type"].numpy() == 1
        ref = 0.0
        for b in range(z.shape[0]):
            target = lab[b][imp[b]] / lab[b][imp[b]].sum()
            ref += -(target * (z[b][imp[b]] - _lse(z[b][imp[b]]))).sum()
        assert float(terms["local_click"]) == pytest.approx(ref / z.shape[0], rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        ThreeTower(**SMALL, variant="nope")
    with pytest.raises(ValueError, match="task_weights"):
        ThreeTower(**{**SMALL, "task_weights": (1.0,)})
    with pytest.raises(ValueError, match="in_batch_rate"):
        ThreeTower(**SMALL, in_batch_rate=2.0)
    with pytest.raises(ValueError, match="loss=None"):
        ThreeTower(**SMALL).compile("adam", loss="mse")


# ----------------------------------------------------------------------------------------------- config, fit, save


def test_get_config_round_trip():
    model = ThreeTower(**SMALL, variant="wo_neg", margin=0.5)
    clone = ThreeTower.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_towers_usable_apart():
    x, _ = tiny_batch()
    model = ThreeTower(**SMALL)
    out = model(x)
    users = model.user_embedding({k: x[k] for k in ("user_id", "user_segment", "scenario", "click_history",
                                                     "click_history_category")})
    items = model.item_embedding({k: tf.reshape(x[k], [-1]) for k in ("item_id", "category", "price")})
    assert items.shape == (4 * 7, 4) and set(users) == {"global", *TASKS}
    dot = np.einsum("bd,bld->bl", users["click"].numpy(), items.numpy().reshape(4, 7, 4))
    np.testing.assert_allclose(dot, out["dot_click"].numpy(), rtol=1e-5, atol=1e-6)
    weight = 2 / (1 + np.exp(-out["cross_click"].numpy()))
    np.testing.assert_allclose(out["logit_click"].numpy(), weight * dot, rtol=1e-5, atol=1e-6)


def test_fit_two_replicas_then_save_and_reload(tmp_path):
    strategy = make_strategy(2)
    x, y = tiny_batch(B=4)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    with strategy.scope():
        model = ThreeTower(**{**SMALL, "tasks": ("click",), "task_weights": (1.0,)}, beta_scale=0.5)
        model.compile(keras.optimizers.Adam(1e-2))
        before = model(x)["logit_click"].numpy()  # builds the weights under the strategy
    hist = model.fit(strategy.experimental_distribute_dataset(ds), steps_per_epoch=3, epochs=1, verbose=0)
    assert strategy.num_replicas_in_sync == 2
    assert np.isfinite(hist.history["loss"][-1]) and "margin_infonce_click_loss" in hist.history
    assert float(model.dot_nce.beta.numpy()) == pytest.approx(9999.0 * 0.5 ** 3)  # once per global step
    after = model(x)
    assert np.max(np.abs(after["logit_click"].numpy() - before)) > 1e-4
    path = str(tmp_path / "three_tower.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    again = reloaded(x)
    for k in ("logit_click", "click", "logit_global", "dot_click"):
        np.testing.assert_allclose(again[k].numpy(), after[k].numpy(), rtol=1e-6, atol=1e-6)
