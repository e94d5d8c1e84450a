"""The KDD 2024 protocols' alpha per loss and beta_pos: the authors' published configs (KDD_ALPHAS), the nearest
entry for a beta_pos off the table, and the overrides (Options.alphas; --set for a single run)."""

import pytest

from tfrec.config import load_config
from tfrec.experiments import Options
from tfrec.experiments.core import registry
from tfrec.experiments.kdd.protocols import kdd_alpha

# The authors' config/criteo_x1/*.yaml (SkylerLinn/Understanding-the-Ranking-Loss), written out independently.
COMBINED_PAIR = {1.0: 0.9, 0.8: 0.9, 0.6: 0.7, 0.4: 0.8, 0.2: 0.6, 0.1: 0.7}
JRC = {1.0: 0.3, 0.8: 0.4, 0.6: 0.4, 0.4: 0.4, 0.2: 0.4, 0.1: 0.4}


def _alpha_of(setting):
    values = [o.split("=", 1)[1] for o in setting.overrides if o.startswith("model.loss.params.alpha=")]
    assert len(values) == 1, setting.overrides
    return float(values[0])


def test_sparsity_defaults_are_the_authors_table():
    settings = {s.name: s for s in registry.get("sparsity").settings(Options())}
    for beta, alpha in COMBINED_PAIR.items():
        s = settings[f"combined_pair_beta{beta:g}"]
        assert _alpha_of(s) == alpha and s.params["alpha"] == alpha and s.params["beta_pos"] == beta
        assert not any("alpha" in o for o in settings[f"bce_beta{beta:g}"].overrides)


@pytest.mark.parametrize("beta", sorted(COMBINED_PAIR))
def test_losses_defaults_per_beta(beta):
    settings = {s.name: s for s in registry.get("losses").settings(Options(beta_pos=beta))}
    expected = {"combined_pair": COMBINED_PAIR[beta], "jrc": JRC[beta], "combined_list": 0.9, "rcr": 0.9}
    assert {name: _alpha_of(settings[name]) for name in expected} == expected


def test_findings_combined_pair_takes_the_table():
    s = {s.name: s for s in registry.get("findings").settings(Options(beta_pos=0.1))}["combined_pair"]
    assert _alpha_of(s) == 0.7


def test_nearest_entry_and_tie_rule():
    assert kdd_alpha("combined_pair", 0.15) == COMBINED_PAIR[0.1]  # tie 0.1 / 0.2: the smaller beta_pos
    assert kdd_alpha("combined_pair", 0.16) == COMBINED_PAIR[0.2]
    assert kdd_alpha("combined_pair", 0.3) == COMBINED_PAIR[0.2]  # tie 0.2 / 0.4 (0.3 is not exact in floats)
    assert kdd_alpha("combined_pair", 0.5) == COMBINED_PAIR[0.4]  # tie 0.4 / 0.6
    assert kdd_alpha("combined_pair", 0.95) == COMBINED_PAIR[0.8] and kdd_alpha("combined_pair", 0.91) == 0.9
    assert kdd_alpha("combined_pair", 0.05) == COMBINED_PAIR[0.1]
    assert kdd_alpha("jrc", 0.9) == JRC[0.8] and kdd_alpha("jrc", 0.95) == JRC[1.0]
    s = {s.name: s for s in registry.get("sparsity").settings(Options(values=(0.3, 0.7)))}
    assert _alpha_of(s["combined_pair_beta0.3"]) == 0.6 and _alpha_of(s["combined_pair_beta0.7"]) == 0.7
    with pytest.raises(ValueError, match="no alpha table"):
        kdd_alpha("weighted_bce", 0.1)


def test_options_alphas_override():
    opts = Options(beta_pos=0.1, alphas={"combined_pair": 0.5, "jrc": 0.25})
    settings = {s.name: s for s in registry.get("losses").settings(opts)}
    assert _alpha_of(settings["combined_pair"]) == 0.5 and _alpha_of(settings["jrc"]) == 0.25
    assert _alpha_of(settings["rcr"]) == 0.9  # not named: the table
    sparsity = registry.get("sparsity").settings(opts)
    assert {_alpha_of(s) for s in sparsity if s.name.startswith("combined_pair")} == {0.5}


def test_set_override_reaches_the_loss():
    setting = {s.name: s for s in registry.get("losses").settings(Options())}["combined_pair"]
    cfg = load_config(None, list(setting.overrides))
    assert cfg.model.loss.params["alpha"] == 0.7
    cfg = load_config(None, list(setting.overrides) + ["model.loss.params.alpha=0.55"])
    assert cfg.model.loss.params["alpha"] == 0.55


def test_focal_sweep_is_fig7s_grid():
    names = [s.name for s in registry.get("focal").settings(Options())]
    gammas = [s.params["gamma"] for s in registry.get("focal").settings(Options()) if s.name != "bce"]
    assert gammas == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0]
    assert names[0] == "bce" and "focal_gamma1.5" in names and "focal_gamma2" in names
    quick = [s.params["gamma"] for s in registry.get("focal").settings(Options(quick=True)) if s.name != "bce"]
    assert quick == [1.0, 5.0, 9.0]
