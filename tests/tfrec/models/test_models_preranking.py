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


# variant -> (local term, global Eq. 3, InfoNCE on the final score, dot-product loss, N2-N3 in it, N4-N5 in it):
# HCCP section 4.1.3's rows as tfrec reads them (tfrec.hccp_variants' table), written out here for the oracle.
ORACLE_SWITCHES = {
    "base": ("none", False, False, "none", False, False),
    "base_listnet": ("list_net", False, False, "none", False, False),
    "base_listmle": ("list_mle", False, False, "none", False, False),
    "wo_up": ("list_mle", True, False, "none", False, False),
    "wo_prc": ("list_mle", True, False, "plain", False, True),
    "wo_neg": ("list_mle", True, True, "plain", True, False),
    "wo_margin": ("list_mle", True, True, "plain", True, True),
    "hccp": ("list_mle", True, True, "margin", True, True),
}


def _list_net_np(z, lab, imp):
    """ListNet per request over its impressions, the labels as the target distribution; mean over requests."""
    total = 0.0
    for b in range(z.shape[0]):
        target = lab[b][imp[b]]
        if target.sum() > 0:
            total += -((target / target.sum()) * (z[b][imp[b]] - _lse(z[b][imp[b]]))).sum()
    return total / z.shape[0]


def _oracle(model, x, y, out, variant="hccp"):
    """Every component of ``variant`` with N4 = all candidates (rate 1) and beta = 0 (pure Eq. 5), and Eq. 6's
    total from them."""
    local, use_global, score_nce, dot, use_hard, use_easy = ORACLE_SWITCHES[variant]
    o = {k: v.numpy() for k, v in out.items() if k not in ("item_key",)}
    st, valid = y["sample_type"].numpy(), y["example_mask"].numpy()
    ids = x["item_id"].numpy()
    B, L = st.shape
    imp = valid & (st == 1)
    hard = valid & np.isin(st, (2, 3))
    easy = valid & (st == 5)
    m = model.margin if dot == "margin" else 0.0  # plain InfoNCE: the dot products themselves
    tau = model.temperature
    terms, total = {}, 0.0
    if use_global:
        terms["global"] = _list_mle_np(o["logit_global"], np.where(valid, y["rc_position"].numpy(), -1))
        total = model.global_weight * terms["global"]
    for t, w in zip(model.tasks, model.task_weights):
        lab = y[t].numpy()
        z = o[f"logit_{t}"]
        bce = np.logaddexp(0, z) - lab * z
        task = terms[f"cali_{t}"] = bce[imp].sum() / B
        if local == "list_mle":
            terms[f"local_{t}"] = _list_mle_np(z, np.where(valid, y[f"rt_{t}_position"].numpy(), -1))
        elif local == "list_net":
            terms[f"local_{t}"] = _list_net_np(z, lab, imp)
        if local != "none":
            task += model.alpha * terms[f"local_{t}"]
        pos = imp & (lab > 0.5)
        contrastive = []
        if score_nce:
            terms[f"infonce_{t}"] = _info_nce_np([z[b][pos[b]] for b in range(B)],
                                                 [z[b][hard[b]] for b in range(B)], tau)
            contrastive.append(terms[f"infonce_{t}"])
        if dot != "none":
            u, items = o[f"user_{t}"], o["item_embedding"]
            pos_rows, neg_rows = [], []
            for b in range(B):
                def v_cos(vec):
                    v = np.linalg.norm(u[b]) * np.linalg.norm(vec)
                    return v, u[b] @ vec / v
                margin_logit = [v * (c - m) for v, c in (v_cos(items[b, k]) for k in range(L) if pos[b, k])]
                negs = []
                if use_hard:
                    negs += [v * (c - m) for v, c in (v_cos(items[b, k]) for k in range(L) if hard[b, k])]
                if use_easy:
                    negs += [u[b] @ items[b, k] for k in range(L) if easy[b, k]]
                    own = set(ids[b][valid[b]])
                    negs += [u[b] @ items[ob, ol] for ob in range(B) for ol in range(L)
                             if ob != b and imp[ob, ol] and ids[ob, ol] not in own]  # N4, rate 1
                pos_rows.append(margin_logit)
                neg_rows.append(negs)
            terms[f"margin_infonce_{t}"] = _info_nce_np(pos_rows, neg_rows, tau)
            contrastive.append(terms[f"margin_infonce_{t}"])
        if contrastive:
            task += model.neg_weight * np.mean(contrastive)
        total += w * task
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


def test_loss_gradients_finite_nonzero_and_match_finite_differences():
    x, y = tiny_batch()
    keras.utils.set_random_seed(11)
    model = ThreeTower(**SMALL, in_batch_rate=1.0, beta_init=0.0)  # N4 deterministic (every candidate)
    model(x)
    model._sample_in_batch = True
    with tf.GradientTape(persistent=True) as tape:
        loss, terms = model.task_loss_terms(y, model(x, training=True))
    for k, v in {"loss": loss, **terms}.items():
        g = [tf.convert_to_tensor(gi).numpy() for gi in tape.gradient(v, model.trainable_variables)
             if gi is not None]
        assert all(np.all(np.isfinite(gi)) for gi in g), k
        assert np.sqrt(sum(float((gi ** 2).sum()) for gi in g)) > 1e-3, k  # every term reaches the parameters
    # Eq. 6 and every term as functions of the model's outputs (logits, user / item embeddings and norms; smooth,
    # unlike the towers' ReLUs): the tape's directional derivatives along random unit directions against central
    # differences.
    out = model(x, training=True)
    outputs = {k: tf.Variable(v) for k, v in out.items() if v.dtype.is_floating}
    fixed = {k: v for k, v in out.items() if not v.dtype.is_floating}  # the item keys of the N4 mask

    def values():
        total, parts = model.task_loss_terms(y, {**fixed, **outputs})
        return {"loss": total, **parts}

    with tf.GradientTape(persistent=True) as tape:
        at = values()
    names = sorted(outputs)
    grads = {k: [tape.gradient(v, outputs[n]) for n in names] for k, v in at.items()}
    rng = np.random.default_rng(5)
    start = {n: outputs[n].numpy() for n in names}
    eps = 1e-2
    for _ in range(3):
        direction = {n: rng.normal(size=start[n].shape) for n in names}
        norm = np.sqrt(sum(float((d ** 2).sum()) for d in direction.values()))
        shifted = {}
        for sign in (1.0, -1.0):
            for n in names:
                outputs[n].assign((start[n] + sign * eps * direction[n] / norm).astype(np.float32))
            shifted[sign] = {k: float(t) for k, t in values().items()}
        for n in names:
            outputs[n].assign(start[n])
        for k, g in grads.items():
            analytic = sum(float(np.sum(tf.convert_to_tensor(gi).numpy() * direction[n] / norm))
                           for gi, n in zip(g, names) if gi is not None)
            numeric = (shifted[1.0][k] - shifted[-1.0][k]) / (2 * eps)
            assert analytic == pytest.approx(numeric, rel=1e-2, abs=2e-5), k


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
    if variant in ORACLE_SWITCHES:
        # Every term and Eq. 6's total against the oracle given the variant's switches (which negative sets enter
        # the dot-product loss, with or without the margin).
        expected_total, expected = _oracle(model, x, y, out, variant)
        assert set(terms) == set(expected)
        for k, v in expected.items():
            assert float(terms[k]) == pytest.approx(v, rel=2e-4, abs=1e-5), k
        assert float(total) == pytest.approx(expected_total, rel=2e-4)
    else:
        # The cascade baselines (COPR, Rethink): the calibration term against the oracle, the baselines' own terms
        # (tfrec.models.preranking.baselines, with oracles of their own in their test files) weighted as Eq. 6 adds them.
        _, base = _oracle(model, x, y, out, "base")
        assert float(terms["cali_click"]) == pytest.approx(base["cali_click"], rel=2e-4)
        expected = sum(w * float(terms[f"cali_{t}"]) for t, w in zip(model.tasks, model.task_weights))
        expected += (model.copr_weight * float(terms.get("copr_pairwise_click", 0.0))
                     + model.copr_reg_weight * float(terms.get("copr_reg_click", 0.0))
                     + model.rethink_weight * float(terms.get("rethink_list_exposure", 0.0)
                                                    + terms.get("rethink_list_click", 0.0))
                     + model.rethink_distill_weight * float(terms.get("rethink_distill_click", 0.0)))
        assert float(total) == pytest.approx(expected, rel=1e-5)
    if variant == "wo_margin":  # plain InfoNCE over the same N2-N5 set as the full model's margin term
        nce = _oracle(ThreeTower(**SMALL, margin=0.0, in_batch_rate=1.0, beta_init=0.0), x, y, out)[1]
        assert float(terms["margin_infonce_click"]) == pytest.approx(nce["margin_infonce_click"], rel=2e-4)


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


def _fit_one_task(replicas, x, y, steps, init=None, optimizer=lambda: keras.optimizers.Adam(1e-2), **kwargs):
    strategy = make_strategy(replicas)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    with strategy.scope():
        model = ThreeTower(**{**SMALL, "tasks": ("click",), "task_weights": (1.0,)}, beta_scale=0.5, **kwargs)
        model.compile(optimizer())
        before = model(x)["logit_click"].numpy()  # builds the weights under the strategy
        if init is not None:
            model.set_weights(init)
            before = model(x)["logit_click"].numpy()
    hist = model.fit(strategy.experimental_distribute_dataset(ds), steps_per_epoch=steps, epochs=1, verbose=0)
    assert strategy.num_replicas_in_sync == replicas
    return model, before, hist.history


def test_fit_two_replicas_then_save_and_reload(tmp_path):
    x, y = tiny_batch(B=4)
    model, before, history = _fit_one_task(2, x, y, 3)
    assert np.isfinite(history["loss"][-1]) and "margin_infonce_click_loss" in history
    assert float(model.dot_nce.beta.numpy()) == pytest.approx(9999.0 * 0.5 ** 3)  # once per global step
    after = model(x)
    assert np.max(np.abs(after["logit_click"].numpy() - before)) > 1e-4
    path = str(tmp_path / "three_tower.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    again = reloaded(x)
    for k in ("logit_click", "click", "logit_global", "dot_click"):
        np.testing.assert_allclose(again[k].numpy(), after[k].numpy(), rtol=1e-6, atol=1e-6)


def test_two_replicas_train_as_one_device_without_in_batch_negatives():
    # Each replica samples its N4 from its own slice of the batch (in-batch sampling of B / R requests), so the
    # step equals the 1-device step only without N4; every other term is a mean over the requests.
    x, y = tiny_batch(B=4)
    kwargs = dict(in_batch_rate=0.0, beta_init=1.0, optimizer=lambda: keras.optimizers.SGD(0.5))  # scale-sensitive
    base = ThreeTower(**{**SMALL, "tasks": ("click",), "task_weights": (1.0,)}, beta_scale=0.5, in_batch_rate=0.0,
                      beta_init=1.0)
    base.compile(keras.optimizers.SGD(0.5))
    base(x)
    init = base.get_weights()
    two, _, hist_two = _fit_one_task(2, x, y, 2, init=init, **kwargs)
    one, _, hist_one = _fit_one_task(1, x, y, 2, init=init, **kwargs)
    moved = max(float(np.abs(v.numpy() - w).max()) for v, w in zip(one.trainable_weights, base.trainable_weights))
    assert moved > 1e-3
    for a, b in zip(one.trainable_weights, two.trainable_weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)
    assert set(hist_two) == set(hist_one) and "margin_infonce_click_loss" in hist_two
    for k in hist_two:
        assert hist_two[k][-1] == pytest.approx(hist_one[k][-1], rel=1e-4, abs=1e-6), k
    assert float(two.dot_nce.beta.numpy()) == float(one.dot_nce.beta.numpy()) == pytest.approx(0.25)
