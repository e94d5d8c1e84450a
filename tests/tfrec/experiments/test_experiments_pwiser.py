"""`tfrec experiment pwiser`: the protocol end to end on tiny simulated funnels (one seed, one short epoch, two
settings per part), the files it writes, table numbers equal to the runs' metrics, the paired differences, the
noise sweep's own datasets, resumability; and the protocol's pure logic."""

import csv
import json
import math
import os

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from tfrec import data as data_lib
from tfrec.config import load_config
from tfrec.experiments import Options, run_protocol
from tfrec.experiments.core import registry
from tfrec.experiments.core.engine import selected_settings
from tfrec.experiments.core.store import Cell, Store
from tfrec.experiments.pwiser import data as pwiser_data
from tfrec.experiments.pwiser import protocol as pwiser_protocol
from tfrec.experiments.pwiser import settings as pwiser
from tfrec.train import load_trained_model

SEED = 2020
# Each setting's baseline (the BCE run of the same architecture and data; None: not compared).
BASELINES = {"mmoe_bce": None, "mmoe_pwiser": "mmoe_bce", "noise0_bce": None, "noise0_pwiser": "noise0_bce",
             "margins_bce": None, "lambda1_m0.3": "margins_bce"}
ONLY = ["mmoe_bce", "mmoe_pwiser", "noise0_bce", "noise0_pwiser", "margins_bce", "lambda1_m0.3"]
TINY = ["simulation.kind=funnel", "simulation.rows=1500", "simulation.seed=5", "simulation.funnel.users=200",
        "simulation.funnel.items=50", "simulation.funnel.click_rate=0.25", "simulation.funnel.conversion_rate=0.3",
        "simulation.funnel.noisy_click_share=0.3", "prepare.input_format=aliccp", "prepare.min_count=2",
        "prepare.num_shards=1", "prepare.runner=DirectRunner", "model.name=mmoe", "model.embedding_dim=4",
        "model.tower_units=[8]", "model.expert_units=[8]", "model.num_experts=2", "model.dropout=0",
        "data.batch_size=128", "data.eval_batch_size=1024", "data.shuffle_buffer=0", "train.epochs=1",
        "train.steps_per_epoch=4", "train.replicas=1", "train.log_every_seconds=0", "train.save_every_steps=0"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pwiser"))
    cfg = load_config(None, TINY)
    data = pwiser_data.prepare_funnel_data(cfg, out, 0.3, printer=lambda _: None)
    summary = run_protocol("pwiser", data, [SEED], out, cfg, Options(values=(0.0,), buckets=4), only=ONLY,
                           printer=lambda _: None)
    return out, data, cfg, summary


def _rows(path):
    with open(path, newline="") as f:
        return {r["setting"]: r for r in csv.DictReader(f)}


def _check_test_metrics_by_hand(cell):
    """The run's test AUC per task and CTR logloss, recomputed with scikit-learn from the run's best weights and
    the test split read here: CTR over all rows, CVR over the clicked rows, CTCVR = pCTR * pCVR (MMoE)."""
    cfg = load_config(os.path.join(cell["run_dir"], "config.yaml"))
    model = load_trained_model(cfg)
    outs, labels = [], []
    for features, y, _ in data_lib.make_dataset(data_lib.split_files(cfg.data.dir, "test"),
                                                data_lib.load_schema(cfg.data.dir), 512, training=False):
        out = model(features, training=False)
        assert "ctcvr" not in out
        outs.append(np.stack([out["ctr"].numpy(), out["cvr"].numpy()], axis=1))
        labels.append(y.numpy())
    p, y = np.concatenate(outs).astype(np.float64), np.concatenate(labels).astype(np.float64)
    click, conv = y[:, 0], y[:, 1]
    test = cell["run"]["test"]
    assert test["rows"] == len(y) and test["clicks"] == int(click.sum())
    assert test["ctr_auc"] == pytest.approx(roc_auc_score(click, p[:, 0]), abs=1e-6), cell["setting"]
    assert test["cvr_auc"] == pytest.approx(roc_auc_score(conv[click == 1], p[click == 1, 1]), abs=1e-6)
    assert test["ctcvr_auc"] == pytest.approx(roc_auc_score(click * conv, p[:, 0] * p[:, 1]), abs=1e-6)
    assert test["ctr_logloss"] == pytest.approx(log_loss(click, p[:, 0]), rel=1e-5)


def test_pwiser_end_to_end(experiment):
    out, data, _, summary = experiment
    report = os.path.join(out, "pwiser")
    for f in ("results.md", "results_grid.csv", "results_grid.md", "results_noise.csv", "results_noise.md",
              "results_margins.csv", "results_margins.md", "grid_auc.png", "noise_lift.png", "margins_heatmap.png",
              "run_record.json"):
        assert os.path.getsize(os.path.join(report, f)) > 0, f
    assert summary["cells"] == 6 and summary["computed"] == 5 and summary["reused"] == 1  # margins_bce = mmoe_bce
    store = Store(out)
    md = open(os.path.join(report, "results.md")).read()
    paired = 0
    parts = {"grid": ["mmoe_bce", "mmoe_pwiser"], "noise": ["noise0_bce", "noise0_pwiser"],
             "margins": ["margins_bce", "lambda1_m0.3"]}
    for part, names in parts.items():
        rows = _rows(os.path.join(report, f"results_{part}.csv"))
        assert list(rows) == names
        for name in names:
            cell = store.cell_result(Cell("pwiser", name, SEED))
            run = cell["run"]
            assert run["test"]["tasks"] == ["ctr", "cvr", "ctcvr"] and run["train"]["epochs_run"] == 1
            for key in pwiser.PWISER_METRICS:
                value = registry.metric_value(run, pwiser_protocol.PROTOCOL.metric(key))
                assert value is not None and math.isfinite(value), (name, key)
                assert float(rows[name][f"{key}_mean"]) == value  # one seed: the mean is the run's number
                assert rows[name][f"{key}_std"] == ""
                assert f"{value:.5f}" in md
            assert cell["baseline"] == BASELINES[name]
            if cell["baseline"] is not None:  # the paired difference to BCE of the same architecture and data
                paired += 1
                base = store.cell_result(Cell("pwiser", cell["baseline"], SEED))["run"]
                for key in pwiser.PWISER_METRICS:
                    m = pwiser_protocol.PROTOCOL.metric(key)
                    diff = registry.metric_value(run, m) - registry.metric_value(base, m)
                    assert float(rows[name][f"{key}_diff"]) == pytest.approx(diff, rel=1e-12, abs=1e-15)
                    assert rows[name][f"{key}_p"] == ""
            _check_test_metrics_by_hand(cell)
    assert paired == 3
    assert _rows(os.path.join(report, "results_margins.csv"))["lambda1_m0.3"]["baseline"] == "margins_bce"
    record = json.load(open(os.path.join(report, "run_record.json")))
    assert record["seeds"] == [SEED] and set(record["datasets"]) == {"noise0"}


def test_cells_apply_their_settings(experiment):
    out, data, _, _ = experiment
    store = Store(out)
    cfg = {n: store.cell_result(Cell("pwiser", n, SEED))["run"]["config"] for n in ONLY}
    assert cfg["mmoe_bce"]["model"]["loss"]["pwiser_tasks"] == []
    assert cfg["mmoe_pwiser"]["model"]["loss"]["pwiser_tasks"] == ["ctr", "cvr"]
    m = cfg["lambda1_m0.3"]["model"]["loss"]
    assert (m["lam"], m["m1"], m["m2"]) == (1.0, 0.3, 0.6)
    assert cfg["mmoe_bce"]["data"]["dir"] == data and cfg["margins_bce"]["data"]["dir"] == data
    # The noise sweep trains on its own simulated funnel, at its noisy-click share.
    noise_dir = cfg["noise0_bce"]["data"]["dir"]
    assert noise_dir != data and noise_dir == os.path.join(out, "pwiser_data", "noise0", "data")
    truth = json.load(open(os.path.join(out, "pwiser_data", "noise0", "made.json")))["truth"]
    assert truth["noisy_click_share"] == 0.0 and truth["rows"] == 1500
    hist = store.cell_result(Cell("pwiser", "mmoe_pwiser", SEED))["run"]
    assert hist["train"]["train_steps"] == 4


def test_rerun_computes_nothing(experiment):
    out, data, cfg, _ = experiment
    lines = []
    again = run_protocol("pwiser", data, [SEED], out, cfg, Options(values=(0.0,), buckets=4), only=ONLY,
                         printer=lines.append)
    assert again["computed"] == 0 and again["skipped"] == 6
    # The sweep's datasets are reused, not simulated and prepared again.
    assert any(line.startswith("pwiser data: reusing") for line in lines)
    assert not any("funnel exposures" in line for line in lines)


# ------------------------------------------------------------------------------------------------ pure logic


def test_settings_and_parts():
    full = pwiser_protocol.PROTOCOL.settings(Options())
    grid = pwiser.settings_of_part(full, "grid")
    assert len(grid) == 2 * len(pwiser.ARCHITECTURES)
    assert len(pwiser.settings_of_part(full, "noise")) == 2 * len(pwiser.NOISE_SHARES)
    assert len(pwiser.settings_of_part(full, "margins")) == 1 + len(pwiser.LAMBDAS) * len(pwiser.MARGINS)
    quick = pwiser_protocol.PROTOCOL.settings(Options(quick=True))
    assert [s.name for s in pwiser.settings_of_part(quick, "noise")] == [
        "noise0_bce", "noise0_pwiser", "noise0.3_bce", "noise0.3_pwiser", "noise0.6_bce", "noise0.6_pwiser"]
    for s in full:  # every PWiseR setting is paired with the BCE setting of its architecture and data
        if s.params["method"] != "BCE":
            base = next(b for b in full if b.name == s.baseline)
            assert base.params["method"] == "BCE" and base.dataset == s.dataset
            assert base.params["architecture"] == s.params["architecture"]
    assert pwiser.part_of("lambda0.1_m0.2") == "margins" and pwiser.part_of("noise0.3_bce") == "noise"
    assert pwiser.part_of("esmm_pwiser") == "grid"
    with pytest.raises(ValueError, match="`part` must be one of"):
        pwiser.settings_of_part(full, "nope")
    only = selected_settings(pwiser_protocol.PROTOCOL, Options(values=(0.5,)), ["noise0.5_bce", "esmm_bce"])
    assert [(s.name, s.dataset) for s in only] == [("esmm_bce", None), ("noise0.5_bce", "noise0.5")]


def test_method_overrides_validate():
    esmm = load_config(None, pwiser.method_overrides("esmm", "pwiser", lam=0.3, m1=0.05, m2=0.1))
    assert esmm.model.loss.pwiser_tasks == ["ctr", "ctcvr"] and esmm.model.loss.lam == 0.3
    single = load_config(None, pwiser.method_overrides("single_task", "pwiser"))
    assert single.model.task == "ctr" and single.model.loss.pwiser_tasks == ["ctr"]
    for arch in ("shared_bottom", "mmoe", "ple"):
        assert load_config(None, pwiser.method_overrides(arch, "bce")).model.loss.pwiser_tasks == []
    with pytest.raises(ValueError, match="`method` must be one of"):
        pwiser.method_overrides("mmoe", "focal")


def test_narrow_copy(tmp_path):
    from tfrec.features import ALIEXPRESS_COLUMNS

    src = tmp_path / "a.csv"
    row = [str(i) for i in range(len(ALIEXPRESS_COLUMNS))]
    src.write_text(",".join(ALIEXPRESS_COLUMNS) + "\n" + ",".join(row) + "\n")
    n = pwiser_data.narrow_copy(str(src), str(tmp_path / "b.csv"))
    header, line = (tmp_path / "b.csv").read_text().splitlines()
    assert n == 1 and header.split(",") == list(pwiser_data.NARROW_COLUMNS.values())
    assert line.split(",") == [row[ALIEXPRESS_COLUMNS.index(c)] for c in pwiser_data.NARROW_COLUMNS]
    (tmp_path / "c.csv").write_text("click,conversion\n1,0\n")
    with pytest.raises(ValueError, match="has no column 'categorical_1'"):
        pwiser_data.narrow_copy(str(tmp_path / "c.csv"), str(tmp_path / "d.csv"))


def test_cells_read_the_data_at_beta_pos_1(tmp_path):
    # Every setting resets data.beta_pos to 1.0: no KDD 2024 down-weighting in the CTR loss or the metrics.
    for s in pwiser_protocol.PROTOCOL.settings(Options()):
        assert load_config(None, list(s.overrides)).data.beta_pos == 1.0, s.name
    # A dataset prepared with beta_pos 0.5 (its written weight is 0.5 on clicks) reads with weight 1 everywhere.
    from tests.support.multitask_files import ALICCP_HEADER, aliccp_lines
    from pipelines.multitask import run as prepare

    good, _ = aliccp_lines()
    src = tmp_path / "ccp.csv"
    src.write_text(ALICCP_HEADER + "\n" + "\n".join(good * 10) + "\n")
    out = str(tmp_path / "prepared")
    prepare(load_config(None, [f"prepare.inputs=['{src}']", f"prepare.output='{out}'", "prepare.input_format=aliccp",
                               "prepare.beta_pos=0.5", "prepare.split_ratios=[1.0, 0.0, 0.0]",
                               "prepare.num_shards=1", "prepare.min_count=1"]).prepare)
    files, schema = data_lib.split_files(out, "train"), data_lib.load_schema(out)
    _, y, written = next(iter(data_lib.make_dataset(files, schema, 64, training=False)))
    assert y.shape[1] == 2 and set(written.numpy()[y.numpy()[:, 0] == 1]) == {0.5}  # as prepared
    _, y, w = next(iter(data_lib.make_dataset(files, schema, 64, training=False, beta_pos=1.0)))
    assert w.shape == y.shape[:1] and set(w.numpy().tolist()) == {1.0}
    _, y, w = next(iter(data_lib.make_dataset(files, schema, 64, training=False, beta_pos=0.25)))
    np.testing.assert_array_equal(w.numpy(), np.where(y.numpy()[:, 0] == 1, 0.25, 1.0).astype(np.float32))
