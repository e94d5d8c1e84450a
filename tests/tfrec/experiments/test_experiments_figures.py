"""The paper's figures from a tiny experiment run (two settings, one seed, two epochs): Fig. 1a (BCE along
epochs), Fig. 1b (the loss landscape of the head), Fig. 3 (layer gradient norms) and Fig. 9 (the negatives'
|dL/dz| histogram), each a PNG with a CSV whose numbers are recomputed here from the run's own records."""

import csv
import math
import os

import numpy as np
import pytest

from tfrec import data as data_lib
from tfrec.config import load_config
from tfrec.experiments import Options, run_protocol
from tfrec.experiments.core.store import Cell, Store
from tfrec.experiments.kdd import landscape
from tfrec.experiments.kdd.runner import read_csv
from tfrec.features import CRITEO
from tfrec.metrics.gradients import HIST_NAMES, histogram_edges
from tfrec.train import load_trained_model

SEED = 2020
SETTINGS = ["bce", "combined_pair"]
FIGURES = ("fig1a_bce", "fig1b_landscape", "fig3_layer_grad_norms", "fig9_grad_neg_hist")


@pytest.fixture(scope="module")
def figures(tiny_dataset, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("figures"))
    cfg = load_config(None, ["model.dnn_hidden_units=[16, 8]", "model.num_cross_layers=1", "model.embedding_dim=4",
                             "data.batch_size=64", "data.eval_batch_size=128", "data.shuffle_buffer=0",
                             "train.epochs=2", "train.early_stop_patience=5", "train.replicas=1",
                             "train.log_every_seconds=0", "train.save_every_steps=0"])
    summary = run_protocol("losses", tiny_dataset, [SEED], out, cfg, Options(buckets=4), only=SETTINGS,
                           printer=lambda _: None)
    store = Store(out)
    runs = {s: store.cell_result(Cell("losses", s, SEED)) for s in SETTINGS}
    return os.path.join(out, "losses"), runs, summary


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_figure_and_its_csv_is_written_and_listed(figures):
    report, _, summary = figures
    for name in FIGURES:
        for ext in (".png", ".csv"):
            path = os.path.join(report, name + ext)
            assert os.path.getsize(path) > 0, path
            assert path in summary["files"], path
    with open(os.path.join(report, "fig1a_bce.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fig1a_is_the_recorded_validation_and_training_bce(figures):
    report, runs, _ = figures
    rows = _rows(os.path.join(report, "fig1a_bce.csv"))
    assert [(r["setting"], int(r["epoch"])) for r in rows] == [(s, e) for s in SETTINGS for e in (1, 2)]
    for r in rows:
        run = runs[r["setting"]]
        history = {int(h["epoch"]): h for h in read_csv(os.path.join(run["run_dir"], "history.csv"))}
        assert float(r["valid_bce"]) == history[int(r["epoch"]) - 1]["val_weighted_logloss"]
        logged = run["run"]["history"]["val_weighted_logloss"][int(r["epoch"]) - 1]
        assert float(r["valid_bce"]) == pytest.approx(logged)
        assert float(r["train_bce"]) == run["run"]["train_bce"]["per_epoch"][r["epoch"]]
        assert int(r["seeds"]) == 1
    # The run's final validation BCE is the one Keras logged after its last epoch; BCE and Combined-Pair differ.
    last = {r["setting"]: float(r["valid_bce"]) for r in rows if r["epoch"] == "2"}
    assert last["bce"] != last["combined_pair"]


def test_fig3_windows_of_the_layer_gradient_norms(figures):
    report, runs, _ = figures
    rows = _rows(os.path.join(report, "fig3_layer_grad_norms.csv"))
    assert {r["layer"] for r in rows} == {"dnn0", "cross0"}
    for setting in SETTINGS:
        diag = read_csv(os.path.join(runs[setting]["run_dir"], "gradient_diagnostics.csv"))
        assert len(diag) == 16  # 512 rows / 64 per batch, 2 epochs, every batch recorded
        for layer in ("dnn0", "cross0"):
            series = np.asarray([d[f"grad_norm_{layer}"] for d in diag])
            got = [r for r in rows if r["setting"] == setting and r["layer"] == layer]
            assert len(got) == 16  # ceil(16 / 50) = 1 batch per window
            for r in got:
                a, b = int(r["first_batch"]), int(r["last_batch"])
                w = series[a:b + 1]
                assert float(r["mean"]) == pytest.approx(float(np.mean(w)), rel=1e-12)
                assert float(r["p90"]) == pytest.approx(float(np.percentile(w, 90)), rel=1e-12)
            assert np.all(series > 0)


def test_fig9_histogram_counts_every_first_epoch_negative(figures, tiny_dataset):
    report, runs, _ = figures
    rows = _rows(os.path.join(report, "fig9_grad_neg_hist.csv"))
    labels = np.concatenate([y.numpy() for _, y, _ in data_lib.make_dataset(
        data_lib.split_files(tiny_dataset, "train"), CRITEO, 512, training=False)])
    negatives = int((labels == 0).sum())  # one epoch reads every training row (512 = 8 batches of 64)
    edges = histogram_edges()
    for setting in SETTINGS:
        got = [r for r in rows if r["setting"] == setting]
        assert [int(r["bin"]) for r in got] == list(range(len(HIST_NAMES)))
        counts = np.asarray([int(r["count"]) for r in got])
        assert counts.sum() == negatives
        np.testing.assert_allclose([float(r["frequency"]) for r in got], counts / negatives, rtol=1e-12)
        np.testing.assert_allclose([float(r["low"]) for r in got], edges[:-1], rtol=1e-12)
        # The mass sits where the recorded per-batch medians are: the bin of the median of the first batch's
        # negatives holds at least one of them.
        first = read_csv(os.path.join(runs[setting]["run_dir"], "gradient_diagnostics.csv"))[0]
        k = int(np.searchsorted(edges, first["grad_neg_p50"], side="right")) - 1
        assert counts[k] > 0
    assert not math.isnan(float(rows[0]["frequency"]))



def test_fig1b_landscape_is_the_models_own_bce(figures):
    report, runs, _ = figures
    rows = _rows(os.path.join(report, "fig1b_landscape.csv"))
    assert len(rows) == len(SETTINGS) * len(landscape.A_VALUES) * len(landscape.B_VALUES)
    run = runs["combined_pair"]
    cfg = load_config(values=run["run"]["config"])
    assert cfg.train.model_dir == run["run_dir"]
    model = load_trained_model(cfg)
    features, y, w = next(iter(data_lib.make_dataset(data_lib.split_files(cfg.data.dir, "test"), CRITEO,
                                                     cfg.data.eval_batch_size, training=False,
                                                     beta_pos=cfg.data.beta_pos)))
    y, w = y.numpy().astype(np.float64), w.numpy().astype(np.float64)
    kernel, bias = model.head.kernel.numpy(), model.head.bias.numpy()
    theta = np.concatenate([kernel.ravel(), bias]).astype(np.float64)
    delta, nu = landscape.directions(theta, cfg.train.seed)
    assert abs(np.dot(delta, nu)) < 1e-12 and np.linalg.norm(nu) == pytest.approx(1.0)
    got = {(float(r["a"]), float(r["b"])): float(r["bce"]) for r in rows if r["setting"] == "combined_pair"}
    for j, i in ((0, 0), (3, 20), (29, 29), (10, 20)):  # a, b grid indices; (10, 20) is near theta* itself
        a, b = landscape.A_VALUES[j], landscape.B_VALUES[i]
        t = theta + a * delta + b * nu
        model.head.kernel.assign(t[:-1].reshape(kernel.shape).astype(np.float32))
        model.head.bias.assign(t[-1:].astype(np.float32))
        z = model(features, training=False)["logit"].numpy().astype(np.float64)
        p = 1.0 / (1.0 + np.exp(-z))
        want = -np.sum(w * (y * np.log(p) + (1 - y) * np.log(1 - p))) / y.size  # Eq. 15 on the model's output
        assert got[(a, b)] == pytest.approx(want, rel=1e-4), (a, b)
    values = np.asarray(list(got.values()))
    assert np.all(np.isfinite(values)) and values.max() > 1.5 * values.min()  # the grid does reach away
