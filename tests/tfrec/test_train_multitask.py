"""Multi-task training end to end: simulate a funnel -> prepare (Beam) -> train under 2 replicas -> evaluate per
task, for every architecture; PWiseR's global pairing (2 replicas == 1 device); the per-task metrics against a
hand count; config validation."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.metrics import log_loss, roc_auc_score

from tfrec import data as data_lib
from tfrec.cli import main
from tfrec.config import ConfigError, load_config
from tfrec.devices import make_strategy
from tfrec.evaluate import evaluate, train_and_evaluate
from tfrec.metrics import multitask_report
from tfrec.models import MMoE
from tfrec.train import build_model, train

SMALL = ["model.embedding_dim=4", "model.tower_units=[8]", "model.expert_units=[8]", "model.bottom_units=[8]",
         "model.num_experts=2", "model.num_shared_experts=1", "model.num_task_experts=1", "model.dropout=0",
         "data.batch_size=64", "data.eval_batch_size=256", "data.shuffle_buffer=0", "train.epochs=1",
         "train.steps_per_epoch=2", "train.log_every_seconds=0", "train.replicas=2"]


#: Funnel columns kept for the Ali-CCP-layout copy (a narrow dataset keeps the graphs small and the tests fast).
NARROW = {"click": "click", "conversion": "purchase", "categorical_1": "101", "categorical_2": "205",
          "categorical_3": "121", "categorical_4": "206", "numerical_1": "D101_1", "numerical_5": "D205_1"}


@pytest.fixture(scope="module")
def funnel_dataset(tmp_path_factory):
    """A simulated funnel (2400 exposures) copied into the Ali-CCP layout (user, item, segment, category ids
    and one dense feature each of user and item) and prepared by the CLI's Beam pipeline."""
    root = tmp_path_factory.mktemp("funnel_data")
    raw, data = str(root / "raw" / "aliexpress.csv"), str(root / "data")
    assert main(["simulate", "--kind", "funnel", "--out", raw, "--rows", "2400", "--seed", "3",
                 "--noisy-click-share", "0.3", "--set", "simulation.funnel.users=200",
                 "--set", "simulation.funnel.items=50", "--set", "simulation.funnel.click_rate=0.25",
                 "--set", "simulation.funnel.conversion_rate=0.3"]) == 0
    with open(raw) as f:
        header = f.readline().rstrip("\n").split(",")
        keep = [header.index(c) for c in ("click", "conversion")] + [
            header.index(c) for c in NARROW if c not in ("click", "conversion")]
        lines = [",".join(NARROW[header[i]] for i in keep)]
        lines += [",".join(fields[i] for i in keep) for fields in (line.rstrip("\n").split(",") for line in f)]
    narrow = str(root / "raw" / "aliccp.csv")
    with open(narrow, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert main(["prepare", "--input", narrow, "--out", data, "--format", "aliccp", "--min-count", "2",
                 "--beta-pos", "0.5", "--runner", "DirectRunner"]) == 0
    return data


def test_cli_train_evaluate_mmoe_with_pwiser(funnel_dataset, tmp_path, capsys):
    model_dir = str(tmp_path / "mmoe")
    sets = [a for s in SMALL + ["model.name=mmoe", "model.loss.pwiser_tasks=[ctr, cvr]", "model.loss.pairing=global"]
            for a in ("--set", s)]
    assert main(["train", "--data", funnel_dataset, "--model-dir", model_dir, *sets]) == 0
    assert main(["evaluate", "--data", funnel_dataset, "--model-dir", model_dir, "--split", "test", *sets]) == 0
    out = capsys.readouterr().out
    assert "ctr_auc" in out and "cvr_auc" in out and "ctcvr_logloss" in out
    with open(os.path.join(model_dir, "metrics.json")) as f:
        report = json.load(f)["test"]
    assert report["tasks"] == ["ctr", "cvr", "ctcvr"] and report["cvr_rows"] == report["clicks"]
    with open(os.path.join(model_dir, "history.csv")) as f:
        header = f.readline()
    assert "ctr_pwiser_loss" in header and "cvr_pwiser_loss" in header and "val_cvr_auc" in header


class _Steps(keras.callbacks.Callback):
    """Records the weights before each train batch and the logs after it."""

    def on_train_begin(self, logs=None):
        self.weights, self.logs = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([v.numpy() for v in self.model.trainable_weights])

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})


def _bce_oracle(labels, logits, weights):
    """Float64 mean over the rows of ``w y softplus(-z) + (1 - y) softplus(z)`` (KDD Eq. 15: the weight on
    positives only, divided by the number of rows, not by the sum of weights)."""
    y, z, w = (np.asarray(a, np.float64) for a in (labels, logits, weights))
    return float(np.mean(w * y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z)))


def _check_bce_terms_per_step(cfg, data, steps, name):
    """Each train step's reported BCE terms are their float64 oracles on the step's 64 rows (train split, file
    order, no shuffling), scored by the weights the step started from: ``ctr_bce`` weights its clicked rows by
    the ``weight`` feature (0.5 here), ``cvr_bce`` is over the clicked rows, ``ctcvr_bce`` over all rows."""
    model = build_model(cfg)
    rows = data_lib.make_dataset(data_lib.split_files(data, "train"), data_lib.load_schema(data), 64,
                                 training=False)
    model(next(iter(rows))[0], training=False)
    assert len(steps.logs) == len(steps.weights) == 2
    terms = sorted(k for k in steps.logs[0] if k.endswith("_bce_loss"))
    assert ("ctr_bce_loss" in terms) == (name != "single_task"), terms
    for step, (features, y, w) in enumerate(rows.take(2)):
        for v, w0 in zip(model.trainable_weights, steps.weights[step]):
            v.assign(w0)
        out = {k: v.numpy() for k, v in model(features, training=False).items()}
        y, w = y.numpy(), w.numpy()
        click, conv = y[:, 0], y[:, 1]
        if "ctr_bce_loss" in terms:
            assert set(np.unique(w[click == 1])) == {0.5} and set(np.unique(w[click == 0])) == {1.0}
        expected = {"ctr_bce_loss": lambda: _bce_oracle(click, out["ctr_logit"], w),
                    "cvr_bce_loss": lambda: _bce_oracle(conv[click == 1], out["cvr_logit"][click == 1],
                                                        np.ones(int(click.sum()))),
                    "ctcvr_bce_loss": lambda: _bce_oracle(click * conv, out["ctcvr_logit"], np.ones(len(y)))}
        for key in terms:
            # The logs carry the running mean over the epoch's steps (equal row counts): step 1 alone is
            # 2 m_1 - m_0.
            got = steps.logs[0][key] if step == 0 else 2 * steps.logs[1][key] - steps.logs[0][key]
            assert got == pytest.approx(expected[key](), rel=1e-5, abs=1e-6), (step, key)


@pytest.mark.parametrize("name, extra", [
    ("shared_bottom", ["model.loss.pwiser_tasks=[ctr]"]),
    ("ple", ["model.loss.pwiser_tasks=[cvr]", "model.loss.space=logit"]),
    ("esmm", ["model.loss.pwiser_tasks=[ctcvr]", "train.monitor=val_ctcvr_auc"]),
    ("single_task", ["model.task=cvr", "model.loss.pwiser_tasks=[cvr]"]),
])
def test_train_and_evaluate_each_architecture(funnel_dataset, tmp_path, name, extra):
    # One replica here (the CLI test and the pairing test cover 2 replicas): each traced graph costs seconds.
    # The name after SMALL: switching the model keeps the sizes it has and drops those of the other models.
    cfg = load_config(None, [f"data.dir={funnel_dataset}", f"train.model_dir={tmp_path / name}",
                             *SMALL, f"model.name={name}", "train.replicas=1", *extra])
    if name == "esmm":  # the protocol entry point: train, then evaluate the best weights per split
        out = train_and_evaluate(cfg, splits=("test",))
        assert out["summary"]["train_steps"] == 2 and set(out["metrics"]) == {"test"}
        report = out["metrics"]["test"]
        from tfrec.train import load_trained_model

        model = load_trained_model(cfg)
    else:
        steps = _Steps()
        result = train(cfg, extra_callbacks=[steps])
        assert result.summary["replicas"] == 1 and result.summary["train_steps"] == 2
        _check_bce_terms_per_step(cfg, funnel_dataset, steps, name)
        report, model = evaluate(cfg, "test", model=result.model), result.model
    tasks = {"esmm": ["ctr", "cvr", "ctcvr"], "single_task": ["cvr"]}.get(name, ["ctr", "cvr", "ctcvr"])
    assert report["tasks"] == tasks
    # The report is each task's metric in its own space, recomputed here with scikit-learn from the model's own
    # outputs on the test split (read without tfrec.evaluate): pCTR over all rows, pCVR over the clicked rows,
    # pCTCVR (the model's, else pCTR * pCVR) against click * conversion over all rows.
    schema = data_lib.load_schema(funnel_dataset)
    outs, labels, weights = [], [], []
    for features, label, weight in data_lib.make_dataset(data_lib.split_files(funnel_dataset, "test"), schema,
                                                         256, training=False):
        outs.append({k: v.numpy().astype(np.float64) for k, v in model(features, training=False).items()})
        labels.append(label.numpy())
        weights.append(weight.numpy())
    p = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    y, w = np.concatenate(labels).astype(np.float64), np.concatenate(weights).astype(np.float64)
    click, conv = y[:, 0], y[:, 1]
    assert report["rows"] == len(y) and report["clicks"] == int(click.sum())
    spaces = {"ctr": (np.ones(len(y), bool), click), "cvr": (click == 1, conv), "ctcvr": (np.ones(len(y), bool),
                                                                                        click * conv)}
    for task in tasks:
        prob = p[task] if task in p else p["ctr"] * p["cvr"]
        mask, target = spaces[task]
        assert report[f"{task}_rows"] == int(mask.sum()), task
        assert report[f"{task}_auc"] == pytest.approx(roc_auc_score(target[mask], prob[mask]), rel=1e-9), task
        assert report[f"{task}_logloss"] == pytest.approx(log_loss(target[mask], prob[mask]), rel=1e-6), task
    if "ctr" in tasks:
        assert report["ctr_weighted_auc"] == pytest.approx(roc_auc_score(click, p["ctr"], sample_weight=w))
        assert report["ctr_weighted_logloss"] == pytest.approx(log_loss(click, p["ctr"], sample_weight=w),
                                                               rel=1e-6)
    assert ("ctcvr" in p) == (name == "esmm")  # only ESMM outputs pCTCVR itself


def test_models_need_matching_datasets(funnel_dataset, tiny_dataset):
    with pytest.raises(ValueError, match="multi-task"):
        build_model(load_config(None, [f"data.dir={funnel_dataset}", "model.name=dcn_v2"]))
    with pytest.raises(ValueError, match="needs a multi-task dataset"):
        build_model(load_config(None, [f"data.dir={tiny_dataset}", "model.name=mmoe"]))


def test_multitask_report_by_hand():
    y = np.array([[0, 0], [1, 0], [1, 1], [0, 0], [1, 1], [1, 0]])
    p = {"ctr": np.array([0.1, 0.6, 0.9, 0.4, 0.7, 0.3]), "cvr": np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.5])}
    r = multitask_report(y, p, weights=np.where(y[:, 0] == 1, 0.5, 1.0))
    assert r["tasks"] == ["ctr", "cvr", "ctcvr"] and r["cvr_rows"] == 4 and r["ctcvr_rows"] == 6
    assert r["ctr_auc"] == pytest.approx(7 / 8)  # positives .6 .9 .7 .3 over negatives .1 .4: 7 of 8 pairs
    assert r["cvr_auc"] == pytest.approx(3 / 4)  # clicked: conv .8 .3 over non-conv .2 .5: 3 of 4 pairs
    ctcvr = p["ctr"] * p["cvr"]  # .09 .12 .72 .04 .21 .15: conversions .72, .21 above all 4 others
    assert r["ctcvr_auc"] == pytest.approx(1.0) and r["ctcvr_logloss"] == pytest.approx(
        -np.mean(np.log(np.where(y[:, 1] == 1, ctcvr, 1 - ctcvr))))
    assert r["conversion_rate"] == pytest.approx(0.5) and r["click_rate"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="conversion without a click"):
        multitask_report(np.array([[0, 1]]), {"ctr": np.array([0.5])})


FEATS = dict(dense=["d0"], categorical=["c0"], vocabularies={"c0": ["a", "b", "c"]},
             transform={"kind": "log_minmax", "scale": {"d0": 3.0}}, embedding_dim=4, embedding_l2=0.0,
             tower_units=[8], num_experts=2, expert_units=[8], pwiser_tasks=("ctr", "cvr"), pwiser_lambda=5.0,
             pwiser_m1=0.5, pwiser_m2=1.0)


def _batch(n=16, equal_clicks=True):
    rng = np.random.default_rng(4)
    x = {"d0": rng.normal(size=n).astype(np.float32), "c0": rng.choice(["a", "b", "c"], n)}
    # Conversions only in the first replica's half, so its pairs differ from the global batch's (with replica
    # pairing the second replica has no pair at all). Both halves have 4 clicks, or (``equal_clicks=False``)
    # 6 and 2: the click-space CVR BCE must divide by the global number of clicked rows.
    second = [1, 0, 0, 1, 0, 1, 1, 0] if equal_clicks else [1, 0, 0, 0, 0, 0, 1, 0]
    click = np.array([1, 1, 0, 0, 1, 0, 1, 0] + second, np.float32)
    if not equal_clicks:
        click[2] = click[3] = 1.0
    conv = np.array([1, 0, 0, 0, 1, 0, 0, 0] + [0] * 8, np.float32)
    return {k: tf.constant(v) for k, v in x.items()}, np.stack([click, conv], axis=1)


def _one_step(replicas, pairing, init, equal_clicks=True, history=None):
    x, y = _batch(equal_clicks=equal_clicks)
    strategy = make_strategy(replicas)
    with strategy.scope():
        model = MMoE(**FEATS, pwiser_pairing=pairing)
        model(x)
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, y)))
    hist = model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0).history
    if history is not None:
        history.update({k: v[0] for k, v in hist.items()})
    return model.get_weights()


def test_pwiser_global_pairing_two_replicas_equal_one_device():
    x, _ = _batch()
    keras.utils.set_random_seed(1)
    model = MMoE(**FEATS)
    model(x)
    init = model.get_weights()
    one = _one_step(1, "global", init)
    two_global = _one_step(2, "global", init)
    assert max(np.abs(a - b).max() for a, b in zip(one, init)) > 1e-3  # the step moved the weights
    for a, b in zip(one, two_global):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_click_space_cvr_bce_two_replicas_equal_one_device_with_unequal_click_counts():
    x, y = _batch(equal_clicks=False)
    assert y[:8, 0].sum() == 6 and y[8:, 0].sum() == 2  # the replicas' halves
    keras.utils.set_random_seed(1)
    model = MMoE(**FEATS)
    model(x)
    init = model.get_weights()
    logs_one, logs_two = {}, {}
    one = _one_step(1, "global", init, equal_clicks=False, history=logs_one)
    two = _one_step(2, "global", init, equal_clicks=False, history=logs_two)
    assert max(np.abs(a - b).max() for a, b in zip(one, init)) > 1e-3
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The reported losses are the global batch's too (the CVR BCE: over the 8 clicked rows of both halves).
    for key in ("loss", "ctr_bce_loss", "cvr_bce_loss", "ctr_pwiser_loss", "cvr_pwiser_loss"):
        assert logs_two[key] == pytest.approx(logs_one[key], rel=1e-5), key


@pytest.mark.parametrize("overrides, needle", [
    (["model.name=mmoe", "model.tasks=[ctr, ltv]"], "model.tasks"),
    (["model.name=esmm", "model.tasks=[ctr]"], "model.tasks"),
    (["model.name=mmoe", "model.loss.pwiser_tasks=[ctcvr]"], "model.loss.pwiser_tasks"),
    (["model.name=single_task", "model.task=ctr", "model.loss.pwiser_tasks=[cvr]"], "model.loss.pwiser_tasks"),
    (["model.name=ple", "model.num_levels=0"], "model.num_levels"),
    (["model.name=ple", "model.num_shared_experts=0", "model.num_task_experts=0"], "model.num_task_experts"),
    (["model.name=mmoe", "model.loss.lam=-1"], "model.loss.lam"),
    (["model.name=mmoe", "model.loss.m2=-0.1"], "model.loss.m2"),
    (["model.name=mmoe", "model.loss.space=rank"], "model.loss.space"),
    (["model.name=mmoe", "model.loss.pairing=all"], "model.loss.pairing"),
    (["model.name=mmoe", "model.tower_units=[0]"], "model.tower_units"),
    (["model.name=mmoe", "loss.name=rank_net"], "loss.name"),
    (["model.name=single_task", "model.task=ctr", "train.monitor=val_cvr_auc"], "train.monitor"),
    (["train.monitor=val_ctr_auc"], "train.monitor"),
])
def test_config_validation(overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(None, overrides)


def test_config_names_match_the_model_registry():
    from tfrec import models
    from tfrec.config import MULTITASK_MODELS

    assert set(MULTITASK_MODELS) <= set(models.names())
