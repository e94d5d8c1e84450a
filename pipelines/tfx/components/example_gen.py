"""ExampleGen: the dataset family's Beam pipeline, raw logs -> a prepared dataset (an ``Examples`` artifact).

The family (``pipeline.family``: ``pointwise``, ``multitask``, ``preranking``; :mod:`tfrec.families`) runs its
own pipeline on its own config section (:meth:`tfrec.families.Family.run_pipeline`): ``pointwise``
(``pipelines.criteo``, section ``prepare``), ``multitask`` (``pipelines.multitask``, section ``prepare``) and
``preranking`` (the HCCP hybrid samples of ``pipelines.hybrid_samples``, section ``hybrid``: cascade request logs
and an item table -> one ``ExampleListWithContext`` per request); a family registered in :mod:`tfrec.families`
plugs in the same way. ``pipeline.beam_args`` are appended to the family's own Beam arguments, so the same
component runs on the DirectRunner, Flink, Spark or Dataflow.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Dict

from pipelines.tfx.artifacts import Examples
from pipelines.tfx.components import ComponentError

NAME = "example_gen"
INPUTS = ()


def family(cfg):
    """The family of ``cfg.pipeline.family`` (:func:`tfrec.families.get`).

    Raises:
      ComponentError: no such family.
    """
    from tfrec.families import get

    try:
        return get(cfg.pipeline.family)
    except ValueError as e:
        raise ComponentError(f"`pipeline.family`: {e}") from None


def _input_fingerprints(section, groups) -> Dict[str, list]:
    """Every matched input file of the section's ``groups`` (lists of paths or globs) with its size and
    modification time (the external inputs of the run)."""
    out = {}
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
    fam = family(cfg)
    section = dataclasses.asdict(getattr(cfg, fam.pipeline_section))  # the family's own section
    section.pop("output")
    return {"family": fam.name, fam.pipeline_section: section, "beam_args": list(cfg.pipeline.beam_args),
            "input_files": _input_fingerprints(getattr(cfg, fam.pipeline_section), fam.pipeline_inputs)}


def execute(ctx, inputs, params):
    fam = family(ctx.cfg)
    out = os.path.join(ctx.output_dir, "examples")
    section = getattr(ctx.cfg, fam.pipeline_section)
    section = dataclasses.replace(section, output=out,
                                  beam_args=list(section.beam_args) + list(ctx.cfg.pipeline.beam_args))
    stats = fam.pipeline_stats(fam.run_pipeline(section))
    # A record is a row, or one request's list (the family's unit).
    ctx.printer(f"      {fam.unit} written {stats.get('rows_written')}; {fam.unit} rejected {stats.get('rows_rejected')}")
    return {"examples": Examples(uri=ctx.relative(out), properties={
        "family": fam.name, "rows_written": stats.get("rows_written"),
        "rows_rejected": stats.get("rows_rejected"), "positive_rate": stats.get("positive_rate")})}
