"""`tfrec experiment --alpha`: the combined losses' alpha from the command line reaches each cell (its recorded
params, its run's config, the results table), and a `model.loss.params` override that the cells would drop is a
one-line usage error pointing to --alpha."""

import csv
import json
import os

import pytest

from tfrec.cli import main
from tfrec.cli.experiment_alpha import parse_alpha
from tfrec.experiments.kdd.protocols import KDD_ALPHAS

TINY = ["--set", "model.dnn_hidden_units=[8]", "--set", "model.num_cross_layers=1", "--set", "model.embedding_dim=4",
        "--set", "data.batch_size=128", "--set", "data.eval_batch_size=256", "--set", "data.shuffle_buffer=0",
        "--set", "train.epochs=1", "--set", "train.replicas=1", "--set", "train.log_every_seconds=0",
        "--set", "train.save_every_steps=0"]


def _cell(out, protocol, setting):
    with open(os.path.join(out, "cells", protocol, setting, "seed-2020", "result.json"), encoding="utf-8") as f:
        return json.load(f)


def _alpha_column(out, protocol):
    with open(os.path.join(out, protocol, "results.csv"), encoding="utf-8", newline="") as f:
        return {row["setting"]: row.get("param_alpha", "") for row in csv.DictReader(f)}


def test_alpha_per_loss_reaches_the_cells(tiny_dataset, tmp_path, capsys):
    out = str(tmp_path / "exp")
    code = main(["experiment", "losses", "--data", tiny_dataset, "--seeds", "1", "--out", out, "--buckets", "4",
                 "--settings", "combined_pair,jrc", "--alpha", "combined_pair=0.35,jrc=0.45"] + TINY)
    assert code == 0, capsys.readouterr().err
    for setting, alpha in (("combined_pair", 0.35), ("jrc", 0.45)):
        cell = _cell(out, "losses", setting)
        assert cell["params"]["alpha"] == alpha
        assert cell["run"]["config"]["model"]["loss"]["params"]["alpha"] == alpha
        assert cell["run"]["config"]["model"]["loss"]["name"] == setting
    column = _alpha_column(out, "losses")
    assert float(column["combined_pair"]) == 0.35 and float(column["jrc"]) == 0.45
    with open(os.path.join(out, "losses", "run_record.json"), encoding="utf-8") as f:
        assert json.load(f)["options"]["alphas"] == {"combined_pair": 0.35, "jrc": 0.45}


def test_one_alpha_for_every_loss_in_sparsity(tiny_dataset, tmp_path, capsys):
    out = str(tmp_path / "exp")
    code = main(["experiment", "sparsity", "--data", tiny_dataset, "--seeds", "1", "--out", out, "--buckets", "4",
                 "--values", "0.1", "--settings", "combined_pair_beta0.1", "--alpha", "0.55"] + TINY)
    assert code == 0, capsys.readouterr().err
    cell = _cell(out, "sparsity", "combined_pair_beta0.1")
    assert cell["params"]["alpha"] == 0.55  # the table's 0.7 at beta_pos 0.1 is replaced
    assert cell["run"]["config"]["model"]["loss"]["params"]["alpha"] == 0.55
    assert cell["run"]["config"]["data"]["beta_pos"] == 0.1


def test_parse_alpha():
    assert parse_alpha("0.7") == {loss: 0.7 for loss in KDD_ALPHAS}
    assert parse_alpha("combined_pair=0.7, jrc=0.4") == {"combined_pair": 0.7, "jrc": 0.4}
    assert parse_alpha("0.8,jrc=0.4") == {**{loss: 0.8 for loss in KDD_ALPHAS}, "jrc": 0.4}
    assert parse_alpha("rcr=0,combined_list=1") == {"rcr": 0.0, "combined_list": 1.0}


@pytest.mark.parametrize("argv, message", [
    (["--set", "model.loss.params.alpha=0.3"],
     "model.loss.params.alpha does not reach the cells of losses: each cell sets its loss's params; use --alpha"),
    (["--set", "model.loss.name=combined_pair", "--set", "model.loss.params.alpha=0.3"],
     "model.loss.params.alpha does not reach the cells of losses"),
    (["--set", "model.loss.params={alpha: 0.3}"], "use --alpha 0.7 or --alpha combined_pair=0.7,jrc=0.4"),
    (["--set", "model.loss.params.pairing=local"], "model.loss.params.pairing does not reach the cells of losses"),
    (["--alpha", "1.5"], "--alpha values must be in [0, 1]"),
    (["--alpha", "nan"], "--alpha values must be in [0, 1]"),
    (["--alpha", "focal=0.3"], "no loss 'focal' takes the KDD alpha; known: combined_list, combined_pair, jrc, rcr"),
    (["--alpha", "combined_pair=x"], "'x' is not a number"),
    (["--alpha", "0.5,0.6"], "two values for every loss"),
    (["--alpha", "jrc=0.3,jrc=0.4"], "names jrc twice"),
    (["--alpha", "0.5,"], "empty entry"),
])
def test_usage_errors_are_one_line(tiny_dataset, tmp_path, capsys, argv, message):
    code = main(["experiment", "losses", "--data", tiny_dataset, "--out", str(tmp_path / "exp")] + argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "exp").exists()  # nothing ran


@pytest.mark.parametrize("protocol, alpha, message", [
    ("focal", "0.5", "--alpha=0.5 changes no setting of focal"),
    ("alpha", "0.5", "the alpha protocol sweeps alpha with --values"),
    ("sparsity", "jrc=0.4", "changes no setting of sparsity"),
    ("sparsity", "combined_pair=0.6,jrc=0.4", "--alpha names jrc, which sparsity does not train"),
])
def test_alpha_that_changes_nothing_is_an_error(tiny_dataset, tmp_path, capsys, protocol, alpha, message):
    code = main(["experiment", protocol, "--data", tiny_dataset, "--out", str(tmp_path / "exp"), "--alpha", alpha])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_config_file_loss_params_are_an_error(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  loss:\n    name: combined_pair\n    params: {alpha: 0.2}\n", encoding="utf-8")
    code = main(["experiment", "findings", "--data", tiny_dataset, "--out", str(tmp_path / "exp"),
                 "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2 and "model.loss.params.alpha does not reach the cells of findings" in err, err
