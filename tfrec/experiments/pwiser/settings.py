"""The settings of the ``pwiser`` protocol (:mod:`tfrec.experiments.pwiser.protocol`): its three parts
(``grid``, ``noise``, ``margins``), the config overrides of each architecture and method, and the metrics of its
tables."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from tfrec.experiments.core.registry import Metric, Options, Setting, value_name

ARCHITECTURES = {"shared_bottom": "SharedBottom", "mmoe": "MMoE", "ple": "PLE", "esmm": "ESMM",
                 "single_task": "single-task"}
NOISE_ARCHITECTURE = "mmoe"
NOISE_SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0)
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3)  # m1; m2 = 2 m1
# --quick thins the sweeps.
QUICK = {"noise": (0.0, 0.3, 0.6), "lambda": (0.1, 1.0), "margin": (0.1, 0.3)}
METHODS = {"bce": "BCE", "pwiser": "BCE + PWiseR"}
PARTS = ("grid", "noise", "margins")

#: The metrics of the tables (``tfrec.metrics.multitask_report`` keys, on test).
METRICS: Tuple[Metric, ...] = (
    Metric("ctr_auc", "CTR AUC", ("test", "ctr_auc"), "higher", "lift"),
    Metric("cvr_auc", "CVR AUC", ("test", "cvr_auc"), "higher", "lift"),
    Metric("ctcvr_auc", "CTCVR AUC", ("test", "ctcvr_auc"), "higher", "lift"),
    Metric("ctr_logloss", "CTR logloss", ("test", "ctr_logloss"), "lower", "drop"),
    Metric("cvr_logloss", "CVR logloss", ("test", "cvr_logloss"), "lower", "drop"),
    Metric("ctcvr_logloss", "CTCVR logloss", ("test", "ctcvr_logloss"), "lower", "drop"))
PWISER_METRICS = tuple(m.key for m in METRICS)


def pwiser_tasks(architecture: str) -> List[str]:
    """The tasks whose logit gets the PWiseR terms (:mod:`tfrec.experiments.pwiser.protocol`); single-task: its
    ``model.task``."""
    if architecture == "esmm":
        return ["ctr", "ctcvr"]
    if architecture == "single_task":
        return ["ctr"]  # the CTR model's; the runner's CVR model gets ["cvr"]
    return ["ctr", "cvr"]


#: ``--quick``: each architecture's own small sizes (the quick preset, ``experiment_pwiser_quick.yaml``, holds the
#: sizes every architecture shares and MMoE's).
QUICK_SIZES = {"shared_bottom": ("model.bottom_units=[64]",), "esmm": ("model.bottom_units=[64]",),
               "ple": ("model.num_levels=1", "model.num_shared_experts=1", "model.num_task_experts=1")}


def method_overrides(architecture: str, method: str, lam: float = 0.1, m1: float = 0.1,
                     m2: float = 0.2, quick: bool = False) -> tuple:
    """Overrides that train ``architecture`` with ``method`` (``bce`` or ``pwiser``), reading the data with
    ``data.beta_pos = 1.0`` (no KDD 2024 down-weighting of positives in the CTR loss, whatever the dataset was
    prepared with); ``quick`` adds the architecture's :data:`QUICK_SIZES`."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)}. Received: method={method!r}")
    tasks = pwiser_tasks(architecture) if method == "pwiser" else []
    out = [f"model.name={architecture}", f"model.loss.pwiser_tasks=[{', '.join(tasks)}]", "data.beta_pos=1.0"]
    if architecture == "single_task":
        out.append("model.task=ctr")
    if method == "pwiser":
        out += [f"model.loss.lam={lam}", f"model.loss.m1={m1}", f"model.loss.m2={m2}"]
    if quick:
        out += QUICK_SIZES.get(architecture, ())
    return tuple(out)


def noise_dataset(share: float) -> str:
    """The name of the noise sweep's dataset at noisy-click share ``share`` (``noise0.3``)."""
    return f"noise{value_name(share)}"


def noise_shares(opts: Options) -> tuple:
    """The noise sweep's shares: ``--values``, else :data:`QUICK` ``["noise"]`` with ``--quick``, else
    :data:`NOISE_SHARES`."""
    if opts.values is not None:
        return tuple(opts.values)
    return QUICK["noise"] if opts.quick else NOISE_SHARES


def part_of(setting: str) -> str:
    """The part (``grid``, ``noise``, ``margins``) a setting name belongs to."""
    if setting.startswith("noise"):
        return "noise"
    if setting.startswith(("lambda", "margins_")):
        return "margins"
    return "grid"


def settings(opts: Options) -> List[Setting]:
    out = []
    for arch, label in ARCHITECTURES.items():
        for method in METHODS:
            out.append(Setting(f"{arch}_{method}", {"architecture": label, "method": METHODS[method]},
                               method_overrides(arch, method, quick=opts.quick),
                               baseline=f"{arch}_bce" if method == "pwiser" else None))
    arch = NOISE_ARCHITECTURE
    for share in noise_shares(opts):
        name = noise_dataset(share)
        for method in METHODS:
            out.append(Setting(f"{name}_{method}", {"architecture": ARCHITECTURES[arch], "method": METHODS[method],
                                                    "noisy_click_share": float(share)},
                               method_overrides(arch, method, quick=opts.quick),
                               baseline=f"{name}_bce" if method == "pwiser" else None,
                               dataset=name))
    out.append(Setting("margins_bce", {"architecture": ARCHITECTURES[arch], "method": "BCE", "lambda": 0.0,
                                       "m1": "-", "m2": "-"}, method_overrides(arch, "bce", quick=opts.quick)))
    lambdas, margins = (QUICK["lambda"], QUICK["margin"]) if opts.quick else (LAMBDAS, MARGINS)
    for lam in lambdas:
        for m1 in margins:
            out.append(Setting(f"lambda{value_name(lam)}_m{value_name(m1)}",
                               {"architecture": ARCHITECTURES[arch], "method": "BCE + PWiseR", "lambda": float(lam),
                                "m1": float(m1), "m2": float(2 * m1)},
                               method_overrides(arch, "pwiser", lam, m1, 2 * m1, quick=opts.quick),
                               baseline="margins_bce"))
    return out


def settings_of_part(settings: Sequence[Setting], part: str) -> List[Setting]:
    """The settings of ``part`` (in order)."""
    if part not in PARTS:
        raise ValueError(f"`part` must be one of {PARTS}. Received: part={part!r}")
    return [s for s in settings if part_of(s.name) == part]
