"""docs/results/*.md: every number equals the committed run records it came from.

Two checks per document: (1) rendering the records again (``tfrec.experiments.core.results_doc.render``) gives the same
numbers, one by one, and the same text (an edited number, in a table or in the reading, fails); (2) every number
of the two tables is recomputed here from ``cells.json`` with NumPy / SciPy, independently of the generator, to
the digits shown. A last test edits one number of a copy and checks that (1) and (2) catch it."""

import glob
import json
import math
import os
import re
import shutil

import numpy as np
import pytest
from scipy import stats

from tfrec.experiments.core.results_doc import render
from tests.support import ROOT as REPO_ROOT

ROOT = os.path.join(REPO_ROOT, "docs", "results")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
DOCS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "*.md")))


def test_there_are_reference_results():
    assert DOCS, f"no document under {ROOT}"
    for name in DOCS:
        for f in ("cells.json", "record.json", "reading.md"):
            assert os.path.exists(os.path.join(ROOT, name, f)), (name, f)


def check_rendering(root, name):
    with open(os.path.join(root, name + ".md"), encoding="utf-8") as f:
        text = f.read()
    again = render(name, root)
    got, want = NUMBER.findall(text), NUMBER.findall(again)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{name}.md: number {i} is {g}, the records give {w}"
    assert len(got) == len(want), f"{name}.md has {len(got)} numbers, the records give {len(want)}"
    assert text == again, f"{name}.md differs from its rendering (python -m tfrec.experiments.core.results_doc render)"


def _close(shown, value, what):
    """``shown`` (the document's text) is ``value`` to the digits shown."""
    if shown == "n/a":
        assert value is None or not math.isfinite(value), what
        return
    if shown.endswith("%"):
        shown, value = shown[:-1], 100 * value
    m = NUMBER.fullmatch(shown)
    assert m, (shown, what)
    mantissa = shown.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(shown.split("e")[1]) if "e" in shown else 0
    if "e" not in shown and "." not in shown:  # %.3g may print an integer-looking number
        decimals = 0
    tol = 0.5 * 10.0 ** (exponent - decimals) * (1 + 1e-9)
    assert abs(float(shown) - value) <= tol, f"{what}: shown {shown}, records give {value!r}"


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(lines, header_start):
    """Every table whose header line starts with ``header_start``: (header cells, rows of cells)."""
    out = []
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            out.append((_cells(line), rows))
    return out


def check_numbers(root, name):
    folder = os.path.join(root, name)
    cells = json.load(open(os.path.join(folder, "cells.json"), encoding="utf-8"))
    record = json.load(open(os.path.join(folder, "record.json"), encoding="utf-8"))
    shown = record["metrics"]["shown"]  # the metric definitions the document was recorded with
    metrics = [m["key"] for m in shown]
    ratio_of = {m["key"]: m.get("ratio") for m in shown}
    lines = open(os.path.join(root, name + ".md"), encoding="utf-8").read().splitlines()
    by = {}
    for c in cells:
        by.setdefault(c["setting"], {})[c["seed"]] = c
    label = {m["label"]: m["key"] for m in shown}
    values = [t for t in _tables(lines, "| setting |") if t[0][1] != "vs"]
    assert values, f"{name}.md has no values table"
    tabled = []
    for header, rows in values:
        assert [r[0] for r in rows] == list(by), "one row per recorded setting, in order"
        at = header.index("seeds")
        for setting, r in zip(by, rows):
            assert int(r[at]) == len(by[setting])
            for j, m in enumerate(label[h] for h in header[at + 1:]):
                x = np.array([v for v in (c["metrics"][m] for c in by[setting].values()) if v is not None],
                             np.float64)
                mean, std = r[at + 1 + j].split(" ± ")
                _close(mean, float(np.mean(x)) if len(x) else None, f"{setting} {m} mean")
                _close(std, float(np.std(x, ddof=1)) if len(x) > 1 else None, f"{setting} {m} std")
        tabled += [label[h] for h in header[at + 1:]]
    assert tabled == metrics, "the values tables show every recorded table metric once, in order"
    ((_, compared),) = _tables(lines, "| setting | vs |")
    def paired(setting, base, m):
        return any(by[setting][s]["metrics"][m] is not None and by[base][s]["metrics"][m] is not None
                   for s in set(by[setting]) & set(by[base]))

    expected_rows = [(s, m) for s, cs in by.items() for base in [next(iter(cs.values()))["baseline"]]
                     if base for m in metrics if paired(s, base, m)]
    assert [(r[0], label[r[2]]) for r in compared] == expected_rows
    for r in compared:
        setting, base, m = r[0], r[1], label[r[2]]
        assert next(iter(by[setting].values()))["baseline"] == base
        seeds = sorted(s for s in set(by[setting]) & set(by[base])
                       if by[setting][s]["metrics"][m] is not None and by[base][s]["metrics"][m] is not None)
        a = np.array([by[setting][s]["metrics"][m] for s in seeds], np.float64)
        b = np.array([by[base][s]["metrics"][m] for s in seeds], np.float64)
        d = a - b
        diff, diff_std = r[3].split(" ± ")
        _close(diff, float(d.mean()), f"{setting} {m} diff")
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else None
        _close(diff_std, sd, f"{setting} {m} diff std")
        _close(r[4], float(d.mean() / sd) if sd else None, f"{setting} {m} d_z")
        res = stats.ttest_rel(a, b) if len(d) > 1 and np.any(d != 0) else None
        _close(r[5], float(res.statistic) if res else None, f"{setting} {m} t")
        _close(r[6], float(res.pvalue) if res else None, f"{setting} {m} p")
        if ratio_of[m]:
            ma = np.mean([c["metrics"][m] for c in by[setting].values()])
            mb = np.mean([c["metrics"][m] for c in by[base].values()])
            ratio = ma / mb - 1 if ratio_of[m] == "lift" else 1 - ma / mb
            _close(r[7], float(ratio), f"{setting} {m} ratio")
        else:
            assert r[7] == ""
    runs = record["invocations"]
    assert record["wall_seconds"] == pytest.approx(sum(x["wall_seconds"] for x in runs), rel=1e-12)
    load_log = os.path.join(folder, "host_load.log")
    if os.path.exists(load_log) and record.get("host_load"):
        loads = [float(line.split()[1]) for line in open(load_log, encoding="utf-8") if line.strip()]
        assert record["host_load"] == {"samples": len(loads), "min": min(loads), "max": max(loads),
                                       "mean": pytest.approx(float(np.mean(loads)), rel=1e-12)}


@pytest.mark.parametrize("name", DOCS)
def test_document_renders_from_its_records(name):
    check_rendering(ROOT, name)


@pytest.mark.parametrize("name", DOCS)
def test_table_numbers_recomputed_from_the_cells(name):
    check_numbers(ROOT, name)


@pytest.mark.parametrize("name", DOCS)
def test_an_edited_number_is_caught(name, tmp_path):
    shutil.copytree(os.path.join(ROOT, name), tmp_path / name)
    text = open(os.path.join(ROOT, name + ".md"), encoding="utf-8").read()
    lines = text.splitlines()
    header, rows = next(t for t in _tables(lines, "| setting |") if t[0][1] != "vs")
    first = rows[0]
    row = next(line for line in lines if line.startswith("| " + " | ".join(first[:3])))
    mean = first[header.index("seeds") + 1].split(" ± ")[0]  # the first metric's mean of the first setting
    edited = mean[:-1] + str((int(mean[-1]) + 1) % 10)  # last digit + 1
    (tmp_path / (name + ".md")).write_text(text.replace(row, row.replace(mean, edited, 1)), encoding="utf-8")
    with pytest.raises(AssertionError, match="number"):
        check_rendering(str(tmp_path), name)
    with pytest.raises(AssertionError, match="shown"):
        check_numbers(str(tmp_path), name)


def test_versus_is_the_paired_comparison_of_any_two_settings():
    from tfrec.experiments.core.registry import Metric
    from tfrec.experiments.core.results_text import context

    rng = np.random.default_rng(0)
    cells = [{"setting": s, "seed": seed, "params": {"method": s}, "baseline": None if s == "a" else "a",
              "metrics": {"m": float(rng.normal())}, "epochs_run": 3, "best_epoch": 2, "train_seconds": 60.0}
             for s in ("a", "b", "c") for seed in range(4)]
    ctx = context(cells, {}, [Metric("m", "m", ("m",), "higher")])
    of = {s: np.array([c["metrics"]["m"] for c in cells if c["setting"] == s]) for s in ("b", "c")}
    res = stats.ttest_rel(of["c"], of["b"])
    got = ctx["versus"]["c|b/m"]
    assert got["diff"] == pytest.approx(float(np.mean(of["c"] - of["b"])), rel=1e-12)
    assert got["p"] == pytest.approx(float(res.pvalue), rel=1e-9) and got["t"] == pytest.approx(float(res.statistic))
    assert "{versus[c|b/m][diff]:+.3f}".format_map(ctx) == f"{np.mean(of['c'] - of['b']):+.3f}"
    with pytest.raises(KeyError, match="settings"):
        ctx["versus"]["c|zz/m"]


def test_hccp_documents_record_its_tables_metrics_from_the_run():
    from tfrec.experiments.core.registry import get as protocol

    run = {"test": {"ISH@40": 0.2, "ISH@5": 0.1, "ASH@5": 0.3, "NDCG@5": 0.4, "MAP@5": 0.5, "AUC_click": 0.8,
                    "octile_ISH@40": [0.1, 0.2]}, "beta_end": 0.01}
    shown, recorded = protocol("hccp").results_metrics_of(run)
    assert [m.key for m in shown] == ["ISH@5", "ISH@40", "ASH@5", "MAP@5", "NDCG@5", "AUC_click", "beta_end"]
    assert [m.path for m in shown][0] == ("test", "ISH@5") and recorded[1].path == ("history", "beta", 0)
    shown, recorded = protocol("losses").results_metrics_of({})
    assert [m.key for m in shown] == ["auc", "logloss", "train_bce", "grad_neg"]
    assert [m.key for m in recorded] == ["valid_logloss", "train_bce_last", "auc_calibrated", "logloss_calibrated"]


def test_training_facts_of_one_model_and_of_a_cell_of_two():
    from tfrec.experiments.core.results_doc import training_facts
    from tfrec.experiments.core.results_text import context

    one = {"train": {"epochs_run": 4, "best_epoch": 2, "wall_seconds": 50.0}, "train_seconds": 55.0}
    assert training_facts(one) == (4, 2, 55.0)  # the cell's own timing first
    # PWiseR's multi-task cell: no train_seconds of its own, the fit's wall seconds instead
    assert training_facts({"train": {"epochs_run": 6, "best_epoch": 4, "wall_seconds": 30.5}}) == (6, 4, 30.5)
    # single-task learning: a CTR and a CVR model, each with its own summary
    two = {"train": {"ctr": {"epochs_run": 5, "best_epoch": 3, "wall_seconds": 20.0},
                     "cvr": {"epochs_run": 9, "best_epoch": 7, "wall_seconds": 40.0}}}
    assert training_facts(two) == ([5, 9], [3, 7], 60.0)
    assert training_facts({"test": {}}) == (None, None, None)
    cells = [{"setting": "a", "seed": 1, "params": {}, "baseline": None, "metrics": {}, "epochs_run": 4,
              "best_epoch": 2, "train_seconds": 55.0},
             {"setting": "b", "seed": 1, "params": {}, "baseline": None, "metrics": {}, "epochs_run": [5, 9],
              "best_epoch": [3, 7], "train_seconds": 60.0}]
    got = context(cells, {}, [])["cells"]
    assert (got["epochs_min"], got["epochs_max"], got["best_epoch_min"], got["best_epoch_max"]) == (4, 9, 2, 7)


def test_findings_documents_record_what_findings_1_and_3_read():
    from tfrec.experiments.core.registry import get as protocol, metric_value

    shown, recorded = protocol("findings").results_metrics_of({})
    assert [m.key for m in recorded] == ["auc_calibrated", "logloss_calibrated", "valid_logloss_epoch1", "train_bce_epoch2",
                                         "pred_neg", "effective_positive_rate", "global_batch"]
    run = {"history": {"val_weighted_logloss": [0.13, 0.12, 0.125]}, "train": {"global_batch_size": 4096},
           "test": {"mean_prediction_negatives": 0.03, "effective_positive_rate": 0.034},
           "train_bce": {"per_epoch": {"1": 0.15, "2": 0.098, "3": 0.09}}}
    assert [metric_value(run, m) for m in recorded[2:]] == [0.13, 0.098, 0.03, 0.034, 4096]
    # the other KDD protocols record only RESULTS_EXTRA besides their tables, contrastive also the parameters'
    # gradient norm (its auxiliary loss does not act on the logit)
    assert "pred_neg" not in [m.key for m in protocol("alpha").results_metrics_of({})[1]]
    recorded = protocol("contrastive").results_metrics_of({})[1]
    assert [m.key for m in recorded][-1] == "grad_norm_global"
    assert metric_value({"gradients": {"grad_norm_global_epoch1": 0.2}}, recorded[-1]) == 0.2
