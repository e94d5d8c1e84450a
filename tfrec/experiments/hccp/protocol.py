"""The HCCP pre-ranking ablation protocol (Zhao et al., WWW 2025, section 4): the variants of Tables 1 and 3.

``tfrec experiment hccp --data DIR`` (a ``tfrec prepare-hybrid`` output) trains the Three-Tower model once per
variant of :data:`tfrec.hccp_variants.VARIANTS` and seed (``model.variant``; everything else equal) and
evaluates each on the test split with :func:`tfrec.train_preranking.evaluate_preranking`: ISH / ISPH / ASH / ASPH
at ``preranking.hit_ks``, MAP / NDCG against the ranking stage's top-K at ``preranking.consistency_ks``, AUC on
impressions, and hit@``octile_k`` per item-popularity octile. The report (:mod:`tfrec.experiments.hccp.report`)
has the shapes of the paper's tables.

Readings of the paper:

* Tables 1 and 3 give every row as the absolute increase over Base in percentage points ("the table only
  displays the absolute increase value"), the ablations included, with the full HCCP repeated below them. The
  report does the same (Δ vs Base, pp, with a paired t-test over seeds), next to the values themselves
  (mean ± std over seeds), and adds the paired Δ of each w/o row against full HCCP (what each removed part
  costs: the ablation question of section 4.4.1).
* Table 1 is the hit-rate table (ISH / ISPH / ASH / ASPH at 4 K), Table 3 the consistency table (MAP / NDCG at
  3 K; the paper leaves out the tail K for consistency). Table 2 (Taobao) gives AUC: reported here on the
  test impressions per task.
* K scales with the simulator's candidate counts (the paper's 10, 100, 1000, 2000 over JD's candidate sets):
  the ``preranking`` config decides; ``--quick`` uses K = 5, 20, 40, 80 over 200 retrieved items and 5, 20, 40
  over ``N^r = 80`` ranked ones.
* Fig. 7 plots ISH / ISPH@100 per item-frequency octile (popular to long-tail); the report plots hit@``octile_k``
  per octile and variant (absolute, mean over seeds; an octile with no positive in the test lists is left out).
* COPR and Rethink (Table 1's other G3 rows) are the ``copr`` and ``rethink`` variants of the ``hccp-taobao``
  protocol (:mod:`tfrec.experiments.hccp.taobao`): Rethink distils the ranker's CTR, which the cascade lists do
  not carry.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Dict, List, Tuple

from tfrec.config import RunConfig
from tfrec.experiments.core.cell import train_summary
from tfrec.experiments.core.datasets import made_once, simulate_then_prepare
from tfrec.experiments.core.registry import Metric, Options, Protocol, Setting, packaged_config, register
from tfrec.experiments.hccp.variants import ABLATIONS, BASE, FULL, GROUPS, VARIANT_LABELS  # noqa: F401
from tfrec.families.registry import get as family

QUICK_CONFIG = packaged_config("experiment_quick_hccp.yaml")


def _settings(opts: Options) -> List[Setting]:
    return [Setting(v, {"method": label, "group": GROUPS[v]}, ("model.name=three_tower", f"model.variant={v}"),
                    baseline=None if v == BASE else BASE) for v, label in VARIANT_LABELS.items()]


def check_data(data_dir: str) -> None:
    """Raises ``DatasetError`` unless ``data_dir`` is a prepared hybrid-sample (pre-ranking) dataset with purchase
    labels."""
    from tfrec.errors import DatasetError

    schema = family("preranking").load_schema(data_dir)
    if "purchase" not in schema.tasks:  # Table 1's ISPH / ASPH need purchases (the Taobao lists: hccp-taobao)
        raise DatasetError(f"{data_dir} has no purchase labels (tasks {list(schema.tasks)}); the hccp protocol "
                           "reports purchase hit rates")


def run_preranking_cell(cfg: RunConfig, run_dir: str, printer: Callable[[str], None] = print,
                        **_: Any) -> Dict[str, Any]:
    """Trains ``cfg`` (a pre-ranking config) in ``run_dir`` and evaluates its best weights on the test split (the
    cell of the ``hccp`` protocol, run through :func:`tfrec.experiments.core.cell.run_cell`).

    Returns:
      ``{"train", "history", "test", "beta_end", "fig4_ash", "train_seconds", "eval_seconds"}``; ``fig4_ash`` is
      :func:`tfrec.experiments.hccp.fig4.ash_curves` of the test split; ``test`` is the
      :func:`tfrec.evaluate_preranking.preranking_report` (also in ``run_dir/preranking_metrics.json``);
      ``beta_end`` is Margin InfoNCE's ``beta`` at the end of training (None for the variants without it).
      A killed run resumes from its backup (same ``run_dir``).
    """
    preranking = family("preranking")
    cfg.train.model_dir = run_dir
    start = time.perf_counter()
    result = preranking.train(cfg, printer=printer)
    train_seconds = time.perf_counter() - start
    from tfrec.experiments.hccp.fig4 import FIG4_KEY, ash_curves  # looked up per call: tests spy on it

    arrays: Dict[str, Any] = {}
    report = preranking.evaluate(cfg, "test", model=result.model,
                                 output=os.path.join(run_dir, "preranking_metrics.json"), arrays=arrays)
    beta = result.history.get("beta") or [None]  # Margin InfoNCE's beta after the last epoch (None: no margin)
    return {"train": train_summary(result.summary), "history": result.history, "test": report,
            "beta_end": beta[-1],
            FIG4_KEY: ash_curves(arrays),  # Fig. 4: ASH@K of this model and of the ranking stage, every K
            "train_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - start - train_seconds}


def cell_summary(run: Dict[str, Any]) -> str:
    """The progress line of a finished cell: click AUC, the first ISH and the first NDCG of the test split."""
    test = run["test"]
    keys = ["AUC_click"] + [next((k for k in test if k.startswith(p)), "") for p in ("ISH@", "NDCG@")]
    parts = [f"{k} {test[k]:.4f}" for k in keys if isinstance(test.get(k), float) and math.isfinite(test[k])]
    return ", ".join(parts) or "no finite test metric"


#: Margin InfoNCE's beta at the end of training: shown beside each variant (issue: the margin must act).
BETA_END = Metric("beta_end", "beta at the end", ("beta_end",), "lower", scientific=True)
#: Recorded for a document's reading (not shown in its tables): how training went, epoch by epoch.
TRAINING_METRICS = (
    Metric("best_epoch", "best epoch", ("train", "best_epoch"), "lower"),
    Metric("beta_epoch1", "beta after epoch 1", ("history", "beta", 0), "lower", scientific=True),
    *(Metric(f"val_auc_epoch{e + 1}", f"valid click AUC after epoch {e + 1}", ("history", "val_auc", e), "higher")
      for e in range(4)))


def results_metrics(run: Dict[str, Any]) -> Tuple[Tuple[Metric, ...], Tuple[Metric, ...]]:
    """What a reference-results document takes from an HCCP cell: Table 1's hit rates (ISH, ISPH, ASH, ASPH at
    the run's ``hit_ks``), Table 3's consistency (MAP, NDCG at ``consistency_ks``), the AUCs on impressions and
    Margin InfoNCE's final ``beta``; recorded besides, :data:`TRAINING_METRICS` (best epoch, ``beta`` and the
    validation click AUC after the first epochs). The K come from the run's test report (the config decides them)."""
    from tfrec.experiments.hccp.report import metric_keys

    keys = metric_keys({0: {"run": run}})
    test = [Metric(k, k, ("test", k), "higher") for group in ("hit", "consistency", "auc") for k in keys[group]]
    return tuple(test) + (BETA_END,), TRAINING_METRICS


def prepare_quick_data(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> str:
    """Simulates a small cascade and prepares its hybrid samples under ``out_dir/quick_hccp_data`` (reused when
    the ``cascade`` and ``hybrid`` settings are unchanged). Returns the prepared dataset directory."""
    import dataclasses

    from pipelines.hybrid_samples import run as prepare
    from tfrec.simulation.cascade import simulate_cascade

    root = os.path.join(os.path.abspath(out_dir), "quick_hccp_data")
    logs, data_dir = os.path.join(root, "logs"), os.path.join(root, "data")
    sim = dataclasses.replace(cfg.cascade, output=logs)
    hyb = dataclasses.replace(cfg.hybrid, inputs=[os.path.join(logs, "requests.jsonl")],
                              items=[os.path.join(logs, "items.jsonl")], output=data_dir)
    wanted = {"cascade": dataclasses.asdict(sim), "hybrid": dataclasses.asdict(hyb)}

    def make() -> None:
        simulate_then_prepare(
            printer, "quick data",
            f"a cascade of {sim.requests:,} requests ({sim.retrieved} retrieved, {sim.ranked} ranked) -> {logs}",
            lambda: simulate_cascade(sim),
            lambda meta: f"click rate {meta['click_rate']:.4f}; preparing hybrid samples with Beam ({hyb.runner}) -> "
                         f"{data_dir}",
            lambda: prepare(hyb), "requests")

    return made_once(root, data_dir, wanted, make, printer)


def _report(*args, **kwargs):
    from tfrec.experiments.hccp.report import build_hccp_report

    return build_hccp_report(*args, **kwargs)


register(Protocol("hccp", "HCCP (WWW 2025) Tables 1 and 3: pre-ranking variants and ablations", _settings,
                  metrics=(), run_cell=run_preranking_cell, report=_report,
                  check_data=check_data, summary=cell_summary, family="preranking", quick_config=QUICK_CONFIG,
                  quick_data=prepare_quick_data, results_metrics=results_metrics))
