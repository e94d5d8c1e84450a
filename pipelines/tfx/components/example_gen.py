"""ExampleGen: the dataset family's Beam pipeline, raw logs -> a prepared dataset (an ``Examples`` artifact).

The family (``pipeline.family``) picks the pipeline through :data:`FAMILIES`: ``criteo`` (``pipelines.criteo``,
section ``prepare``), ``multitask`` (``pipelines.multitask``, section ``prepare``) and ``hybrid`` (the HCCP hybrid
samples of ``pipelines.hybrid_samples``, section ``hybrid``: cascade request logs and an item table -> one
``ExampleListWithContext`` per request); other families plug in with :func:`register_family`.
``pipeline.beam_args`` are appended to the family's own Beam arguments, so the same component runs on the
DirectRunner, Flink, Spark or Dataflow.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

from pipelines.tfx.artifacts import Examples
from pipelines.tfx.components import ComponentError

NAME = "example_gen"
INPUTS = ()

#: family name -> fn(cfg: PipelineConfig, output_dir: str) -> stats dict (the dataset's stats.json).
FAMILIES: Dict[str, Callable] = {}
#: family name -> its label features (StatisticsGen counts them; the first is the family's main label).
LABELS: Dict[str, Tuple[str, ...]] = {}
#: family name -> {exported task: label feature} (the Evaluator's default label of a task).
TASK_LABELS: Dict[str, Dict[str, str]] = {}
#: Families whose records are ``ExampleListWithContext`` (one list per request) instead of ``tf.Example`` rows.
LISTWISE: set = set()


def register_family(name: str, fn: Callable, labels: Sequence[str] = ("label",),
                    task_labels: Optional[Dict[str, str]] = None, listwise: bool = False) -> None:
    """Registers the pipeline of a dataset family.

    Args:
      name: the ``pipeline.family`` value.
      fn: ``fn(cfg, output_dir) -> stats`` writes the prepared dataset.
      labels: the label features of the written records, main label first.
      task_labels: exported task name -> the label it is evaluated against (default ``{"ctr": labels[0]}``).
      listwise: the records are ``ExampleListWithContext`` (StatisticsGen and the Evaluator take their list-wise
        path; labels are counted and scored on the impressions).
    """
    FAMILIES[name] = fn
    LABELS[name] = tuple(labels)
    TASK_LABELS[name] = dict(task_labels or {"ctr": labels[0]})
    (LISTWISE.add if listwise else LISTWISE.discard)(name)


def is_listwise_family(family: str) -> bool:
    """Whether ``family`` writes ``ExampleListWithContext`` records."""
    return family in LISTWISE


def labels_of(family: str) -> Tuple[str, ...]:
    """The label features of ``family`` (``("label",)`` for an unknown family)."""
    return LABELS.get(family, ("label",))


def _criteo(cfg, output_dir: str) -> Dict[str, object]:
    from pipelines.criteo import run

    prepare = dataclasses.replace(cfg.prepare, output=output_dir,
                                  beam_args=list(cfg.prepare.beam_args) + list(cfg.pipeline.beam_args))
    return run(prepare)


def _multitask(cfg, output_dir: str) -> Dict[str, object]:
    from pipelines.multitask import run

    prepare = dataclasses.replace(cfg.prepare, output=output_dir,
                                  beam_args=list(cfg.prepare.beam_args) + list(cfg.pipeline.beam_args))
    stats = run(prepare)
    # The Examples artifact's positive rate is the main (click) label's, as for the single-label families.
    stats.setdefault("positive_rate", stats.get("click_rate"))
    return stats


def _hybrid(cfg, output_dir: str) -> Dict[str, object]:
    from pipelines.hybrid_samples import run

    hybrid = dataclasses.replace(cfg.hybrid, output=output_dir,
                                 beam_args=list(cfg.hybrid.beam_args) + list(cfg.pipeline.beam_args))
    stats = run(hybrid)
    # One row of the Examples artifact is one request's list; its positive rate is the click rate on impressions.
    rates = stats["label_rate_on_impressions"]
    return {**stats, "rows_written": stats["requests_written"], "rows_rejected": stats["requests_rejected"],
            "positive_rate": {s: (rates[s] or {}).get("click") for s in rates}}


register_family("criteo", _criteo)
# AliExpress / Ali-CCP (``prepare.input_format`` aliexpress or aliccp): two labels; CTR on click, CTCVR on conversion.
register_family("multitask", _multitask, labels=("click", "conversion"),
                task_labels={"ctr": "click", "ctcvr": "conversion"})
# HCCP pre-ranking (section ``hybrid``): lists of N1-N5 items; the exported tasks are named after their labels.
register_family("hybrid", _hybrid, labels=("click", "purchase"),
                task_labels={"click": "click", "purchase": "purchase"}, listwise=True)


def _input_fingerprints(cfg, section=None, groups=("inputs", "train", "valid", "test")) -> Dict[str, list]:
    """Every matched input file with its size and modification time (the external inputs of the run)."""
    out = {}
    section = cfg.prepare if section is None else section
    for group in groups:
        for pattern in getattr(section, group):
            if "://" in pattern:
                out[pattern] = [pattern]  # remote files: the pattern itself identifies the input
                continue
            for path in sorted(glob.glob(pattern)):
                st = os.stat(path)
                out.setdefault(pattern, []).append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    return out


def parameters(cfg) -> Dict[str, object]:
    if is_listwise_family(cfg.pipeline.family):  # the hybrid samples read their own section (logs and item table)
        hybrid = dataclasses.asdict(cfg.hybrid)
        hybrid.pop("output")
        return {"family": cfg.pipeline.family, "hybrid": hybrid, "beam_args": list(cfg.pipeline.beam_args),
                "input_files": _input_fingerprints(cfg, cfg.hybrid, ("inputs", "items"))}
    prepare = dataclasses.asdict(cfg.prepare)
    prepare.pop("output")
    return {"family": cfg.pipeline.family, "prepare": prepare, "beam_args": list(cfg.pipeline.beam_args),
            "input_files": _input_fingerprints(cfg)}


def execute(ctx, inputs, params):
    fn = FAMILIES.get(params["family"])
    if fn is None:
        raise ComponentError(f"`pipeline.family` {params['family']!r} has no ExampleGen; known: {sorted(FAMILIES)}")
    out = os.path.join(ctx.output_dir, "examples")
    stats = fn(ctx.cfg, out)
    unit = "requests" if is_listwise_family(params["family"]) else "rows"  # a list-wise record is one request
    ctx.printer(f"      {unit} written {stats.get('rows_written')}; {unit} rejected {stats.get('rows_rejected')}")
    return {"examples": Examples(uri=ctx.relative(out), properties={
        "family": params["family"], "rows_written": stats.get("rows_written"),
        "rows_rejected": stats.get("rows_rejected"), "positive_rate": stats.get("positive_rate")})}
