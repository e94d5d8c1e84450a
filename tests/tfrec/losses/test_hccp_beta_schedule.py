"""Margin InfoNCE's ``beta`` schedule relative to the run: the derived factor against a NumPy oracle, the fixed
factor of Algorithm 1's literal form, the config's rules, and a small HCCP ablation (HCCP vs HCCP(w/o Margin))
through ``tfrec experiment`` in which ``beta`` ends below 1, is recorded per epoch (history, ``history.csv``,
TensorBoard, the run's results and the report table) and the two variants train differently. The schedule
through ``model.fit`` on 1 and 2 replicas; checkpoints carry ``beta`` (tests/tfrec/losses/test_losses_infonce.py)."""

import csv
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines.hybrid_samples import run as prepare_hybrid
from tfrec.cli import main
from tfrec.config import CascadeConfig, ConfigError, HybridSamplesConfig, ThreeTowerLossConfig, load_config
from tfrec import losses
from tfrec.devices import make_strategy
from tfrec.experiments import Options, run_protocol
from tfrec.experiments.core.store import Cell, Store
from tfrec.losses import MarginInfoNCE
from tfrec.losses.classes.preranking import derived_beta_scale
from tfrec.simulation.cascade import simulate_cascade
from tfrec.train_preranking import BETA_FINAL, BETA_FINAL_AT, beta_schedule, margin_warning


def _advance(loss, n):
    """beta after each of ``n`` steps (Algorithm 1, line 5, as the trainer runs it)."""
    out = []
    for _ in range(n):
        loss.on_train_step_end()
        out.append(float(loss.beta.numpy()))
    return np.array(out)


def _float32_oracle(beta_init, scale, n, floor=None):
    """``beta = max(beta * scale, floor)`` in float32, step by step (NumPy)."""
    beta, out = np.float32(beta_init), []
    for _ in range(n):
        beta = np.float32(beta * np.float32(scale))
        if floor is not None:
            beta = max(beta, np.float32(floor))
        out.append(float(beta))
    return np.array(out)


@pytest.mark.parametrize("beta_init, beta_final, n", [(9999.0, 0.01, 26), (9999.0, 0.01, 131), (5.0, 0.5, 7)])
def test_derived_scale_reaches_beta_final_at_the_set_step_and_stays(beta_init, beta_final, n):
    scale = derived_beta_scale(beta_init, beta_final, n)
    assert scale == pytest.approx((beta_final / beta_init) ** (1.0 / n), rel=1e-12)
    got = _advance(MarginInfoNCE(beta_init=beta_init, scale=scale, beta_final=beta_final), 2 * n)
    closed_form = beta_init * scale ** np.arange(1, 2 * n + 1, dtype=np.float64)
    np.testing.assert_allclose(got[:n], closed_form[:n], rtol=5e-5)
    np.testing.assert_array_equal(got, _float32_oracle(beta_init, scale, 2 * n, floor=beta_final))
    assert got[n - 1] == pytest.approx(beta_final, rel=1e-4)  # reached at step n ...
    assert got[n - 2] > beta_final * 1.1  # ... not before
    assert np.all(got[n:] == np.float32(beta_final))  # and never below it afterwards
    assert np.all(np.diff(got) <= 0)


@pytest.mark.parametrize("replicas", [1, 2])
def test_fit_reaches_beta_final_at_the_set_step(replicas):
    from tests.tfrec.losses.test_losses_infonce import _beta, _build, _fit  # a two-tower model compiled with the loss

    strategy = make_strategy(replicas)
    n = 4
    loss = losses.get("margin_info_nce", beta_init=9999.0, scale=derived_beta_scale(9999.0, 0.01, n),
                      beta_final=0.01)
    model = _build(strategy, loss)
    _fit(model, strategy, steps=n - 1)
    assert _beta(loss) > 0.01 * 1.1
    _fit(model, strategy, steps=1)
    assert _beta(loss) == pytest.approx(0.01, rel=1e-4)
    _fit(model, strategy, steps=3)
    assert [float(v) for v in strategy.experimental_local_results(loss.beta)] == [float(np.float32(0.01))] * replicas


def test_fixed_scale_is_algorithm_1_literal_with_no_floor():
    # beta *= scale in float32 every step, the behaviour before the run-relative schedule existed.
    got = _advance(MarginInfoNCE(beta_init=9999.0, scale=0.999), 300)
    np.testing.assert_array_equal(got, _float32_oracle(9999.0, 0.999, 300))
    assert _advance(MarginInfoNCE(beta_init=1.0, scale=0.5), 20)[-1] == 0.5 ** 20  # no floor
    p = ThreeTowerLossConfig(beta_scale=0.999)
    assert beta_schedule(p, 52) == {"beta_scale": 0.999, "beta_final": None}


def test_schedule_from_the_config():
    scale = beta_schedule(ThreeTowerLossConfig(), 104)  # defaults: 0.01 at half the planned steps
    assert (BETA_FINAL, BETA_FINAL_AT) == (0.01, 0.5)
    assert scale == {"beta_scale": pytest.approx((0.01 / 9999.0) ** (1 / 52), rel=1e-12), "beta_final": 0.01}
    scale = beta_schedule(ThreeTowerLossConfig(beta_final=0.1, beta_final_at=0.25), 100)
    assert scale == {"beta_scale": pytest.approx((0.1 / 9999.0) ** (1 / 25), rel=1e-12), "beta_final": 0.1}
    assert beta_schedule(ThreeTowerLossConfig(), None) == {"beta_scale": 1.0, "beta_final": 0.01}  # inference only
    assert beta_schedule(ThreeTowerLossConfig(beta_init=0.0), 100) == {"beta_scale": 1.0, "beta_final": 0.0}
    assert beta_schedule(ThreeTowerLossConfig(beta_final_at=0.001), 10)["beta_scale"] == pytest.approx(0.01 / 9999.0)


@pytest.mark.parametrize("sets, match", [
    (["model.loss.beta_scale=0.999", "model.loss.beta_final=0.01"], "model.loss.beta_scale.*fixed schedule"),
    (["model.loss.beta_scale=0.999", "model.loss.beta_final_at=0.5"], "model.loss.beta_scale.*fixed schedule"),
    (["model.loss.beta_scale=0"], r"model.loss.beta_scale. must be in \(0, 1\]"),
    (["model.loss.beta_final=0"], "model.loss.beta_final. must be > 0"),
    (["model.loss.beta_final=.inf"], "model.loss.beta_final. must be a finite number"),
    (["model.loss.beta_final_at=0"], r"model.loss.beta_final_at. must be in \(0, 1\]"),
    (["model.loss.beta_final_at=1.5"], r"model.loss.beta_final_at. must be in \(0, 1\]"),
])
def test_config_errors(sets, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["model.name=three_tower"] + sets)


def test_previous_keys_still_set_the_schedule(tmp_path, capsys):
    # The previous release's preranking.beta_* keys are the Three-Tower model's loss keys now: one line per file.
    path = tmp_path / "old.yaml"
    path.write_text("preranking:\n  beta_final: 0.1\n  beta_final_at: 0.25\n  copr_weight: 0.5\n")
    cfg = load_config(str(path))
    assert cfg.model.name == "three_tower"
    assert (cfg.model.loss.beta_final, cfg.model.loss.beta_final_at, cfg.model.loss.beta_scale) == (0.1, 0.25, None)
    assert cfg.model.loss.copr_weight == 0.5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "preranking.beta_final -> model.loss.beta_final" in err[0], err
    assert "preranking.copr_weight -> model.loss.copr_weight" in err[0], err
    with pytest.raises(ConfigError, match="model.loss.beta_scale.*fixed schedule"):
        load_config(None, ["preranking.beta_scale=0.999", "preranking.beta_final=0.01"])


def test_schedule_keys_are_not_model_arguments():
    # The trainer derives the factor from the run (beta_schedule); the section passes no beta schedule of its own.
    kwargs = load_config(None, ["model.name=three_tower", "model.loss.beta_final=0.1"]).model.model_kwargs()
    assert not {"beta_scale", "beta_final", "beta_final_at"} & set(kwargs)
    assert {"copr_weight", "copr_reg_weight", "copr_chunk_size", "copr_relax_units", "rethink_weight",
            "rethink_distill_weight", "beta_init"} <= set(kwargs)


def test_cli_exclusive_settings_are_a_usage_error(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--model-dir", str(tmp_path / "run"), "--set",
               "model.name=three_tower", "--set", "model.loss.beta_scale=0.999", "--set", "model.loss.beta_final=0.01"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "model.loss.beta_scale" in err and len(err.splitlines()) == 1, err


# -- a small HCCP ablation through `tfrec experiment` -------------------------------------------------------------

SEED = 2020
EPOCHS = 2
TINY = ["data.batch_size=16", "data.eval_batch_size=64", "data.shuffle_buffer=0", f"train.epochs={EPOCHS}",
        "train.replicas=1", "train.log_every_seconds=0", "train.save_every_steps=0", "train.early_stop_patience=5",
        "model.name=three_tower", "model.hash_bins=1000", "model.embedding_dim=4", "model.num_experts=2",
        "model.expert_units=[8]", "model.item_units=[8]", "model.cross_units=[4]", "model.output_dim=8",
        "preranking.train_list_size=40", "preranking.eval_list_size=112", "preranking.hit_ks=[5,20]",
        "preranking.consistency_ks=[5,20]", "preranking.octile_k=20", "model.loss.beta_final_at=0.75"]


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    root = tmp_path_factory.mktemp("hccp_beta")
    logs = str(root / "logs")
    simulate_cascade(CascadeConfig(output=logs, requests=120, users=30, items=800, categories=8, retrieved=100,
                                   ranked=40, exposed_min=6, exposed_max=8, seed=3))
    data = str(root / "data")
    prepare_hybrid(HybridSamplesConfig(inputs=[os.path.join(logs, "requests.jsonl")],
                                       items=[os.path.join(logs, "items.jsonl")], output=data,
                                       chunk_boundaries=[5, 10, 20], chunk_rates=[0.5, 0.3, 0.2, 0.1], num_shards=1,
                                       runner="DirectRunner"))
    out = str(root / "exp")
    run_protocol("hccp", data, [SEED], out, load_config(None, TINY), Options(), only=["hccp", "wo_margin"],
                 printer=lambda _: None)
    store = Store(out)
    runs = {s: store.cell_result(Cell("hccp", s, SEED)) for s in ("hccp", "wo_margin")}
    return out, {s: r["run"] for s, r in runs.items()}, {s: store.run_dir(r["fingerprint"]) for s, r in runs.items()}


def _tensorboard_scalars(log_dir, tag):
    values = []
    for path in sorted(glob.glob(os.path.join(log_dir, "train", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag == tag:
                    values.append((event.step, float(tf.make_ndarray(v.tensor))))
    return [v for _, v in sorted(values)]


def test_beta_recorded_per_epoch_and_ends_below_one(ablation):
    out, runs, dirs = ablation
    run = runs["hccp"]
    steps = run["train"]["train_steps"] // EPOCHS  # steps per epoch
    assert run["train"]["epochs_run"] == EPOCHS and steps >= 2
    n = max(1, round(0.75 * EPOCHS * steps))
    expected = _float32_oracle(9999.0, derived_beta_scale(9999.0, 0.01, n), EPOCHS * steps, floor=0.01)
    per_epoch = expected[steps - 1::steps]
    np.testing.assert_allclose(run["history"]["beta"], per_epoch, rtol=1e-6)
    assert per_epoch[0] > 1.0 and run["beta_end"] < 1.0 and run["beta_end"] == pytest.approx(0.01, rel=1e-6)
    with open(os.path.join(dirs["hccp"], "history.csv"), newline="") as f:
        np.testing.assert_allclose([float(r["beta"]) for r in csv.DictReader(f)], per_epoch, rtol=1e-6)
    np.testing.assert_allclose(_tensorboard_scalars(os.path.join(dirs["hccp"], "logs"), "epoch_beta"), per_epoch,
                               rtol=1e-6)
    assert runs["wo_margin"]["beta_end"] is None and "beta" not in runs["wo_margin"]["history"]
    with open(os.path.join(out, "hccp", "results.csv"), newline="") as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    assert float(rows["hccp"]["beta_end_mean"]) == run["beta_end"] and rows["wo_margin"]["beta_end_n"] == "0"
    md = open(os.path.join(out, "hccp", "results.md"), encoding="utf-8").read()
    assert "| HCCP | 1 | 0.01 |" in md and "| HCCP(w/o Margin) | 0 | - |" in md


def test_a_run_stopped_before_beta_came_down_warns():
    cfg = load_config(None, ["model.name=three_tower", "train.epochs=30"])
    # Early stopping after 5 of 30 planned epochs: beta was still 176 (the schedule's 0.5 is epoch 15).
    line = margin_warning(cfg, {"beta": [5000.0, 2000.0, 900.0, 400.0, 175.6]})
    assert line.startswith("warning: Margin InfoNCE's beta ended at 175.6 after 5 of 30 planned epochs")
    assert "model.loss.beta_final_at=0.5" in line and "\n" not in line
    assert margin_warning(cfg, {"beta": [300.0, 0.01]}) is None  # came down
    assert margin_warning(cfg, {"loss": [1.0]}) is None  # no margin loss (HCCP(w/o Margin), the other variants)
    literal = load_config(None, ["model.name=three_tower", "model.loss.beta_scale=0.999"])
    assert margin_warning(literal, {"beta": [9000.0]}) is None  # Algorithm 1's literal factor: the user's choice
    lowered = load_config(None, ["model.name=three_tower", "model.loss.beta_final_at=0.1"])
    assert "model.loss.beta_final_at=0.1" in margin_warning(lowered, {"beta": [50.0]})
    chosen = load_config(None, ["model.name=three_tower", "model.loss.beta_final=5"])
    assert margin_warning(chosen, {"beta": [100.0, 5.0]}) is None  # a final beta above 1, reached: the user's choice
    assert margin_warning(chosen, {"beta": [100.0, 40.0]}).startswith("warning: Margin InfoNCE's beta ended at 40")


def test_ablation_run_whose_beta_came_down_has_no_warning(ablation):
    _, runs, _ = ablation
    assert "margin_warning" not in runs["hccp"]["train"]


def test_hccp_and_without_margin_differ(ablation):
    # With beta annealed to 0.01 the margin acts: the two variants' training losses and test metrics part. With
    # the former fixed 0.999 per step beta stayed near 9,990 over these ~10 steps and the two agreed to 1e-4.
    _, runs, _ = ablation
    a, b = runs["hccp"], runs["wo_margin"]
    keys = [k for k in a["test"] if isinstance(a["test"][k], float) and np.isfinite(a["test"][k])
            and isinstance(b["test"].get(k), float) and np.isfinite(b["test"][k])]
    assert len(keys) >= 10
    assert max(abs(a["test"][k] - b["test"][k]) for k in keys) > 1e-3
