"""The funnel simulator: deterministic, conversions only after clicks, the noisy-click share as configured,
files in the exact AliExpress layout (they parse with the AliExpress parser)."""

import hashlib
import json

import numpy as np
import pytest

from pipelines.multitask.parse import ALIEXPRESS, Row, file_layout, is_header, parse_line
from tfrec.config import ConfigError, load_config
from tfrec.features import ALIEXPRESS_COLUMNS
from tfrec.simulation import simulate_funnel

ROWS = 20_000


def _cfg(path, *extra, rows=ROWS):
    return load_config(None, ["simulation.kind=funnel", f"simulation.rows={rows}", f"simulation.output={path}",
                              "simulation.seed=7", *extra]).simulation


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def funnel(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("funnel") / "aliexpress.csv")
    return simulate_funnel(_cfg(path, "simulation.funnel.noisy_click_share=0.4")), path


def _table(path):
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    layout, has_header = file_layout(ALIEXPRESS, lines[0], path)
    rows = [parse_line(line, layout) for line in lines[1:]]
    return lines, layout, has_header, rows


def test_files_parse_with_the_aliexpress_loader(funnel):
    result, path = funnel
    lines, layout, has_header, rows = _table(path)
    assert has_header and lines[0].decode() == ",".join(ALIEXPRESS_COLUMNS) and is_header(lines[0], layout)
    assert len(rows) == ROWS and all(type(r) is Row for r in rows)
    assert all(len(line.split(b",")) == len(ALIEXPRESS_COLUMNS) for line in lines[1:])
    with open(result.meta_path) as f:
        meta = json.load(f)
    assert meta["rows"] == ROWS and meta["format"] == "aliexpress_csv"


def test_conversions_only_after_clicks_and_noisy_share(funnel):
    result, path = funnel
    _, _, _, rows = _table(path)
    click = np.array([r.click for r in rows])
    conv = np.array([r.conversion for r in rows])
    truth = np.genfromtxt(result.truth_path, delimiter=",", names=True)
    noisy = truth["noisy_click"].astype(bool)
    assert np.all(conv <= click)  # conversions only after clicks
    assert not np.any(conv[noisy]) and np.all(click[noisy] == 1)  # noisy clicks are clicks that never convert
    share = noisy.sum() / click.sum()
    # ~3000 clicks: the binomial standard deviation of the share is ~0.009.
    assert share == pytest.approx(0.4, abs=0.035) and result.noisy_click_share == pytest.approx(share)
    assert click.mean() == pytest.approx(result.click_rate) and result.click_rate == pytest.approx(
        0.1 / 0.6, abs=0.02)  # genuine rate 0.1 plus the noisy clicks: 0.1 / (1 - 0.4) in expectation
    # Conversions follow the genuine-click propensity, noisy clicks do not: the truth AUCs are informative.
    assert result.truth_ctr_auc > 0.6 and result.truth_cvr_auc > 0.6


def test_deterministic_and_seeded(funnel, tmp_path):
    result, path = funnel
    again = simulate_funnel(_cfg(str(tmp_path / "a.csv"), "simulation.funnel.noisy_click_share=0.4"))
    assert _digest(again.output_path) == _digest(path) and _digest(again.truth_path) == _digest(result.truth_path)
    other = simulate_funnel(_cfg(str(tmp_path / "b.csv"), "simulation.funnel.noisy_click_share=0.4",
                                 "simulation.seed=8", rows=500))
    with open(other.output_path) as f, open(path) as g:
        assert f.readlines()[1:50] != g.readlines()[1:50]


def test_no_noise_and_config_errors(tmp_path):
    clean = simulate_funnel(_cfg(str(tmp_path / "c.csv"), "simulation.funnel.noisy_click_share=0", rows=2000))
    assert clean.noisy_click_share == 0.0
    for override, needle in [("simulation.funnel.noisy_click_share=1.0", "noisy_click_share"),
                             ("simulation.funnel.click_rate=0", "click_rate"),
                             ("simulation.funnel.users=0", "users"),
                             ("simulation.kind=cascade", "simulation.kind")]:
        with pytest.raises(ConfigError, match=needle):
            _cfg(str(tmp_path / "d.csv"), override)
