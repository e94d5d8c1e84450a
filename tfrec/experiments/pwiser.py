"""The PWiseR experiment (Durmus et al., arXiv 2406.02163; papers 002 / 003) as a protocol: ``tfrec experiment
pwiser``.

Three parts, one protocol (one table and its plots per part, ``tfrec.experiments.pwiser_report``):

* ``grid``: {SharedBottom, MMoE, PLE, ESMM, single-task} x {BCE, BCE + PWiseR} on the experiment's ``--data``
  (a prepared multi-task dataset, e.g. AliExpress); setting ``<arch>_bce`` / ``<arch>_pwiser``.
* ``noise``: the noise-share sweep: the funnel simulator (``tfrec.simulation.funnel``) at each noisy-click share,
  prepared with the multi-task Beam pipeline, then BCE vs BCE + PWiseR on MMoE; ``noise<share>_bce`` /
  ``noise<share>_pwiser``. The shares are :data:`NOISE_SHARES` (``--values`` replaces them).
* ``margins``: a lambda x margin grid of BCE + PWiseR on MMoE on ``--data``; ``lambda<l>_m<m1>`` with
  ``m2 = 2 m1`` (the defaults' ratio 0.1 / 0.2), against ``margins_bce`` (lambda = 0, the grid's MMoE BCE run).

Every BCE + PWiseR setting is compared with the BCE setting of the same architecture (and data), paired over
seeds. Metrics (``tfrec.metrics.multitask``, on test): CTR AUC over exposures, CVR AUC over the clicked samples,
CTCVR AUC over exposures, and the logloss of each task in its space.

Readings of the paper (its summary gives neither the tasks nor the grids):

* PWiseR is added to every task the model trains with BCE: CTR and CVR for SharedBottom, MMoE and PLE; CTR and
  CTCVR for ESMM (its CVR tower is trained only through CTCVR); for single-task learning, the task's own model.
* Single-task learning is two models, a CTR model and a CVR model (each with PWiseR on its own logit in the
  PWiseR setting); a cell trains both and scores CTCVR as ``pCTR * pCVR``.
* PWiseR's defaults are the library's: lambda 0.1, m1 0.1, m2 0.2, hinge on probabilities.
* Every cell reads its data with ``data.beta_pos = 1.0`` (:func:`method_overrides`): every sample weighs 1 in the
  CTR loss and the metrics, whatever ``beta_pos`` the dataset was prepared with. PWiseR's paper trains plain BCE;
  KDD 2024's down-weighting of positives (Eq. 15) is not part of it and is not carried into its CTR loss.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import os
import time
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from tfrec.config import RunConfig, load_config
from tfrec.experiments.protocols import METRICS, Metric, Options, Protocol, Setting, register
from tfrec.experiments.quick import made_with, record_made
from tfrec.experiments.store import read_json, write_json

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

QUICK_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                            "experiment_pwiser_quick.yaml")

for _m in (Metric("ctr_auc", "CTR AUC", ("test", "ctr_auc"), "higher", "lift"),
           Metric("cvr_auc", "CVR AUC", ("test", "cvr_auc"), "higher", "lift"),
           Metric("ctcvr_auc", "CTCVR AUC", ("test", "ctcvr_auc"), "higher", "lift"),
           Metric("ctr_logloss", "CTR logloss", ("test", "ctr_logloss"), "lower", "drop"),
           Metric("cvr_logloss", "CVR logloss", ("test", "cvr_logloss"), "lower", "drop"),
           Metric("ctcvr_logloss", "CTCVR logloss", ("test", "ctcvr_logloss"), "lower", "drop")):
    METRICS.setdefault(_m.key, _m)
PWISER_METRICS = ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_logloss", "cvr_logloss", "ctcvr_logloss")


def pwiser_tasks(architecture: str) -> List[str]:
    """The tasks whose logit gets the PWiseR terms (see the module docstring); single-task: its ``model.task``."""
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


def _fmt(value: float) -> str:
    return f"{float(value):g}"


def noise_dataset(share: float) -> str:
    """The name of the noise sweep's dataset at noisy-click share ``share`` (``noise0.3``)."""
    return f"noise{_fmt(share)}"


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


def _settings(opts: Options) -> List[Setting]:
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
            out.append(Setting(f"lambda{_fmt(lam)}_m{_fmt(m1)}",
                               {"architecture": ARCHITECTURES[arch], "method": "BCE + PWiseR", "lambda": float(lam),
                                "m1": float(m1), "m2": float(2 * m1)},
                               method_overrides(arch, "pwiser", lam, m1, 2 * m1, quick=opts.quick),
                               baseline="margins_bce"))
    return out


# ------------------------------------------------------------------------------------------------- data

#: The funnel's informative columns, kept in the Ali-CCP layout when ``prepare.input_format`` is ``aliccp``
#: (user, item, user segment and item category ids; the noisy latent vectors of the user and the item).
NARROW_COLUMNS = {"click": "click", "conversion": "purchase", "categorical_1": "101", "categorical_2": "205",
                  "categorical_3": "121", "categorical_4": "206",
                  **{f"numerical_{i}": f"D101_{i}" for i in range(1, 5)},
                  **{f"numerical_{i + 4}": f"D205_{i}" for i in range(1, 5)}}


def narrow_copy(src: str, dst: str, columns: Dict[str, str] = NARROW_COLUMNS) -> int:
    """Copies the columns ``columns`` (AliExpress name -> Ali-CCP name, in that order) of the AliExpress CSV
    ``src`` into ``dst`` with the Ali-CCP names as its header; returns the number of data rows.

    Raises:
      ValueError: ``src`` lacks one of the columns.
    """
    with open(src, "r", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        header = f.readline().rstrip("\n").split(",")
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{src} has no column {missing[0]!r}")
        keep = [header.index(c) for c in columns]
        g.write(",".join(columns.values()) + "\n")
        rows = 0
        for line in f:
            fields = line.rstrip("\n").split(",")
            g.write(",".join(fields[i] for i in keep) + "\n")
            rows += 1
    return rows


def prepare_funnel_data(cfg: RunConfig, out_dir: str, share: float, printer: Callable[[str], None] = print) -> str:
    """Simulates the funnel at noisy-click share ``share`` (``cfg.simulation``, ``kind: funnel``) and prepares
    it with the multi-task pipeline (``cfg.prepare``) into ``<out_dir>/pwiser_data/noise<share>/data``; a rerun
    with the same settings reuses it. With ``prepare.input_format: aliccp`` the pipeline reads the
    :data:`NARROW_COLUMNS` copy (Ali-CCP layout), otherwise the full AliExpress file.

    Returns:
      The prepared dataset directory.
    """
    from pipelines.multitask import run as prepare
    from tfrec.simulation import simulate_funnel

    root = os.path.join(os.path.abspath(out_dir), "pwiser_data", noise_dataset(share))
    raw, data_dir = os.path.join(root, "raw", "aliexpress.csv"), os.path.join(root, "data")
    narrow = cfg.prepare.input_format == "aliccp"
    sim = dataclasses.replace(cfg.simulation, kind="funnel", output=raw,
                              funnel=dataclasses.replace(cfg.simulation.funnel, noisy_click_share=float(share)))
    inputs = os.path.join(root, "raw", "aliccp.csv") if narrow else raw
    prep = dataclasses.replace(cfg.prepare, inputs=[inputs], train=[], valid=[], test=[], output=data_dir,
                               input_format="aliccp" if narrow else "aliexpress")
    wanted = {"simulation": dataclasses.asdict(sim), "prepare": dataclasses.asdict(prep)}
    if made_with(root, data_dir, wanted):
        printer(f"pwiser data: reusing {data_dir}")
        return data_dir
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    r = simulate_funnel(sim)
    printer(f"pwiser data: {r.rows:,} funnel exposures at noisy-click share {share:g} (realised "
            f"{r.noisy_click_share:.3f}), click rate {r.click_rate:.4f}, conversions per click "
            f"{r.conversion_rate:.4f}; Bayes AUC ctr {r.truth_ctr_auc:.4f} cvr {r.truth_cvr_auc:.4f}")
    if narrow:
        narrow_copy(raw, inputs)
    stats = prepare(prep)
    printer(f"pwiser data: prepared {data_dir} (" + ", ".join(
        f"{s} {stats['rows_written'].get(s, 0):,}" for s in ("train", "valid", "test")) + ")")
    record_made(root, {**wanted, "truth": dataclasses.asdict(r)})
    return data_dir


def _quick_data(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> str:
    return prepare_funnel_data(cfg, out_dir, cfg.simulation.funnel.noisy_click_share, printer)


def _datasets(base: RunConfig, opts: Options, out_dir: str, printer: Callable[[str], None],
              names: Sequence[str]) -> Dict[str, str]:
    return {noise_dataset(s): prepare_funnel_data(base, out_dir, s, printer) for s in noise_shares(opts)
            if noise_dataset(s) in names}


# ------------------------------------------------------------------------------------------------- cells


def _summary(summary: Dict[str, Any]) -> Dict[str, Any]:
    summary = dict(summary)
    summary.pop("epoch_examples_per_second", None)
    return summary


def _single_task(cfg: RunConfig, run_dir: str, printer: Callable[[str], None]) -> Dict[str, Any]:
    """Trains a CTR and a CVR single-task model (each task's predictions saved, so a rerun after a kill keeps a
    finished task) and scores them together (CTCVR = pCTR * pCVR)."""
    from tfrec.evaluate import predict_split
    from tfrec.families import get
    from tfrec.metrics import multitask_report
    from tfrec.train import train

    preds: Dict[str, Dict[str, np.ndarray]] = {}
    labels, summaries = {}, {}
    for task in ("ctr", "cvr"):
        tasks = f"[{task}]" if cfg.model.loss.pwiser_tasks else "[]"
        sub = load_config(None, [f"model.task={task}", f"model.loss.pwiser_tasks={tasks}",
                                 f"train.model_dir='{os.path.join(run_dir, task)}'"], base=copy.deepcopy(cfg))
        done = os.path.join(sub.train.model_dir, "predictions.npz")
        if not os.path.exists(done):
            result = train(sub, printer=printer)
            arrays = {}
            for split in ("valid", "test"):
                p, y, w = predict_split(result.model, sub.data.dir, split,
                                        get("multitask").resolve(sub).data.eval_batch_size,
                                        outputs=(task,), beta_pos=sub.data.beta_pos)
                arrays.update({f"{split}_p": p[task], f"{split}_y": y, f"{split}_w": w})
            write_json(os.path.join(sub.train.model_dir, "summary.json"), _summary(result.summary))
            tmp = done + ".tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, done)
            _free()
        with np.load(done) as z:
            preds[task] = {s: z[f"{s}_p"] for s in ("valid", "test")}
            labels = {s: (z[f"{s}_y"], z[f"{s}_w"]) for s in ("valid", "test")}
        summaries[task] = read_json(os.path.join(sub.train.model_dir, "summary.json"))
    out: Dict[str, Any] = {"train": summaries}
    for split, (y, w) in labels.items():
        out[split] = multitask_report(y, {t: preds[t][split] for t in preds}, w)
    return out


def _free() -> None:
    import tf_keras as keras

    keras.backend.clear_session()
    gc.collect()


def run_cell(cfg: RunConfig, run_dir: str, printer: Callable[[str], None] = print, **_: Any) -> Dict[str, Any]:
    """Trains and evaluates one multi-task cell in ``run_dir`` (:func:`tfrec.evaluate.train_and_evaluate`, valid
    and test; single-task: a CTR and a CVR model); returns ``{"train", "valid", "test", "wall_seconds"}``."""
    from tfrec.evaluate import train_and_evaluate

    start = time.perf_counter()
    os.makedirs(run_dir, exist_ok=True)
    if cfg.model.name == "single_task":
        out = _single_task(cfg, run_dir, printer)
    else:
        cfg.train.model_dir = run_dir
        result = train_and_evaluate(cfg, splits=("valid", "test"), printer=printer)
        out = {"train": _summary(result["summary"]), **result["metrics"]}
        _free()
    out["wall_seconds"] = time.perf_counter() - start
    return out


def _report(*args, **kwargs):
    from tfrec.experiments.pwiser_report import build_pwiser_report

    return build_pwiser_report(*args, **kwargs)


PROTOCOL = register(Protocol(
    "pwiser", "PWiseR (Durmus et al. 2024): BCE vs BCE + PWiseR on multi-task models", _settings,
    metrics=PWISER_METRICS, run_cell=run_cell, report=_report, family="multitask",
    quick_config=QUICK_CONFIG, quick_data=_quick_data, datasets=_datasets))


def settings_of_part(settings: Sequence[Setting], part: str) -> List[Setting]:
    """The settings of ``part`` (in order)."""
    if part not in PARTS:
        raise ValueError(f"`part` must be one of {PARTS}. Received: part={part!r}")
    return [s for s in settings if part_of(s.name) == part]
