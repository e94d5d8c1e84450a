"""bench/bench_peers.py's own logic: the shared split files, the test metrics every library is scored with, the
step clock and the table of ratios (the libraries themselves run only in the benchmark)."""

import math
import time

import numpy as np
import pytest

from bench.bench_peers import setup_commands, split_raw
from bench.peers import common, report


def _oracle_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_pairwise_oracle(ties):
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(float)
    s = rng.random(300) + 0.5 * y
    if ties:
        s = np.round(s, 1)  # many equal scores across classes
    assert common.auc(y, s) == pytest.approx(_oracle_auc(y, s), abs=1e-12)


def test_logloss_matches_formula():
    y = np.array([1, 0, 1, 0.0])
    p = np.array([0.9, 0.2, 0.6, 0.5])
    expected = -np.mean([math.log(0.9), math.log(0.8), math.log(0.6), math.log(0.5)])
    assert common.logloss(y, p) == pytest.approx(expected, rel=1e-12)


def test_split_raw_writes_x1_files_with_every_row_once(tmp_path):
    lines = []
    for i in range(20):
        fields = [str(i % 2)] + [str(i)] * 13 + [f"{i:08x}"] * 26
        if i == 3:
            fields = fields[:38]  # a copy that strips trailing empty fields
        lines.append("\t".join(fields))
    raw = tmp_path / "train.txt"
    raw.write_text("\n".join(lines) + "\n")
    counts = split_raw(str(raw), str(tmp_path / "raw"))
    assert counts == {"train": 14, "valid": 4, "test": 2}
    seen = []
    for split in common.SPLITS:
        rows = (tmp_path / "raw" / f"{split}.csv").read_text().splitlines()
        assert rows[0] == ",".join(common.COLUMNS)
        for row in rows[1:]:
            fields = row.split(",")
            assert len(fields) == 40
            seen.append(int(fields[1]))
    assert seen == list(range(20))  # row order kept: train, then valid, then test
    test_rows = (tmp_path / "raw" / "train.csv").read_text().splitlines()
    assert test_rows[4].split(",")[-2:] == ["", ""]  # row 3 padded with empty (missing) fields


def test_step_clock_leaves_out_warmup_and_each_epoch_first_step(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    clock = common.StepClock(warmup_steps=2)
    for epoch, step_times in enumerate([[5.0, 1.0, 1.0, 1.0], [9.0, 2.0, 2.0]]):
        clock.epoch_begin()
        now[0] += 100.0  # validation / epoch boundary: never timed
        for t in step_times:
            now[0] += t
            clock.step_end(10)
    out = clock.summary()
    # epoch 1: steps 1-2 are warm-up, steps 3-4 timed (1 s each); epoch 2: its first step left out, 2 x 2 s timed
    assert out["timed_steps"] == 4
    assert out["examples_per_second"] == pytest.approx(40 / 6.0)
    assert out["epoch_examples_per_second"] == pytest.approx([10.0, 5.0])


def _run(seed, rate, auc_value, rss):
    return {"peak_rss_mb": rss, "peak_tree_pss_mb": rss, "seed": seed,
            "result": {"seed": seed, "train": {"examples_per_second": rate, "examples_per_cpu_second": rate / 2},
                       "test": {"auc": auc_value, "logloss": 0.5, "rows": 100}}}


def test_ratios_and_table():
    prep = {"rc": 0, "wall_seconds": 10.0, "peak_rss_mb": 1.0}
    rows = {
        "tfrec": report.summarize("tfrec", prep, [_run(1, 100.0, 0.80, 500), _run(2, 120.0, 0.81, 600)]),
        "deepctr": report.summarize("deepctr", {**prep, "wall_seconds": 5.0},
                                    [_run(1, 50.0, 0.70, 300), _run(2, 50.0, 0.70, 300)]),
        "fuxictr": report.summarize("fuxictr", None, [], error="its import fails: ModuleNotFoundError"),
    }
    rat = report.ratios(rows)
    assert set(rat) == {"deepctr"}
    assert rat["deepctr"]["examples_per_second"] == pytest.approx(110.0 / 50.0)
    assert rat["deepctr"]["peak_rss"] == pytest.approx(2.0)
    assert rat["deepctr"]["prep_seconds"] == pytest.approx(2.0)
    assert rat["deepctr"]["auc_difference"] == pytest.approx(0.105)
    assert rat["deepctr"]["auc_within_noise"] is False  # 0.105 against a standard error of 0.005
    text = report.markdown(rows, rat, seeds=2)
    assert "| FuxiCTR DCNv2 | not run: its import fails: ModuleNotFoundError |" in text
    assert "| DeepCTR DCN (matrix) | 2.20x | 2.20x | 2.00x | 2.00x | +0.1050 ± 0.0050 | no |" in text


def test_readme_peers_block_is_the_setup_the_bench_runs():
    """The README's peers block (not run by the README contract test: it installs a few GB) is exactly the list of
    commands ``bench_peers.py --setup`` runs, so the one that is run is the one a user reads."""
    from tests.support.readme_commands import shell_blocks

    blocks = [b for b in shell_blocks() if b.section.startswith("Peers")]
    assert len(blocks) == 1, [b.section for b in blocks]
    assert blocks[0].commands == setup_commands(), blocks[0].commands


def test_deepctr_embedded_variant_runs_deepctr_with_numeric_fields_embedded():
    """``deepctr_emb`` is DeepCTR in its own virtualenv and worker, with ``--numeric embedded``; its setup is
    DeepCTR's, made once."""
    import argparse

    from bench.bench_peers import peer_of, prepare_cmd, train_cmd, venv_python

    args = argparse.Namespace(venvs="/v", epochs=2, warmup_steps=10, shards=8)
    cmd = train_cmd("deepctr_emb", args, "/d", "/m", 2021, "/r.json")
    assert cmd[0] == venv_python("/v", "deepctr") == "/v/deepctr/bin/python"
    assert cmd[1].endswith("bench/peers/run_deepctr.py") and cmd[2] == "train"
    assert cmd[-2:] == ["--numeric", "embedded"] and "--numeric" not in train_cmd("deepctr", args, "/d", "/m", 1, "/r")
    assert prepare_cmd("deepctr_emb", args, "/raw", "/d", "/p.json")[1:] == prepare_cmd("deepctr", args, "/raw", "/d",
                                                                                       "/p.json")[1:]
    assert peer_of("fuxictr") == "fuxictr" and "deepctr_emb" in report.LIBRARIES
    assert setup_commands(libraries=["deepctr"]) == setup_commands(libraries=[peer_of("deepctr_emb")])
