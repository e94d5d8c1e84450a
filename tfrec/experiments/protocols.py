"""The experiment protocols of KDD 2024 (Lin et al., Sec. 3-4), as data: a registry of named protocols.

A :class:`Protocol` is a list of :class:`Setting` (each a set of config overrides, the parameters that name it in
tables and plots, and the setting it is compared against), the metrics its table reports, the cell runner
(default: train and evaluate, :func:`tfrec.experiments.runner.run_training`) and the report builder (default:
tables and plots, :func:`tfrec.experiments.report.build_report`). ``register`` adds one; other model families
(multi-task, pre-ranking) register theirs the same way.

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

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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


@dataclasses.dataclass(frozen=True)
class Metric:
    """A number a table reports: where it is in a run's results, and which direction is better."""

    key: str
    label: str
    path: Tuple[str, ...]
    better: str  # "higher" or "lower"
    ratio: Optional[str] = None  # "lift" (value / base - 1) or "drop" (1 - value / base), see stats.ratio
    scientific: bool = False


METRICS: Dict[str, Metric] = {m.key: m for m in (
    Metric("auc", "test AUC", ("test", "auc"), "higher", "lift"),
    Metric("logloss", "test BCE", ("test", "weighted_logloss"), "lower", "drop"),
    Metric("valid_logloss", "valid BCE", ("valid", "weighted_logloss"), "lower", "drop"),
    Metric("train_bce", "train BCE (epoch 1)", ("train_bce", "epoch1"), "lower"),
    Metric("train_bce_last", "train BCE (last epoch)", ("train_bce", "last_epoch"), "lower"),
    Metric("grad_neg", "neg. logit grad (epoch 1)", ("gradients", "grad_neg_mean_epoch1"), "higher",
           scientific=True),
    Metric("auc_calibrated", "test AUC (isotonic)", ("calibrated", "auc"), "higher", "lift"),
    Metric("logloss_calibrated", "test BCE (isotonic)", ("calibrated", "weighted_logloss"), "lower", "drop"),
)}


def metric_value(run: Dict[str, Any], metric: Metric) -> Optional[float]:
    node: Any = run
    for key in metric.path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return float(node)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of a protocol's grid.

    Attributes:
      name: directory-safe name (``bce_beta0.1``).
      params: what the setting is, for tables and plots (``method``, ``beta_pos``, ``alpha``, ...).
      overrides: ``section.key=value`` config overrides applied to the base config.
      baseline: the setting it is compared with (paired over seeds), or None.
      dataset: the name of one of the protocol's own datasets (``Protocol.datasets``) the setting trains on;
        None: the experiment's ``--data``.
    """

    name: str
    params: Dict[str, Any]
    overrides: Tuple[str, ...]
    baseline: Optional[str] = None
    dataset: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Options:
    """Options every protocol reads: the fixed ``beta_pos`` (all but ``sparsity``), the sweep's values (None: the
    protocol's), ``quick`` (thinned sweeps), the calibration buckets, and ``alphas``: a loss name
    (``combined_pair``, ``jrc``, ``combined_list``, ``rcr``) -> the alpha its settings use at every beta_pos
    (a loss not named keeps :data:`KDD_ALPHAS`; the ``alpha`` protocol sweeps alpha itself)."""

    beta_pos: float = 0.1
    values: Optional[Tuple[float, ...]] = None
    quick: bool = False
    buckets: int = 45
    alphas: Optional[Dict[str, float]] = None  # loss name -> alpha at every beta_pos, instead of KDD_ALPHAS


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A named experiment: its settings, the metrics of its table, the x-axis of its plots, and the functions
    that run a cell and build the report (None: the defaults).

    A protocol names its family (``family``: ``pointwise``, ``multitask`` or ``preranking``,
    :mod:`tfrec.families`; the dataset must be one of it), its own check of the dataset beyond the family's
    (``check_data(data_dir)``, raising ``DatasetError``; None: none), the progress line of a finished cell (``summary(run)``;
    default: the protocol's first two metrics), and what ``--quick`` uses: its config YAML (``quick_config``; None:
    ``tfrec/configs/experiment_quick.yaml``) and the function that makes its dataset (``quick_data(cfg, out_dir,
    printer) -> data dir``; None: ``tfrec.experiments.quick.prepare_quick_data``).
    ``datasets(base, opts, out_dir, printer, names) -> {name: data dir}`` makes those of the protocol's own datasets
    that the settings to run name by ``Setting.dataset`` (a sweep over simulated data).
    """

    name: str
    title: str
    settings: Callable[[Options], List[Setting]]
    metrics: Tuple[str, ...] = ("auc", "logloss")
    x: Optional[str] = None  # a params key plotted on the x axis; None: the settings in order
    run_cell: Optional[Callable[..., Dict[str, Any]]] = None
    report: Optional[Callable[..., List[str]]] = None
    summary: Optional[Callable[[Dict[str, Any]], str]] = None
    family: str = "pointwise"
    check_data: Optional[Callable[[str], None]] = None
    quick_config: Optional[str] = None
    quick_data: Optional[Callable[..., str]] = None
    datasets: Optional[Callable[..., Dict[str, str]]] = None


_REGISTRY: Dict[str, Protocol] = {}


def register(protocol: Protocol) -> Protocol:
    """Adds ``protocol`` to the registry (a second protocol with the same name is an error)."""
    if protocol.name in _REGISTRY and _REGISTRY[protocol.name] is not protocol:
        raise ValueError(f"a protocol named {protocol.name!r} is already registered")
    _REGISTRY[protocol.name] = protocol
    return protocol


def get(name: str) -> Protocol:
    if name not in _REGISTRY:
        raise ValueError(f"unknown protocol {name!r}; known protocols: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> List[str]:
    return list(_REGISTRY)


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


def _fmt(value: float) -> str:
    return f"{float(value):g}"


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
        base = f"bce_beta{_fmt(b)}"
        out.append(Setting(base, {"method": "BCE", "beta_pos": b}, loss_overrides("weighted_bce", b)))
        a = kdd_alpha("combined_pair", b, opts.alphas)
        out.append(Setting(f"combined_pair_beta{_fmt(b)}", {"method": "Combined-Pair", "beta_pos": b, "alpha": a},
                           loss_overrides("combined_pair", b, alpha=a), baseline=base))
    return out


def _alpha(opts: Options) -> List[Setting]:
    out = [_bce(opts)]
    for a in _values(opts, "alpha", ALPHAS):
        if a == 1.0:
            out[0] = Setting("bce", {"method": "BCE", "alpha": 1.0, "beta_pos": opts.beta_pos},
                             loss_overrides("weighted_bce", opts.beta_pos))
            continue
        out.append(Setting(f"alpha{_fmt(a)}", {"method": "Combined-Pair", "alpha": a, "beta_pos": opts.beta_pos},
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
        out.append(Setting(f"focal_gamma{_fmt(g)}", {"method": "Focal'", "gamma": g, "beta_pos": opts.beta_pos},
                           loss_overrides("normalized_focal", opts.beta_pos, gamma=g), baseline="bce"))
    return out


def _negative_sampling(opts: Options) -> List[Setting]:
    out = []
    values = _values(opts, "negative-sampling", KEEP_RATIOS)
    if 1.0 not in values:
        values = (1.0,) + tuple(values)
    for r in values:
        name = f"keep{_fmt(r)}"
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
    from tfrec.experiments.findings import build_findings_report

    return build_findings_report(*args, **kwargs)


register(Protocol("sparsity", "RQ1: BCE vs Combined-Pair under positive sparsity (beta_pos)", _sparsity,
                  metrics=("auc", "logloss", "train_bce", "grad_neg"), x="beta_pos"))
register(Protocol("alpha", "RQ2: the BCE weight alpha of Combined-Pair", _alpha,
                  metrics=("auc", "logloss", "train_bce", "grad_neg"), x="alpha"))
register(Protocol("losses", "RQ3 (Table 1): classification-ranking combination losses", _losses,
                  metrics=("auc", "logloss", "train_bce", "grad_neg")))
register(Protocol("focal", "RQ4: Focal' with gamma vs BCE", _focal, metrics=("auc", "logloss", "grad_neg"),
                  x="gamma"))
register(Protocol("negative-sampling", "RQ4: negative sampling, after isotonic calibration", _negative_sampling,
                  metrics=("auc_calibrated", "logloss_calibrated", "auc", "grad_neg"), x="keep_ratio"))
register(Protocol("contrastive", "RQ4 (Table 2): BCE vs Combined-Contrastive", _contrastive,
                  metrics=("grad_neg", "train_bce", "auc", "logloss")))
register(Protocol("findings", "Findings 1-4 (Sec. 3)", _findings,
                  metrics=("valid_logloss", "train_bce", "train_bce_last", "grad_neg", "auc", "logloss"),
                  report=_findings_report))

# Protocols of the other model families register themselves in their own modules.
from tfrec.experiments import hccp as _hccp  # noqa: E402,F401  (registers "hccp": HCCP pre-ranking)
from tfrec.experiments import hccp_taobao as _hccp_taobao  # noqa: E402,F401  (registers "hccp-taobao": Table 2)
from tfrec.experiments import pwiser as _pwiser  # noqa: E402,F401  (registers "pwiser": PWiseR, multi-task)
