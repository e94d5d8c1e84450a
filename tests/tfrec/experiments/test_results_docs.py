"""docs/results/*.md: every number equals the committed run records it came from.

Two checks per document: (1) rendering the records again (``tfrec.experiments.kdd.results_doc.render``) gives the same
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

from tfrec.experiments.core.registry import get
from tfrec.experiments.kdd.metrics import METRICS
from tfrec.experiments.kdd.results_doc import render
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
    assert text == again, f"{name}.md differs from its rendering (python -m tfrec.experiments.kdd.results_doc render)"


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


def _table(lines, header_start):
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def check_numbers(root, name):
    folder = os.path.join(root, name)
    cells = json.load(open(os.path.join(folder, "cells.json"), encoding="utf-8"))
    record = json.load(open(os.path.join(folder, "record.json"), encoding="utf-8"))
    metrics = list(get(record["protocol"]).metric_keys)
    lines = open(os.path.join(root, name + ".md"), encoding="utf-8").read().splitlines()
    by = {}
    for c in cells:
        by.setdefault(c["setting"], {})[c["seed"]] = c
    values = _table(lines, "| setting | method |")
    assert [r[0] for r in values] == list(by), "one row per recorded setting, in order"
    for r in values:
        setting = r[0]
        assert int(r[4]) == len(by[setting])
        for j, m in enumerate(metrics):
            x = np.array([c["metrics"][m] for c in by[setting].values()], np.float64)
            mean, std = r[5 + j].split(" ± ")
            _close(mean, float(np.mean(x)), f"{setting} {m} mean")
            _close(std, float(np.std(x, ddof=1)) if len(x) > 1 else None, f"{setting} {m} std")
    label = {METRICS[m].label: m for m in metrics}
    compared = _table(lines, "| setting | vs |")
    expected_rows = [(s, m) for s, cs in by.items() if next(iter(cs.values()))["baseline"] for m in metrics]
    assert [(r[0], label[r[2]]) for r in compared] == expected_rows
    for r in compared:
        setting, base, m = r[0], r[1], label[r[2]]
        assert next(iter(by[setting].values()))["baseline"] == base
        seeds = sorted(set(by[setting]) & set(by[base]))
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
        if METRICS[m].ratio:
            ma = np.mean([c["metrics"][m] for c in by[setting].values()])
            mb = np.mean([c["metrics"][m] for c in by[base].values()])
            ratio = ma / mb - 1 if METRICS[m].ratio == "lift" else 1 - ma / mb
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


@pytest.mark.parametrize("name", DOCS[:1])
def test_an_edited_number_is_caught(name, tmp_path):
    shutil.copytree(os.path.join(ROOT, name), tmp_path / name)
    text = open(os.path.join(ROOT, name + ".md"), encoding="utf-8").read()
    row = next(line for line in text.splitlines() if re.match(r"\| \S+ \| (BCE|Combined-Pair) \|", line))
    mean = row.split(" | ")[5].split(" ± ")[0]
    edited = mean[:-1] + str((int(mean[-1]) + 1) % 10)  # last digit + 1
    (tmp_path / (name + ".md")).write_text(text.replace(row, row.replace(mean, edited, 1)), encoding="utf-8")
    with pytest.raises(AssertionError, match="number"):
        check_rendering(str(tmp_path), name)
    with pytest.raises(AssertionError, match="shown"):
        check_numbers(str(tmp_path), name)
