"""The experiment protocols of KDD 2024 (Lin et al., Sec. 3-4), registered with the experiment registry
(:mod:`tfrec.experiments.core.registry`): sparsity, alpha, losses, focal, negative-sampling, contrastive, findings.

Each is a list of settings (config overrides of the point-wise family's DCN V2 and its loss), the metrics its
table reports (:data:`tfrec.experiments.kdd.metrics.METRICS`), the cell
(:func:`tfrec.experiments.kdd.runner.run_training`) and the report: the table with the paper's figures
(:mod:`tfrec.experiments.kdd.plots`; ``findings``: :mod:`tfrec.experiments.kdd.findings`).

Readings of the paper:

* Sparsity (RQ1, Sec. 4.1-4.2): the paper makes its sparse datasets by weighting every positive by ``beta_pos``
  in the training loss (Eq. 15) and in evaluation, not by dropping positives. A cell sets ``data.beta_pos`` and
  the reader re-weights one prepared dataset (``tfrec.data.reweight``).
* ``alpha`` (the BCE / calibration weight of the combined losses) is the authors' tuned value per loss and
  ``beta_pos`` (:data:`KDD_ALPHAS`, from the authors' published configs, ``config/criteo_x1/*.yaml`` of
  SkylerLinn/Understanding-the-Ranking-Loss): the paper itself gives no table of them, but its RQ2 text reports
  Table 1's Combined-Pair numbers (AUC 0.8139, BCE 0.1213 at beta_pos 0.1) for alpha = 0.7, the configs' value.
  A ``beta_pos`` off the table takes the nearest entry's alpha (:func:`kdd_alpha`). ``Options.alphas`` replaces
  the table's alpha per loss. ``alpha = 1.0`` in the alpha sweep is the BCE method (Fig. 5's red diamond), run as
  ``weighted_bce``.
* In-batch losses pair over the global batch (``pairing: global``), as the paper's single-device batch does.
* Focal (RQ4) is the normalised Focal' of Eq. 17 (``normalized_focal``), the one the paper's figure uses.
* Negative sampling keeps each training negative with the keep ratio (a seeded filter in the reader); validation
  and test are not sampled; the metrics are reported after isotonic regression fitted on validation.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfrec.experiments.core.registry import Metric, Options, Protocol, Setting, register, value_name
from tfrec.experiments.core.report import build_report
import tfrec.experiments.kdd.quick as quick
from tfrec.experiments.kdd.metrics import METRICS
from tfrec.families.registry import get as family
SPARSITY_BETAS = (1.0, 0.8, 0.6, 0.4, 0.2, 0.1)
ALPHAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
GAMMAS = tuple(1.0 + 0.5 * i for i in range(17))  # 1, 1.5, 2, ..., 9: Fig. 7's grid
KEEP_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
# --quick thins the sweeps to their ends and one or two points between (every protocol still runs with at
# least 3 points; the full grids are the defaults otherwise). beta_pos 0.1 and 1.0, alpha 1.0 / 0.5 and keep
# ratio 1.0 are runs other protocols share (same config, one training run).
QUICK_VALUES = {"sparsity": (1.0, 0.6, 0.2, 0.1), "alpha": (1.0, 0.7, 0.5, 0.1), "focal": (1.0, 5.0, 9.0),
                "negative-sampling": (1.0, 0.5, 0.1)}

# alpha per loss and beta_pos: the authors' tuned values (their published configs, config/criteo_x1/*.yaml of
# SkylerLinn/Understanding-the-Ranking-Loss; the paper's RQ2 text gives Table 1's Combined-Pair numbers at 0.7).
KDD_ALPHAS: Dict[str, Dict[float, float]] = {
    "combined_pair": {1.0: 0.9, 0.8: 0.9, 0.6: 0.7, 0.4: 0.8, 0.2: 0.6, 0.1: 0.7},
    "jrc": {1.0: 0.3, 0.8: 0.4, 0.6: 0.4, 0.4: 0.4, 0.2: 0.4, 0.1: 0.4},
    "combined_list": {b: 0.9 for b in SPARSITY_BETAS},
    "rcr": {b: 0.9 for b in SPARSITY_BETAS},
}

LOSS_NAMES = {"weighted_bce": "BCE", "combined_pair": "Combined-Pair", "jrc": "JRC", "combined_list": "Combined-List",
              "rcr": "RCR", "normalized_focal": "Focal'", "combined_contrastive": "Combined-Contrastive"}
_GLOBAL_PAIRING = {"combined_pair", "jrc", "combined_list", "rcr", "normalized_focal", "combined_contrastive"}


# ------------------------------------------------------------------------------------------ building blocks


def loss_overrides(loss: str, beta_pos: float, **params: Any) -> Tuple[str, ...]:
    """Overrides that train ``loss`` (with ``params``) at ``beta_pos``."""
    out = [f"model.loss.name={loss}", "model.loss.params={}", f"data.beta_pos={beta_pos}",
           f"model.head={'jrc' if loss == 'jrc' else 'binary'}"]
    if loss in _GLOBAL_PAIRING:
        out.append("model.loss.params.pairing=global")
    out += [f"model.loss.params.{k}={v}" for k, v in params.items()]
    return tuple(out)


def kdd_alpha(loss: str, beta_pos: float, alphas: Optional[Dict[str, float]] = None) -> float:
    """The alpha of ``loss`` at ``beta_pos``: ``alphas[loss]`` when given, else :data:`KDD_ALPHAS` at the table's
    nearest ``beta_pos`` (a tie, within 1e-9, takes the smaller beta_pos)."""
    if alphas and loss in alphas:
        return float(alphas[loss])
    if loss not in KDD_ALPHAS:
        raise ValueError(f"no alpha table for loss {loss!r}; known: {sorted(KDD_ALPHAS)}")
    table = KDD_ALPHAS[loss]
    nearest = min(table, key=lambda b: (round(abs(b - float(beta_pos)), 9), b))
    return table[nearest]


def _values(opts: Options, protocol: str, default: Sequence[float]) -> Tuple[float, ...]:
    if opts.values is not None:
        return tuple(opts.values)
    if opts.quick and protocol in QUICK_VALUES:
        return QUICK_VALUES[protocol]
    return tuple(default)


def _bce(opts: Options, name: str = "bce") -> Setting:
    return Setting(name, {"method": "BCE", "beta_pos": opts.beta_pos}, loss_overrides("weighted_bce", opts.beta_pos))


def _sparsity(opts: Options) -> List[Setting]:
    out = []
    for b in _values(opts, "sparsity", SPARSITY_BETAS):
        base = f"bce_beta{value_name(b)}"
        out.append(Setting(base, {"method": "BCE", "beta_pos": b}, loss_overrides("weighted_bce", b)))
        a = kdd_alpha("combined_pair", b, opts.alphas)
        out.append(Setting(f"combined_pair_beta{value_name(b)}", {"method": "Combined-Pair", "beta_pos": b, "alpha": a},
                           loss_overrides("combined_pair", b, alpha=a), baseline=base))
    return out


def _alpha(opts: Options) -> List[Setting]:
    out = [_bce(opts)]
    for a in _values(opts, "alpha", ALPHAS):
        if a == 1.0:
            out[0] = Setting("bce", {"method": "BCE", "alpha": 1.0, "beta_pos": opts.beta_pos},
                             loss_overrides("weighted_bce", opts.beta_pos))
            continue
        out.append(Setting(f"alpha{value_name(a)}", {"method": "Combined-Pair", "alpha": a, "beta_pos": opts.beta_pos},
                           loss_overrides("combined_pair", opts.beta_pos, alpha=a), baseline="bce"))
    return out


def _losses(opts: Options) -> List[Setting]:
    out = [_bce(opts)]
    for loss in ("combined_pair", "jrc", "combined_list", "rcr"):
        a = kdd_alpha(loss, opts.beta_pos, opts.alphas)
        out.append(Setting(loss, {"method": LOSS_NAMES[loss], "beta_pos": opts.beta_pos, "alpha": a},
                           loss_overrides(loss, opts.beta_pos, alpha=a), baseline="bce"))
    return out


def _focal(opts: Options) -> List[Setting]:
    out = [_bce(opts)]
    for g in _values(opts, "focal", GAMMAS):
        out.append(Setting(f"focal_gamma{value_name(g)}", {"method": "Focal'", "gamma": g, "beta_pos": opts.beta_pos},
                           loss_overrides("normalized_focal", opts.beta_pos, gamma=g), baseline="bce"))
    return out


def _negative_sampling(opts: Options) -> List[Setting]:
    out = []
    values = _values(opts, "negative-sampling", KEEP_RATIOS)
    if 1.0 not in values:
        values = (1.0,) + tuple(values)
    for r in values:
        name = f"keep{value_name(r)}"
        out.append(Setting(name, {"method": "BCE + negative sampling", "keep_ratio": r, "beta_pos": opts.beta_pos},
                           loss_overrides("weighted_bce", opts.beta_pos) + (f"data.negative_keep_ratio={r}",),
                           baseline=None if r == 1.0 else "keep1"))
    return out


def _contrastive(opts: Options) -> List[Setting]:
    return [_bce(opts), Setting("combined_contrastive", {"method": "Combined-Contrastive", "beta_pos": opts.beta_pos},
                                loss_overrides("combined_contrastive", opts.beta_pos, alpha=0.9, temperature=0.4),
                                baseline="bce")]


def _findings(opts: Options) -> List[Setting]:
    return [_bce(opts),
            Setting("combined_pair", {"method": "Combined-Pair", "beta_pos": opts.beta_pos,
                                      "alpha": kdd_alpha("combined_pair", opts.beta_pos, opts.alphas)},
                    loss_overrides("combined_pair", opts.beta_pos,
                                   alpha=kdd_alpha("combined_pair", opts.beta_pos, opts.alphas)), baseline="bce"),
            # Finding 3 contrasts the BCE method's negative gradients under sparse and dense positives.
            Setting("bce_dense", {"method": "BCE", "beta_pos": 1.0}, loss_overrides("weighted_bce", 1.0))]


def _findings_report(*args, **kwargs):
    from tfrec.experiments.kdd.findings import build_findings_report

    return build_findings_report(*args, **kwargs)


def _run_training(*args, **kwargs):
    from tfrec.experiments.kdd.runner import run_training  # TensorFlow, imported when a cell runs

    return run_training(*args, **kwargs)


def _figures(*args, **kwargs):
    from tfrec.experiments.kdd.plots import plot_all

    return plot_all(*args, **kwargs)


def _metrics(*keys: str) -> Tuple[Metric, ...]:
    return tuple(METRICS[k] for k in keys)


#: What a reference-results document records of every KDD cell besides its protocol's table metrics.
RESULTS_EXTRA = ("valid_logloss", "train_bce_last", "auc_calibrated", "logloss_calibrated")
#: ... and of the ``findings`` protocol's cells: what Findings 1 and 3 read (tfrec.experiments.kdd.findings).
FINDINGS_EXTRA = ("valid_logloss_epoch1", "train_bce_epoch2", "pred_neg", "effective_positive_rate", "global_batch")


def _results_metrics(shown: Tuple[Metric, ...], run: Dict[str, Any],
                     extra: Sequence[str] = ()) -> Tuple[Tuple[Metric, ...], Tuple[Metric, ...]]:
    # The same for every run of a protocol: its table metrics, then RESULTS_EXTRA (and the protocol's own
    # `extra`) for the documents' readings.
    return shown, tuple(METRICS[k] for k in (*RESULTS_EXTRA, *extra) if METRICS[k] not in shown)


def _kdd(name: str, title: str, settings, metrics: Sequence[str], results_extra: Sequence[str] = (),
         **kwargs: Any) -> Protocol:
    """A KDD protocol: point-wise data, :func:`tfrec.experiments.kdd.runner.run_training` cells, the table with
    the paper's figures, the quick Criteo-shaped dataset; ``results_extra``: metric keys its reference-results
    documents record besides :data:`RESULTS_EXTRA`."""
    kwargs.setdefault("report", functools.partial(build_report, plot_all=_figures))
    shown = _metrics(*metrics)
    return register(Protocol(name, title, settings, run_cell=_run_training, metrics=shown,
                             results_metrics=functools.partial(_results_metrics, shown, extra=tuple(results_extra)),
                             family="pointwise", check_data=family("pointwise").check_dataset,
                             quick_config=quick.QUICK_CONFIG, quick_data=quick.prepare_quick_data, **kwargs))


_kdd("sparsity", "RQ1: BCE vs Combined-Pair under positive sparsity (beta_pos)", _sparsity,
     ("auc", "logloss", "train_bce", "grad_neg"), x="beta_pos")
_kdd("alpha", "RQ2: the BCE weight alpha of Combined-Pair", _alpha, ("auc", "logloss", "train_bce", "grad_neg"),
     x="alpha")
_kdd("losses", "RQ3 (Table 1): classification-ranking combination losses", _losses,
     ("auc", "logloss", "train_bce", "grad_neg"))
_kdd("focal", "RQ4: Focal' with gamma vs BCE", _focal, ("auc", "logloss", "grad_neg"), x="gamma")
_kdd("negative-sampling", "RQ4: negative sampling, after isotonic calibration", _negative_sampling,
     ("auc_calibrated", "logloss_calibrated", "auc", "grad_neg"), x="keep_ratio")
_kdd("contrastive", "RQ4 (Table 2): BCE vs Combined-Contrastive", _contrastive,
     ("grad_neg", "train_bce", "auc", "logloss"), results_extra=("grad_norm_global",))
_kdd("findings", "Findings 1-4 (Sec. 3)", _findings,
     ("valid_logloss", "train_bce", "train_bce_last", "grad_neg", "auc", "logloss"), results_extra=FINDINGS_EXTRA,
     report=_findings_report)
