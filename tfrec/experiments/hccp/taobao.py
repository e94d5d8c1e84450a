"""HCCP's Table 2 protocol on the public Taobao display-ad log (Zhao et al., WWW 2025, section 4.1, Table 2).

``tfrec experiment hccp-taobao --data <Taobao lists> --seeds 5 --out DIR`` trains the Three-Tower model once per
row of Table 2 and seed (``model.variant``: Base, Base+ListNet, Base+ListMLE, COPR, Rethink, HCCP; the
lists of ``pipelines.taobao``: impressions in DIN's ranking order, pool negatives, no N2 / N3) and evaluates the
best weights on the test day: AUC on the test impressions and ISH@K (K = ``preranking.hit_ks``, 2 and 5 as in
Table 2) over the test requests. The report (:mod:`tfrec.experiments.hccp.taobao_report`) prints the values
(mean +- std over seeds), the paired difference to Base in pp, and the paper's numbers beside them.

``--quick`` (``tfrec/configs/experiment_quick_hccp_taobao.yaml``) makes its own dataset under
``<out>/quick_taobao_data``: the Taobao simulator (``taobao_sim``), the requests pipeline, DIN trained on the
training days, the lists pipeline scored by DIN (:func:`prepare_taobao`). The same function prepares the real
files when ``taobao.raw_sample`` (with ``taobao.ad_feature``, ...) or ``taobao.joined`` is set.

Readings:

* ISH@K (HCCP 4.1.2, after [37]): ``1/|U| sum_u |top_K(u) n I_u| / |I_u|`` over the test requests with a click,
  ``top_K(u)`` the request's K best-scored impressions by the click score and ``I_u`` its clicked impressions
  (the log has no other candidates; :func:`tfrec.metrics.ranking.hit_at_k`).
* AUC: of the click probability on every test impression (``tfrec.metrics.classification.auc``).
* Each cell also writes ``test_predictions.npz`` (request ids, labels, scores and sample types of the test
  lists) beside its run, so every number of the table can be recomputed from it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, Dict, List

import numpy as np

from tfrec.config import RunConfig
from tfrec.experiments.core.cell import train_summary
from tfrec.experiments.core.datasets import made_once
from tfrec.experiments.core.registry import Options, Protocol, Setting, packaged_config, register
from tfrec.families.registry import get as family

NAME = "hccp-taobao"
#: Variant -> Table 2's row, in the paper's order.
VARIANT_LABELS: Dict[str, str] = {"base": "Base", "base_listnet": "Base+ListNet", "base_listmle": "Base+ListMLE",
                                  "copr": "COPR", "rethink": "Rethink", "hccp": "HCCP"}
GROUPS: Dict[str, str] = {"base": "G1", "base_listnet": "G1", "base_listmle": "G2", "copr": "G3",
                          "rethink": "G3", "hccp": "G3"}
BASE = "base"
PREDICTIONS = "test_predictions.npz"
QUICK_CONFIG = packaged_config("experiment_quick_hccp_taobao.yaml")


def _settings(opts: Options) -> List[Setting]:
    return [Setting(v, {"method": label, "group": GROUPS[v]}, ("model.name=three_tower", f"model.variant={v}"),
                    baseline=None if v == BASE else BASE) for v, label in VARIANT_LABELS.items()]


def check_data(data_dir: str) -> None:
    """Raises ``DatasetError`` unless ``data_dir`` holds Taobao lists (``pipelines.taobao.run_lists``)."""
    from tfrec.errors import DatasetError

    schema = family("preranking").load_schema(data_dir)
    if schema.name != "taobao":
        raise DatasetError(f"{data_dir} holds {schema.name!r} lists, not the Taobao lists of pipelines.taobao")


def collect_test(model, dataset) -> Dict[str, np.ndarray]:
    """The click scores and fields of every list of ``dataset``: ``[U, L]`` arrays (``request_id`` ``[U]``)."""
    import tensorflow as tf

    predict = tf.function(lambda x: model(x, training=False)["click"], input_signature=[dataset.element_spec[0]],
                          autograph=False)
    parts: Dict[str, list] = {k: [] for k in ("request_id", "score", "click", "sample_type", "example_mask")}
    for features, _ in dataset:
        parts["score"].append(predict(features).numpy())
        for k in ("request_id", "click", "sample_type", "example_mask"):
            parts[k].append(features[k].numpy())
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def taobao_report(data: Dict[str, np.ndarray], ks=(2, 5)) -> Dict[str, float]:
    """Table 2's metrics (module docstring) from :func:`collect_test`'s arrays."""
    from tfrec.metrics.classification import auc
    from tfrec.metrics.ranking import hit_at_k

    impressions = data["example_mask"].astype(bool) & (data["sample_type"] == 1)
    labels = data["click"][impressions]
    report: Dict[str, Any] = {
        "AUC": auc(labels, data["score"][impressions]) if 0 < labels.sum() < labels.size else float("nan"),
        "requests": int(impressions.shape[0]), "impressions": int(impressions.sum()), "clicks": int(labels.sum())}
    clicked = impressions & (data["click"] > 0.5)
    for k in ks:
        hit = hit_at_k(data["score"], clicked, int(k), impressions)
        report[f"ISH@{k}"], report["requests_with_click"] = hit["hit"], hit["requests"]
    return report


def run_taobao_cell(cfg: RunConfig, run_dir: str, printer: Callable[[str], None] = print,
                    **_: Any) -> Dict[str, Any]:
    """Trains ``cfg`` in ``run_dir``, evaluates the best weights on the test lists, saves their predictions (the
    cell of the ``hccp-taobao`` protocol, run through :func:`tfrec.experiments.core.cell.run_cell`).

    Returns:
      ``{"train", "history", "test", "train_seconds", "eval_seconds"}`` (``test``: Table 2's metrics,
      :func:`taobao_report`).
    """
    import tfrec.data as data_lib
    from tfrec.listwise_data import make_listwise_dataset

    preranking = family("preranking")
    cfg.train.model_dir = run_dir
    start = time.perf_counter()
    result = preranking.train(cfg, printer=printer)
    train_seconds = time.perf_counter() - start
    schema = preranking.load_schema(cfg.data.dir)
    ds = make_listwise_dataset(data_lib.split_files(cfg.data.dir, "test"), schema, cfg.data.eval_batch_size,
                               cfg.preranking.eval_list_size, training=False)
    data = collect_test(result.model, ds)
    np.savez_compressed(os.path.join(run_dir, PREDICTIONS), **data)
    return {"train": train_summary(result.summary), "history": result.history,
            "test": taobao_report(data, cfg.preranking.hit_ks), "train_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - start - train_seconds}


def cell_summary(run: Dict[str, Any]) -> str:
    """The progress line of a finished cell: test AUC and ISH@K."""
    test = run["test"]
    parts = [f"{k} {v:.4f}" for k, v in test.items() if (k == "AUC" or k.startswith("ISH@"))
             and isinstance(v, float) and math.isfinite(v)]
    return ", ".join(parts) or "no finite test metric"


def prepare_taobao(cfg: RunConfig, root: str, printer: Callable[[str], None] = print) -> str:
    """The Taobao lists under ``root``: simulated files (``taobao_sim``) unless ``taobao.raw_sample`` or
    ``taobao.joined`` name real ones, the requests pipeline, DIN, the lists pipeline. Reused when the
    ``taobao_sim``, ``taobao`` and ``din`` settings are unchanged. Returns the lists directory."""
    from pipelines.taobao.lists_pipeline import run_lists
    from pipelines.taobao.pipeline import run_requests
    from tfrec.simulation.taobao import FILES, simulate_taobao
    from tfrec.train_din import SCORER, train_din

    root = os.path.abspath(root)
    raw, req_dir, din_dir, lists = (os.path.join(root, d) for d in ("raw", "requests", "din", "lists"))
    real = bool(cfg.taobao.raw_sample or cfg.taobao.joined)
    sim = dataclasses.replace(cfg.taobao_sim, output=raw)
    tb = dataclasses.replace(cfg.taobao, output=req_dir, lists_output=lists)
    if not real:
        names = ("raw_sample", "ad_feature", "user_profile") + (("behavior_log",) if sim.behavior_log else ())
        if sim.layout == "joined":
            names = ("joined",)
        tb = dataclasses.replace(tb, **{k: [os.path.join(raw, FILES[k])] for k in names})
    wanted = {"taobao_sim": None if real else dataclasses.asdict(sim), "taobao": dataclasses.asdict(tb),
              "din": dataclasses.asdict(cfg.din)}
    def make() -> dict:
        if not real:
            printer(f"taobao data: simulating {sim.impressions:,} impressions of {sim.users:,} users ({sim.layout}) "
                    f"-> {raw}")
            meta = simulate_taobao(sim)
            printer(f"taobao data: click rate {meta['click_rate']:.4f}, AUC of the true probability "
                    f"{meta['true_probability_auc']:.4f}")
        t0 = time.perf_counter()
        st = run_requests(tb)
        printer(f"taobao data: requests pipeline ({tb.runner}) {time.perf_counter() - t0:.0f} s; impressions "
                + ", ".join(f"{s} {n:,}" for s, n in st["impressions_written"].items())
                + f"; {st['impressions_rejected']:,} rejected")
        din = train_din(cfg.din, req_dir, din_dir, printer=printer)
        ranker = {"model": "DIN", "test_auc": din["test"]["auc"], "valid_auc": din["valid"]["auc"],
                  "scorer": os.path.join(din_dir, SCORER)}
        t0 = time.perf_counter()
        ls = run_lists(tb, os.path.join(din_dir, SCORER), max_history=cfg.din.max_history, ranker=ranker)
        printer(f"taobao data: lists pipeline {time.perf_counter() - t0:.0f} s; requests "
                + ", ".join(f"{s} {n:,}" for s, n in ls["requests_written"].items())
                + "; no N2 / N3 (impressions only)")
        return {"ranker": ranker}

    return made_once(root, lists, wanted, make, printer, label="taobao data")


def prepare_quick_data(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> str:
    """``--quick``: :func:`prepare_taobao` under ``<out>/quick_taobao_data``."""
    return prepare_taobao(cfg, os.path.join(os.path.abspath(out_dir), "quick_taobao_data"), printer)


def _report(*args, **kwargs):
    from tfrec.experiments.hccp.taobao_report import build_taobao_report

    return build_taobao_report(*args, **kwargs)


register(Protocol(NAME, "HCCP (WWW 2025) Table 2: pre-ranking on the public Taobao display-ad log", _settings,
                  metrics=(), run_cell=run_taobao_cell, report=_report, check_data=check_data, summary=cell_summary,
                  family="preranking", quick_config=QUICK_CONFIG, quick_data=prepare_quick_data))
