"""The registry of experiment protocols, and what a protocol is: :class:`Protocol`, :class:`Setting`,
:class:`Metric`, :class:`Options`.

A :class:`Protocol` is a list of :class:`Setting` (each a set of config overrides, the parameters that name it in
tables and plots, and the setting it is compared against), the metrics its table reports (declared by the
protocol, so one table and plot module serves every family), the body of its cell (trained and evaluated through
:func:`tfrec.experiments.core.cell.run_cell`) and its report builder. ``register`` adds one.

The built-in protocols live with their family's experiment code (:data:`BUILTIN`: ``kdd``, ``hccp``, ``pwiser``)
and register when the registry is first asked (:func:`get`, :func:`names`); the registry imports none of them.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any, Callable, Dict, List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Metric:
    """A number a table reports: where it is in a run's results, and which direction is better."""

    key: str
    label: str
    path: Tuple[Any, ...]  # dict keys (str) and list indices (int)
    better: str  # "higher" or "lower"
    ratio: Optional[str] = None  # "lift" (value / base - 1) or "drop" (1 - value / base), see stats.ratio
    scientific: bool = False


def metric_value(run: Dict[str, Any], metric: Metric) -> Optional[float]:
    """The number at ``metric.path`` in ``run`` (a string steps into a dict, an int into a list: a per-epoch
    history), or None where the path ends early."""
    node: Any = run
    for key in metric.path:
        if isinstance(key, int):
            if not isinstance(node, list) or not -len(node) <= key < len(node):
                return None
            node = node[key]
        elif not isinstance(node, dict) or node.get(key) is None:
            return None
        else:
            node = node[key]
    return None if node is None else float(node)


#: A binary classifier's test AUC and weighted logloss (``binary_report`` keys): the default metrics of a table.
AUC = Metric("auc", "test AUC", ("test", "auc"), "higher", "lift")
LOGLOSS = Metric("logloss", "test BCE", ("test", "weighted_logloss"), "lower", "drop")
BINARY_METRICS = (AUC, LOGLOSS)


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
    """A named experiment: its settings, the metrics of its table, the x-axis of its plots, the body of its cell
    and its report.

    ``metrics`` are the :class:`Metric` s the table reports (default :data:`BINARY_METRICS`), declared by the
    protocol so that one table and plot module (:mod:`tfrec.experiments.core.tables`,
    :mod:`tfrec.experiments.core.plots`) serves every family. ``run_cell(cfg, run_dir, printer, **options) ->
    run`` trains and evaluates one cell; the engine calls it through :func:`tfrec.experiments.core.cell.run_cell`
    (the run directory, the wall time, the Keras session freed after it). ``report(protocol, settings, results,
    out_dir, opts) -> paths`` writes the report (None: :func:`tfrec.experiments.core.report.build_report`).

    A protocol names its family (``family``: ``pointwise``, ``multitask`` or ``preranking``,
    :mod:`tfrec.families`), its check of the dataset (``check_data(data_dir)``, raising ``DatasetError``: the
    dataset is one of its family, and has what the protocol needs beyond that; None: none), the progress line of
    a finished cell (``summary(run)``; default: the protocol's first two metrics), and what ``--quick`` uses: its
    config YAML (``quick_config``) and the function that makes its dataset (``quick_data(cfg, out_dir, printer)
    -> data dir``); a protocol without them has no ``--quick``.
    ``datasets(base, opts, out_dir, printer, names) -> {name: data dir}`` makes those of the protocol's own datasets
    that the settings to run name by ``Setting.dataset`` (a sweep over simulated data).
    ``results_metrics(run) -> (shown, recorded)`` names the metrics a reference-results document
    (:mod:`tfrec.experiments.core.results_doc`) takes from a finished cell's run: those its tables show and those
    it only records for its reading (None: :attr:`metrics`, nothing more). A function of the run, because some
    protocols' metrics depend on the config (HCCP's hit rates at ``preranking.hit_ks``).
    """

    name: str
    title: str
    settings: Callable[[Options], List[Setting]]
    run_cell: Callable[..., Dict[str, Any]]
    metrics: Tuple[Metric, ...] = BINARY_METRICS
    x: Optional[str] = None  # a params key plotted on the x axis; None: the settings in order
    report: Optional[Callable[..., List[str]]] = None
    summary: Optional[Callable[[Dict[str, Any]], str]] = None
    family: str = "pointwise"
    check_data: Optional[Callable[[str], None]] = None
    quick_config: Optional[str] = None
    quick_data: Optional[Callable[..., str]] = None
    datasets: Optional[Callable[..., Dict[str, str]]] = None
    results_metrics: Optional[Callable[[Dict[str, Any]], Tuple[Tuple[Metric, ...], Tuple[Metric, ...]]]] = None

    def results_metrics_of(self, run: Dict[str, Any]) -> Tuple[Tuple[Metric, ...], Tuple[Metric, ...]]:
        """``(shown, recorded)``: the metrics a reference-results document takes from ``run`` (see the class
        docstring)."""
        return self.results_metrics(run) if self.results_metrics else (self.metrics, ())

    @property
    def metric_keys(self) -> Tuple[str, ...]:
        """The keys of :attr:`metrics`, in order."""
        return tuple(m.key for m in self.metrics)

    def metric(self, key: str) -> Metric:
        """The metric ``key`` of the protocol's table.

        Raises:
          KeyError: the protocol reports no such metric.
        """
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(f"protocol {self.name!r} reports no metric {key!r}; its metrics: {list(self.metric_keys)}")


#: The modules of the built-in protocols (each registers its protocols when imported): the KDD 2024 losses, HCCP
#: pre-ranking (JD-style cascade and Taobao) and PWiseR multi-task. Imported by name on the registry's first
#: lookup, so the registry (and the engine) import no family's experiment code.
BUILTIN = ("tfrec.experiments.kdd.protocols", "tfrec.experiments.hccp.protocol", "tfrec.experiments.hccp.taobao",
           "tfrec.experiments.pwiser.protocol")

_REGISTRY: Dict[str, Protocol] = {}


def register(protocol: Protocol) -> Protocol:
    """Adds ``protocol`` to the registry (a second protocol with the same name is an error)."""
    if protocol.name in _REGISTRY and _REGISTRY[protocol.name] is not protocol:
        raise ValueError(f"a protocol named {protocol.name!r} is already registered")
    _REGISTRY[protocol.name] = protocol
    return protocol


def _load_builtin() -> None:
    # A plugin registry: the built-in protocols are imported by name here, on the first lookup (not at the top
    # of this module: they import the registry to register themselves).
    for module in BUILTIN:
        importlib.import_module(module)


def get(name: str) -> Protocol:
    """The registered protocol ``name``.

    Raises:
      ValueError: no such protocol (the message lists the known ones).
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown protocol {name!r}; known protocols: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> List[str]:
    """The registered protocol names, the built-in ones first (in :data:`BUILTIN` order)."""
    _load_builtin()
    return list(_REGISTRY)


def packaged_config(name: str) -> str:
    """The path of the config YAML ``name`` shipped in ``tfrec/configs`` (a protocol's ``quick_config``)."""
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "configs", name))


def value_name(value: float) -> str:
    """A swept value as setting and dataset names spell it (``0.1``, ``1``, ``2.5``)."""
    return f"{float(value):g}"


