"""The cell of the ``pwiser`` protocol: one multi-task model (or the two models of single-task learning) trained
and evaluated on valid and test, run through :func:`tfrec.experiments.core.cell.run_cell`."""

from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict

import numpy as np

from tfrec.config import RunConfig, load_config
from tfrec.experiments.core.cell import free_session, train_summary
from tfrec.experiments.core.store import read_json, write_json
from tfrec.families.registry import get as family


def _single_task(cfg: RunConfig, run_dir: str, printer: Callable[[str], None]) -> Dict[str, Any]:
    """Trains a CTR and a CVR single-task model (each task's predictions saved, so a rerun after a kill keeps a
    finished task) and scores them together (CTCVR = pCTR * pCVR)."""
    from tfrec.evaluate import predict_split
    from tfrec.metrics import multitask_report

    multitask = family("multitask")
    preds: Dict[str, Dict[str, np.ndarray]] = {}
    labels, summaries = {}, {}
    for task in ("ctr", "cvr"):
        tasks = f"[{task}]" if cfg.model.loss.pwiser_tasks else "[]"
        sub = load_config(None, [f"model.task={task}", f"model.loss.pwiser_tasks={tasks}",
                                 f"train.model_dir='{os.path.join(run_dir, task)}'"], base=copy.deepcopy(cfg))
        done = os.path.join(sub.train.model_dir, "predictions.npz")
        if not os.path.exists(done):
            result = multitask.train(sub, printer=printer)
            arrays = {}
            for split in ("valid", "test"):
                p, y, w = predict_split(result.model, sub.data.dir, split, multitask.resolve(sub).data.eval_batch_size,
                                        outputs=(task,), beta_pos=sub.data.beta_pos)
                arrays.update({f"{split}_p": p[task], f"{split}_y": y, f"{split}_w": w})
            write_json(os.path.join(sub.train.model_dir, "summary.json"), train_summary(result.summary))
            tmp = done + ".tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, done)
            free_session()  # the CVR model trains in a fresh session
        with np.load(done) as z:
            preds[task] = {s: z[f"{s}_p"] for s in ("valid", "test")}
            labels = {s: (z[f"{s}_y"], z[f"{s}_w"]) for s in ("valid", "test")}
        summaries[task] = read_json(os.path.join(sub.train.model_dir, "summary.json"))
    out: Dict[str, Any] = {"train": summaries}
    for split, (y, w) in labels.items():
        out[split] = multitask_report(y, {t: preds[t][split] for t in preds}, w)
    return out


def run_cell(cfg: RunConfig, run_dir: str, printer: Callable[[str], None] = print, **_: Any) -> Dict[str, Any]:
    """Trains and evaluates one multi-task cell in ``run_dir`` (the family's ``train_and_evaluate``, valid and
    test; single-task: a CTR and a CVR model); returns ``{"train", "valid", "test"}``."""
    if cfg.model.name == "single_task":
        return _single_task(cfg, run_dir, printer)
    cfg.train.model_dir = run_dir
    result = family("multitask").train_and_evaluate(cfg, splits=("valid", "test"), printer=printer)
    return {"train": train_summary(result["summary"]), **result["metrics"]}
