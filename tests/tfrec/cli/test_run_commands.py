"""The commands that load a finished run, as a user drives them. A multi-task run on Ali-CCP data (feature
columns named `101`, `205`, ...): `tfrec train` with a non-default MMoE under 2 replicas, then `tfrec evaluate` and
`tfrec export --validate` without repeating the architecture (it comes from the run's config.yaml); a
contradicting --set is a one-line usage error; the logged per-task validation AUCs are the exact ones `evaluate`
reports; a failed validation publishes nothing. A DCN V2 run of a non-default size: `calibration` and `evaluate`
without repeating its size."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import export
import export.validate  # noqa: F401 - the module, for monkeypatching
from tests.support.multitask_files import prepare_aliccp_funnel
from tfrec.cli import main
from tfrec.config import load_config
from tfrec.evaluate import evaluate, predict_split
from tfrec.train import load_trained_model

#: A non-default architecture: each key differs from the model section's default.
ARCHITECTURE = ["model.name=mmoe", "model.num_experts=3", "model.expert_units=[6]", "model.tower_units=[5]",
                "model.embedding_dim=3", "model.loss.pwiser_tasks=[ctr, cvr]", "model.dropout=0"]
TRAINING = ["data.batch_size=64", "data.eval_batch_size=256", "data.shuffle_buffer=0", "train.epochs=1",
            "train.steps_per_epoch=3", "train.log_every_seconds=0", "train.replicas=2"]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("aliccp_run")
    data = prepare_aliccp_funnel(str(root))
    model_dir = str(root / "run")
    assert main(["train", "--data", data, "--model-dir", model_dir, *_sets(ARCHITECTURE + TRAINING)]) == 0
    return data, model_dir


def _cfg(data, model_dir, *extra):
    return load_config(None, [f"data.dir={data}", f"train.model_dir={model_dir}", *extra])


def test_logged_validation_aucs_are_the_exact_per_task_aucs(run):
    data, model_dir = run
    with open(os.path.join(model_dir, "train_summary.json")) as f:
        history = json.load(f)["history"]
    model = load_trained_model(_cfg(data, model_dir))
    report = evaluate(_cfg(data, model_dir, "data.eval_batch_size=256"), "valid", model=model,
                      output=os.path.join(model_dir, "check.json"))
    p, y, _ = predict_split(model, data, "valid", 256, outputs=("ctr", "cvr"))
    clicked = y[:, 0] == 1
    assert history["val_ctr_auc"][0] == pytest.approx(roc_auc_score(y[:, 0], p["ctr"]), abs=1e-6)
    assert history["val_cvr_auc"][0] == pytest.approx(roc_auc_score(y[clicked, 1], p["cvr"][clicked]), abs=1e-6)
    assert "val_ctcvr_auc" not in history  # MMoE outputs ctr and cvr only
    for task in ("ctr", "cvr"):
        assert history[f"val_{task}_auc"][0] == pytest.approx(report[f"{task}_auc"], abs=1e-6), task
    assert history["val_auc"][0] == pytest.approx(report["ctr_auc"], abs=1e-6)  # the first task's, monitored
    assert history["val_logloss"][0] == pytest.approx(report["ctr_logloss"], abs=1e-6)


def test_evaluate_takes_the_architecture_from_the_run(run, capsys):
    data, model_dir = run
    assert main(["evaluate", "--data", data, "--model-dir", model_dir, "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "ctr_auc" in out and "cvr_auc" in out and "ctcvr_auc" in out
    with open(os.path.join(model_dir, "metrics.json")) as f:
        recorded = json.load(f)["test"]
    # The numbers of the run's own MMoE (built from the architecture given explicitly).
    explicit = evaluate(_cfg(data, model_dir, *ARCHITECTURE), "test", output=os.path.join(model_dir, "x.json"))
    assert recorded["tasks"] == ["ctr", "cvr", "ctcvr"]
    for key in ("ctr_auc", "cvr_auc", "ctcvr_logloss"):
        assert recorded[key] == pytest.approx(explicit[key], abs=1e-9), key
    # Repeating the saved architecture is allowed.
    assert main(["evaluate", "--data", data, "--model-dir", model_dir, "--split", "test", *_sets(ARCHITECTURE)]) == 0


@pytest.mark.parametrize("command", ["evaluate", "export"])
@pytest.mark.parametrize("setting, key", [("model.name=ple", "model.name"), ("model.num_experts=4", "model.num_experts"),
                                          ("model.tower_units=[64]", "model.tower_units")])
def test_a_setting_that_contradicts_the_run_is_a_usage_error(run, tmp_path, capsys, command, setting, key):
    data, model_dir = run
    extra = ["--base-path", str(tmp_path / "b")] if command == "export" else []
    assert main([command, "--data", data, "--model-dir", model_dir, *extra, "--set", setting]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"tfrec {command}: error: `{key}` contradicts the architecture"), err
    assert not (tmp_path / "b").exists()


def test_export_validate_on_aliccp_without_the_architecture_flags(run, tmp_path, capsys):
    data, model_dir = run
    base = str(tmp_path / "models" / "mmoe")
    assert main(["export", "--data", data, "--model-dir", model_dir, "--base-path", base, "--validate",
                 "--warmup-rows", "4"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "PASSED" in out and "FAIL" not in out, out
    assert f"validation of {os.path.join(base, '1')}" in out
    assert export.list_versions(base) == [1] and sorted(os.listdir(base)) == ["1"]
    # The export answers with the run's model; its predict_raw inputs are the Ali-CCP column names.
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    assert set(loaded.signatures["predict_raw"].structured_input_signature[1]) >= {"arg_101", "arg_205"}
    model = load_trained_model(_cfg(data, model_dir))
    features = {"101": tf.constant(["1", "7"]), "205": tf.constant(["2", ""]), "121": tf.constant(["", "3"]),
                "206": tf.constant(["4", "4"]), "D101_1": tf.constant([0.5, np.nan]), "D205_1": tf.constant([2.0, 1.0])}
    got = loaded.signatures["predict_raw"](**features)
    want = model(features, training=False)
    for task in ("ctr", "cvr"):
        np.testing.assert_allclose(got[task].numpy(), want[task].numpy(), atol=1e-6)


def test_a_failed_validation_publishes_nothing(run, tmp_path, monkeypatch, capsys):
    data, model_dir = run
    broken = tmp_path / "broken_check.py"
    broken.write_text("import sys\nsys.stderr.write('cannot load the SavedModel\\n')\nsys.exit(3)\n")
    monkeypatch.setattr(sys.modules["export.validate"], "FRESH_CHECK", str(broken))
    base = tmp_path / "models" / "mmoe"
    assert main(["export", "--data", data, "--model-dir", model_dir, "--base-path", str(base), "--validate",
                 "--warmup-rows", "4"]) == 1
    captured = capsys.readouterr()
    assert "FAIL  reload in a fresh process" in captured.out and "cannot load the SavedModel" in captured.out
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert err == ["tfrec export: error: validation failed: reload in a fresh process; nothing was published"]
    assert export.list_versions(str(base)) == [] and os.listdir(base) == []  # no version, no staging left


def test_calibration_and_evaluate_of_a_dcn_run_without_repeating_its_size(tiny_dataset, tmp_path, capsys):
    model_dir = str(tmp_path / "dcn")
    size = ["model.dnn_hidden_units=[12]", "model.num_cross_layers=1", "model.embedding_dim=3"]
    assert main(["train", "--data", tiny_dataset, "--model-dir", model_dir, "--epochs", "1", "--replicas", "1",
                 *_sets(size + ["data.batch_size=64", "train.steps_per_epoch=2", "train.log_every_seconds=0"])]) == 0
    out_csv = str(tmp_path / "cal.csv")
    assert main(["calibration", "--data", tiny_dataset, "--model-dir", model_dir, "--buckets", "4",
                 "--output", out_csv]) == 0
    assert main(["evaluate", "--data", tiny_dataset, "--model-dir", model_dir]) == 0
    with open(os.path.join(model_dir, "metrics.json")) as f:
        recorded = json.load(f)["test"]
    explicit = evaluate(_cfg(tiny_dataset, model_dir, *size), "test", output=str(tmp_path / "x.json"))
    assert recorded["auc"] == pytest.approx(explicit["auc"], abs=1e-12)
    assert main(["calibration", "--data", tiny_dataset, "--model-dir", model_dir, "--output", out_csv,
                 "--set", "model.num_cross_layers=3"]) == 2
    assert "`model.num_cross_layers` contradicts the architecture" in capsys.readouterr().err
