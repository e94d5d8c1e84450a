"""Every command in the README runs as written: the contract test of the README's fenced shell blocks.

SLOW: its 21 commands took 360 CPU-seconds in all (user + system of the child processes; 26 minutes of wall time on
a shared 2-core host at load average 8 to 12). One test per block, the blocks in README order in one working
directory, as a user who follows the README top to bottom; each command's wall and CPU time is printed at the end. The README is parsed when the tests are collected, so
a command added to or changed in a shell block is run by the next test run. Blocks of the "Benchmarks" section run in
``tests/test_readme_benchmarks.py`` (their own worker).

What is changed, and only this (each rule below says why):

* sizes (:func:`smaller`): ``--rows``, ``--requests``, ``--seeds``, one training epoch, a thinned sweep;
* a free port instead of 8500, which another process on a shared host may hold;
* inputs that no earlier README command writes (a prepared Criteo dataset and model for the Export and Serving
  blocks, a file of raw Criteo rows, a models.config, the criteo_x1 CSV files) are made first (:data:`PREREQUISITES`), with
  the commands of the README's command table where there is one;
* the commands listed in :data:`NOT_RUN`, and the blocks of the sections in :data:`SECTIONS_NOT_RUN`, with the
  reason each cannot run inside the test suite.
"""

from __future__ import annotations

import math
import os
import re

import pytest

from tests.support.readme_commands import ROOT, Block, CommandFailed, Runner, free_port, shell_blocks

BENCHMARKS = "Benchmarks"
try:
    BLOCKS, PARSE_ERROR = [b for b in shell_blocks() if b.section != BENCHMARKS], None
except ValueError as e:  # a fence that is not closed: reported by the first test
    BLOCKS, PARSE_ERROR = [], str(e)

#: Commands that do not run in the test suite, by their first words, with the reason.
NOT_RUN = {
    ("pip", "install"): ".ci/run runs the README's install commands as written, in fresh virtualenvs (stage 1 "
                        "without constraints, stage 2 with them); installing from inside the suite would change the "
                        "environment under test",
    ("pytest",): "the test suite itself (this test is part of it); .ci/run runs it as written",
    ("docker",): "needs Docker and the tensorflow/serving image, neither of which the test host has (no network)",
    ("tensorflow_model_server",): "stock TF Serving's binary is not installable here; the export tests reload every "
                                  "version in a fresh TensorFlow-only process instead (export --validate)",
}

#: Sections whose blocks do not run in the test suite, with the reason.
SECTIONS_NOT_RUN = {
    "Peers: DCN V2 against DeepCTR and FuxiCTR":
        "it installs two other frameworks (TensorFlow, PyTorch: a few GB) into virtualenvs of their own; "
        "tests/bench/test_bench_peers.py checks that the block is exactly the list `bench_peers.py --setup` runs",
    "TFX":
        "it needs the TFX virtualenv (the tfx extra with constraints-tfx.txt, whose pins differ from the pinned "
        "suite's stack); .ci/run's stage 3 installs it as written and runs tests/pipelines/tfx_native's stock "
        "pipelines there",
}

#: Simulated sizes: large enough for one batch of the command's default batch size (4096 rows; 64 requests).
SIZES = {"--rows": "8000", "--requests": "600", "--seeds": "1"}


def skip_reason(argv):
    for prefix, reason in NOT_RUN.items():
        if tuple(argv[:len(prefix)]) == prefix:
            return reason
    return None


def _set(argv, flag, value):
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]


def smaller(argv, port):
    """``argv`` at a small size (module docstring)."""
    argv = list(argv)
    for flag, value in SIZES.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
    if argv[:2] == ["tfrec", "demo"]:
        _set(argv, "--rows", SIZES["--rows"])
        _set(argv, "--epochs", "1")
    if argv[:2] in (["tfrec", "train"], ["tfrec", "experiment"]):
        argv += ["--set", "train.epochs=1"]
    if argv[:3] == ["tfrec", "experiment", "sparsity"] and "--values" not in argv:
        argv += ["--values", "0.1"]  # the sweep at beta_pos 0.1: 2 of its 12 settings (BCE, Combined-Pair)
    if argv[:2] == ["tfrec", "serve"] and "--port" not in argv:
        argv += ["--port", str(port)]
    return [a.replace("127.0.0.1:8500", f"127.0.0.1:{port}") for a in argv]


# ------------------------------------------------------------------------------------------------ prerequisites


def _criteo_data(run, work):
    if os.path.exists(os.path.join(work, "data")):
        return
    # The command table's `tfrec simulate --out raw/train.txt --rows 1000000` and `tfrec prepare --input raw/*.txt
    # --out data --beta-pos 0.1`, smaller.
    run(["tfrec", "simulate", "--out", "raw/train.txt", "--rows", SIZES["--rows"]])
    run(["tfrec", "prepare", "--input", "raw/*.txt", "--out", "data", "--beta-pos", "0.1"])


def _criteo_model(run, work):
    _criteo_data(run, work)
    if not os.path.exists(os.path.join(work, "runs", "m")):  # the command table's `tfrec train`
        run(["tfrec", "train", "--data", "data", "--model-dir", "runs/m", "--set", "train.epochs=1"])


def _ctr_export(run, work):
    _criteo_model(run, work)  # the Export section's command, to the base path the Serving section serves
    run(["tfrec", "export", "--data", "data", "--model-dir", "runs/m", "--base-path", "exports/ctr"])


def _train_txt(run, work):
    _criteo_data(run, work)  # raw Criteo rows as `tfrec simulate` writes them (Kaggle's train.txt), the first 50
    with open(os.path.join(work, "raw", "train.txt"), encoding="utf-8") as f:
        rows = [next(f) for _ in range(50)]
    with open(os.path.join(work, "train.txt"), "w", encoding="utf-8") as f:
        f.writelines(rows)


def _models_config(run, work):
    from serving.config import write_all
    from serving.manager import ModelSource

    write_all(work, [ModelSource("ctr", os.path.join(work, "exports", "ctr"))])


def _x1_csv(run, work):
    from tfrec.features import CRITEO

    run(["tfrec", "simulate", "--out", "raw_x1/train.txt", "--rows", SIZES["--rows"]])
    with open(os.path.join(work, "raw_x1", "train.txt"), encoding="utf-8") as f:
        lines = [line.rstrip("\n").split("\t") for line in f]
    # x1's numeric columns are normalised floats (the x1 default transform, `none`, uses them as they are): the
    # simulated counts, signed-log and max-scaled per column.
    for j in range(1, 1 + len(CRITEO.dense)):
        logs = [math.copysign(math.log1p(abs(float(r[j]))), float(r[j])) if len(r) > j and r[j] else None
                for r in lines]
        top = max((abs(v) for v in logs if v is not None), default=1.0) or 1.0
        for r, v in zip(lines, logs):
            if v is not None:
                r[j] = repr(v / top)
    header = ",".join(["label", *CRITEO.dense, *CRITEO.categorical])
    cut = [0, int(0.7 * len(lines)), int(0.9 * len(lines)), len(lines)]
    for name, lo, hi in zip(("train", "valid", "test"), cut, cut[1:]):
        with open(os.path.join(work, f"{name}.csv"), "w", encoding="utf-8") as f:
            f.write(header + "\n" + "".join(",".join(r + [""] * (40 - len(r))) + "\n" for r in lines[lo:hi]))


#: (flag, value, commands it is read by) -> how it is made, when a command reads it and no earlier one wrote it.
PREREQUISITES = [
    ("--data", "data", None, _criteo_data),
    ("--model-dir", "runs/m", ("export", "evaluate", "calibration"), _criteo_model),
    ("--base-path", "exports/ctr", ("serve",), _ctr_export),
    ("--input", "train.txt", ("predict",), _train_txt),
    ("--model-config-file", "models.config", ("serve",), _models_config),
    ("--train", "train.csv", ("prepare",), _x1_csv),
]


def make_prerequisites(argv, runner, work, made):
    for flag, value, readers, make in PREREQUISITES:
        if flag not in argv or argv[argv.index(flag) + 1] != value or os.path.exists(os.path.join(work, value)):
            continue
        if readers is not None and argv[1] not in readers:
            continue
        make(lambda a: runner.run(a, timeout=900), work)
        made.append(f"{value} (for `{' '.join(argv)}`)")


# ------------------------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("readme"))
    for name in ("configs", "bench"):  # the README's commands run from the repository root
        os.symlink(os.path.join(ROOT, name), os.path.join(work, name))
    state = {"work": work, "runner": Runner(work), "port": free_port(), "made": [], "skipped": []}
    yield state
    state["runner"].stop_servers()
    print("\nREADME commands (wall time each):\n" + "\n".join(state["runner"].log))
    print("made first: " + "; ".join(state["made"]))
    print("not run: " + "; ".join(state["skipped"]))


def test_the_readme_has_shell_blocks_and_every_fence_closes():
    assert PARSE_ERROR is None, PARSE_ERROR
    names = [b.section for b in BLOCKS]
    assert "Pre-ranking data (HCCP)" in names and "Pre-ranking export (HCCP)" in names, names
    assert all(b.commands for b in BLOCKS), [b.name for b in BLOCKS if not b.commands]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_block_runs_as_written(block: Block, session):
    if block.section in SECTIONS_NOT_RUN:
        pytest.skip(f"README.md:{block.line} ({block.section}) not run: {SECTIONS_NOT_RUN[block.section]}")
    runner, work = session["runner"], session["work"]
    try:
        for argv in block.commands:
            reason = skip_reason(argv)
            if reason is not None:
                session["skipped"].append(f"`{' '.join(argv)}`: {reason}")
                continue
            small = smaller(argv, session["port"])
            make_prerequisites(small, runner, work, session["made"])
            if small[:2] == ["tfrec", "serve"]:
                line = runner.serve(small)
                assert re.match(r"serving \S+ \(versions \[[0-9, ]+\]\) on 127\.0\.0\.1:\d+$", line), line
            else:
                runner.run(small, timeout=900)
    except CommandFailed as e:
        pytest.fail(f"README.md:{block.line} ({block.section}): {e}", pytrace=False)
    finally:
        runner.stop_servers()


def test_rules_name_real_commands():
    """Every NOT_RUN entry and every prerequisite matches a command the README has (no stale rule)."""
    argvs = [argv for b in shell_blocks() for argv in b.commands]
    for prefix in NOT_RUN:
        assert any(tuple(a[:len(prefix)]) == prefix for a in argvs), prefix
    sections = {b.section for b in shell_blocks()}
    assert set(SECTIONS_NOT_RUN) <= sections, set(SECTIONS_NOT_RUN) - sections
    for flag, value, _, _ in PREREQUISITES:
        assert any(flag in a and a[a.index(flag) + 1] == value for a in argvs), (flag, value)
