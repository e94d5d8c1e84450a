"""Every KDD 2024 loss trains DCN V2 through ``tfrec train``'s driver (config -> strategy -> fit) for a few steps.

The loss is chosen by name in the config, as a YAML file would; training runs on 2 replicas with the loss's
``pairing="global"`` where it has one, and the combined losses report each component in the history.

Each case checks the driver's loss against the loss's float64 NumPy oracle (from the loss's own test file) on
every global batch of the epoch, computed from the weights the step started from and the step's 64 training rows
read independently; that the parameters the loss trains moved; and that the trained model ranks the train rows
it saw better than the initial weights do (the validation AUC of one epoch is near chance).
"""

import inspect
import math

import numpy as np
import pytest
import tf_keras as keras
from sklearn.metrics import roc_auc_score

from tfrec import data as data_lib
from tfrec.config import load_config
from tfrec.losses import base as losses_base
from tfrec.train import build_model, train

from tests.tfrec.losses.loss_probe import SPECS
from tests.tfrec.losses.test_losses_bce import _oracle as _bce
from tests.tfrec.losses.test_losses_contrastive import _oracle as _contrastive
from tests.tfrec.losses.test_losses_listwise import _jrc_oracle, _list_ce_oracle, _list_net_oracle
from tests.tfrec.losses.test_losses_pairwise import _rank_net_oracle
from tests.tfrec.losses.test_losses_pointwise import _oracle as _focal

DCN_LOSSES = sorted(n for n in SPECS if n != "pwiser")  # PWiseR needs click and conversion labels (multi-task)
BATCH = 64
STEPS = 8  # one epoch of the 512 train rows


def _oracle_terms(name, p, y, out, w):
    """``(total, {component: term})`` of loss ``name`` with arguments ``p`` in float64 NumPy (the loss's oracle)."""
    z = out["logit"]
    if name == "weighted_bce":
        return _bce(y, z, w), {}
    if name in ("focal", "normalized_focal"):
        return _focal(y, z, w, p["gamma"], normalized=name == "normalized_focal"), {}
    if name == "rank_net":
        return _rank_net_oracle(y, z), {}
    if name in ("list_net", "list_ce"):
        return (_list_net_oracle if name == "list_net" else _list_ce_oracle)(y, z, w), {}
    if name == "supervised_contrastive":
        return _contrastive(y, out["embedding"], p["temperature"]), {}
    a = p["alpha"]
    if name == "jrc":
        clf, rank = _jrc_oracle(y, out["logits"], w)
        return a * clf + (1 - a) * rank, {"jrc_clf": clf, "jrc_rank": rank}
    rank_term, rank = {"combined_pair": ("rank_net", lambda: _rank_net_oracle(y, z)),
                       "combined_list": ("list_net", lambda: _list_net_oracle(y, z, w)),
                       "rcr": ("list_ce", lambda: _list_ce_oracle(y, z, w)),
                       "combined_contrastive": ("contrastive",
                                                lambda: _contrastive(y, out["embedding"], p["temperature"]))}[name]
    bce, rank = _bce(y, z, w), rank()
    return a * bce + (1 - a) * rank, {"bce": bce, rank_term: rank}


class _Steps(keras.callbacks.Callback):
    """Records the weights before training and before each train batch, and the logs after each train batch."""

    def on_train_begin(self, logs=None):
        self.initial = [v.numpy() for v in self.model.trainable_weights]
        self.weights, self.logs = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([v.numpy() for v in self.model.trainable_weights])

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})

    def step_value(self, step: int, key: str) -> float:
        """The loss of train step ``step`` alone: the logs carry the running mean over the epoch's steps (every
        step weighs its 64 valid rows), so step k's value is ``(k + 1) m_k - k m_{k-1}``."""
        if step == 0:
            return self.logs[0][key]
        return (step + 1) * self.logs[step][key] - step * self.logs[step - 1][key]


def _predict(model, ds):
    outs, ys, ws = [], [], []
    for features, y, w in ds:
        outs.append({k: np.asarray(v, np.float64) for k, v in model(features, training=False).items()})
        ys.append(y.numpy())
        ws.append(w.numpy())
    return ({k: np.concatenate([o[k] for o in outs]) for k in outs[0]}, np.concatenate(ys).astype(np.float64),
            np.concatenate(ws).astype(np.float64))


def _auc(model, ds):
    out, y, _ = _predict(model, ds)
    return roc_auc_score(y, out["probability"])


@pytest.mark.parametrize("name", DCN_LOSSES)
def test_loss_trains_dcn_v2(tiny_dataset, tmp_path, name):
    params, _ = SPECS[name]
    cls = losses_base._lookup(name)
    if "pairing" in inspect.signature(cls.__init__).parameters:
        params = {**params, "pairing": "global"}
    # The smallest DCN V2 (one cross layer, dim 4): the cost of a case is its graph's tracing, not its steps.
    # No dropout, so each train step's forward pass is the inference pass the oracle below recomputes.
    overrides = [f"data.dir={tiny_dataset}", f"train.model_dir={tmp_path}", "model.dnn_hidden_units=[16, 8]",
                 "model.num_cross_layers=1", "model.embedding_dim=4", "model.dropout=0.0",
                 "train.save_every_steps=0", f"data.batch_size={BATCH}", "data.eval_batch_size=128",
                 "data.shuffle_buffer=0", "train.epochs=1", f"train.steps_per_epoch={STEPS}",
                 "train.learning_rate=0.01", "train.log_every_seconds=0", f"model.loss.name={name}",
                 f"model.loss.params={params!r}"]
    if name == "jrc":
        overrides.append("model.head=jrc")
    cfg = load_config(None, overrides)
    steps = _Steps()
    result = train(cfg, printer=lambda _: None, extra_callbacks=[steps])
    history = result.history
    assert result.summary["train_steps"] == STEPS and result.summary["replicas"] == 2
    assert all(math.isfinite(v) for v in history["loss"] + history["val_loss"])
    for component in cls.components:
        assert f"{component}_loss" in history, (component, sorted(history))
    assert len(steps.logs) == len(steps.weights) == STEPS

    # Every global batch: step k reads train rows 64k .. 64k+63 in file order (no shuffling; replica 0 gets the
    # first 32, replica 1 the next 32, and the 2-replica loss equals the global-batch loss), scored by the weights
    # the step started from. The first step alone would not do: at the initial weights every logit is within
    # 1e-3 of 0, where some wrong losses (ListNet's exp(z) in place of ListCE's sigmoid(z)) agree with the right
    # one to 6 digits; the later steps score with the trained weights.
    schema = data_lib.load_schema(tiny_dataset)
    initial = build_model(cfg)
    rows = data_lib.make_dataset(data_lib.split_files(tiny_dataset, "train"), schema, BATCH, training=False)
    initial(next(iter(rows))[0], training=False)
    expected = {"loss": []} | {f"{c}_loss": [] for c in cls.components}
    for step, batch in enumerate(rows.take(STEPS)):
        for v, w0 in zip(initial.trainable_weights, steps.weights[step]):
            v.assign(w0)
        out, y, w = _predict(initial, [batch])
        total, terms = _oracle_terms(name, params, y, out, w)
        expected["loss"].append(total)
        for component in cls.components:
            expected[f"{component}_loss"].append(terms[component])
    for key, want in expected.items():
        got = [steps.step_value(step, key) for step in range(STEPS)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{key} per train step")
    for v, w0 in zip(initial.trainable_weights, steps.initial):
        v.assign(w0)

    # The parameters the loss trains moved: the DNN and cross kernels (the embedding tables move with their L2
    # term alone); the logit head too, unless the loss reads only the embedding.
    trained = result.model
    moved = {v.name: float(np.max(np.abs(v.numpy() - w0)))
             for v, w0 in zip(trained.trainable_weights, steps.initial)}
    body = {k: d for k, d in moved.items() if "/dnn/" in k or "/cross/" in k}
    head = {k: d for k, d in moved.items() if k.split("/")[1] in ("logit", "logits")}
    assert body and head, sorted(moved)
    assert min(body.values()) > 1e-4, body
    if name == "supervised_contrastive":
        assert max(head.values()) == 0.0, head  # the loss reads only the embedding: the head gets no gradient
    else:
        if name in ("list_net", "list_ce"):
            # A softmax over the batch does not change when every logit shifts by the same amount, so the logit
            # bias gets no gradient (up to rounding) and only the kernel is expected to move.
            head = {k: d for k, d in head.items() if "bias" not in k}
        assert min(head.values()) > 1e-4, head
        # It learned to rank the rows it was trained on (the label depends on I1 and C1; the 8 steps saw the 512
        # train rows once): the AUC goes from 0.43 at the initial weights to 0.59 (combined_contrastive, alpha
        # 0.9) to 0.77 (measured). A loss with the wrong sign or no gradient stays near 0.43 or falls. (The
        # validation AUC after one epoch is about 0.5 on this data: the tiny model memorises the 37 noise fields
        # before it generalises.)
        rows = data_lib.make_dataset(data_lib.split_files(tiny_dataset, "train"), schema, 512, training=False)
        before, after = _auc(initial, rows), _auc(trained, rows)
        assert after > 0.55 and after > before + 0.1, (before, after)
