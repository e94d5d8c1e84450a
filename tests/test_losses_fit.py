"""Every KDD 2024 loss trains DCN V2 through ``tfrec train``'s driver (config -> strategy -> fit) for a few steps.

The loss is chosen by name in the config, as a YAML file would; training runs on 2 replicas with the loss's
``pairing="global"`` where it has one, and the combined losses report each component in the history.

Each case checks the driver's loss against the loss's float64 NumPy oracle (from the loss's own test file) on the
first global batch, computed from the initial weights and the first 64 training rows read independently; that the
parameters the loss trains moved; and that the trained model ranks the validation split better than chance.
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

from loss_probe import SPECS
from test_losses_bce import _oracle as _bce
from test_losses_contrastive import _oracle as _contrastive
from test_losses_listwise import _jrc_oracle, _list_ce_oracle, _list_net_oracle
from test_losses_pairwise import _rank_net_oracle
from test_losses_pointwise import _oracle as _focal

DCN_LOSSES = sorted(n for n in SPECS if n != "pwiser")  # PWiseR needs click and conversion labels (multi-task)
BATCH = 64


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


class _FirstStep(keras.callbacks.Callback):
    """Records the weights before training and the logs of the first train batch."""

    def on_train_begin(self, logs=None):
        self.initial = [v.numpy() for v in self.model.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and not hasattr(self, "logs"):
            self.logs = {k: float(v) for k, v in logs.items()}


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
    # No dropout, so the first train step's forward pass is the inference pass the oracle below recomputes.
    overrides = [f"data.dir={tiny_dataset}", f"train.model_dir={tmp_path}", "model.dnn_hidden_units=[16, 8]",
                 "model.num_cross_layers=1", "model.embedding_dim=4", "model.dropout=0.0",
                 "train.save_every_steps=0", f"data.batch_size={BATCH}", "data.eval_batch_size=128",
                 "data.shuffle_buffer=0", "train.epochs=1", "train.steps_per_epoch=8", "train.learning_rate=0.01",
                 "train.log_every_seconds=0", f"model.loss.name={name}",
                 f"model.loss.params={params!r}"]
    if name == "jrc":
        overrides.append("model.head=jrc")
    cfg = load_config(None, overrides)
    first = _FirstStep()
    result = train(cfg, printer=lambda _: None, extra_callbacks=[first])
    history = result.history
    assert result.summary["train_steps"] == 8 and result.summary["replicas"] == 2
    assert all(math.isfinite(v) for v in history["loss"] + history["val_loss"])
    for component in cls.components:
        assert f"{component}_loss" in history, (component, sorted(history))

    # The first global batch: the first 64 train rows in file order (no shuffling; replica 0 gets rows 0-31,
    # replica 1 rows 32-63, and the 2-replica loss equals the global-batch loss), scored by the initial weights.
    schema = data_lib.load_schema(tiny_dataset)
    initial = build_model(cfg)
    first_rows = data_lib.make_dataset(data_lib.split_files(tiny_dataset, "train"), schema, BATCH, training=False)
    features = next(iter(first_rows))[0]
    initial(features, training=False)
    for v, w0 in zip(initial.trainable_weights, first.initial):
        v.assign(w0)
    out, y, w = _predict(initial, first_rows.take(1))
    total, terms = _oracle_terms(name, params, y, out, w)
    assert first.logs["loss"] == pytest.approx(total, rel=2e-5, abs=1e-6)
    for component in cls.components:
        assert first.logs[f"{component}_loss"] == pytest.approx(terms[component], rel=2e-5, abs=1e-6), component

    # The parameters the loss trains moved: the DNN and cross kernels (the embedding tables move with their L2
    # term alone); the logit head too, unless the loss reads only the embedding.
    trained = result.model
    moved = {v.name: float(np.max(np.abs(v.numpy() - w0)))
             for v, w0 in zip(trained.trainable_weights, first.initial)}
    body = {k: d for k, d in moved.items() if "/dnn/" in k or "/cross/" in k}
    head = {k: d for k, d in moved.items() if k.split("/")[1] in ("logit", "logits")}
    assert body and head, sorted(moved)
    assert min(body.values()) > 1e-4, body
    if name == "supervised_contrastive":
        assert max(head.values()) == 0.0, head  # the loss reads only the embedding: the head gets no gradient
    else:
        assert min(head.values()) > 1e-4, head
        # It learned to rank the rows it was trained on (the label depends on I1 and C1; the 8 steps saw the 512
        # train rows once): the AUC goes from 0.43 at the initial weights to 0.59 (combined_contrastive, alpha
        # 0.9) to 0.77 (measured). A loss with the wrong sign or no gradient stays near 0.43 or falls. (The
        # validation AUC after one epoch is about 0.5 on this data: the tiny model memorises the 37 noise fields
        # before it generalises.)
        rows = data_lib.make_dataset(data_lib.split_files(tiny_dataset, "train"), schema, 512, training=False)
        before, after = _auc(initial, rows), _auc(trained, rows)
        assert after > 0.55 and after > before + 0.1, (before, after)
