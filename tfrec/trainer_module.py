"""tfrec's Trainer module: ``run_fn(fn_args)`` with the attribute names of TFX's ``FnArgs``.

The pipeline's Trainer component loads a module file by path and calls its ``run_fn``; this module is the
default one and a user can hand the same file to a TFX ``Trainer(module_file=...)``: it reads only ``FnArgs``
attributes that TFX also sets (``train_files``, ``eval_files``, ``train_steps``, ``eval_steps``,
``serving_model_dir``, ``model_run_dir``, ``custom_config``).

``custom_config`` carries tfrec's config sections (``data``, ``model``, ``train``, ``preranking`` as mappings, as in
a ``tfrec train`` YAML); ``data.dir`` and ``train.model_dir`` come from ``train_files`` and
``model_run_dir``. The training run is the dataset family's (:func:`tfrec.families.family_of`; checkpoints and
``BackupAndRestore`` in ``model_run_dir``, so a killed Trainer resumes where it was); a ``preranking`` dataset
(hybrid samples) trains the HCCP Three-Tower model of the ``preranking`` section, exported
with its ``user_embedding``, ``item_embedding`` and ``score_candidates`` signatures besides the stock ones, and
the precomputed item embeddings of the item table in ``assets.extra/item_embeddings.tfrecord``, as ``tfrec export
--items`` writes them: the table is ``custom_config["item_table"]`` when given, else the dataset's own
``items.jsonl``, written by ``pipelines.hybrid_samples``); the export is :func:`export.export_model` into
``serving_model_dir``,
written by the chief only (other workers of a MultiWorkerMirroredStrategy cluster write to a temporary
directory, see :func:`tfrec.devices.worker_dir`). ``eval_steps`` (> 0) caps the validation batches per epoch
(``train.validation_steps``; 0 validates on the whole valid split).

Under a stock TFX ``Trainer`` the train files are TFX's ``<examples>/Split-train/*`` patterns; the side files
(``schema.json``, ``vocab/``, ``transform.json``, ``stats.json``) are found in the Examples artifact (tfrec's
ExampleGen components write them there) or in ``custom_config["dataset_dir"]`` (the ``tfrec prepare`` output that a
stock ``ImportExampleGen`` read); see :mod:`tfrec.trainer_data`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Dict, List, Optional

from tfrec.config import RunConfig, load_config

#: The :class:`tfrec.config.RunConfig` sections ``custom_config`` may carry (``loss``: the previous release's DCN V2
#: loss section, read as ``model.loss``).
SECTIONS = ("data", "model", "train", "preranking", "loss")


@dataclasses.dataclass
class FnArgs:
    """The Trainer's arguments, with TFX's ``FnArgs`` attribute names.

    Attributes:
      train_files: train split files (``<dataset>/train-*.tfrecord.gz``; the dataset directory is their parent).
      eval_files: validation split files.
      train_steps: total training steps (0: ``train.epochs`` passes over the train split).
      eval_steps: validation steps (0: the whole split).
      serving_model_dir: where the SavedModel goes.
      model_run_dir: checkpoints, logs, history.
      custom_config: tfrec config sections (``data``, ``model``, ``train``, ``preranking``) and ``user`` extras.
      schema_path: the pipeline's schema.json (optional).
      transform_output: unused by tfrec (the model owns its preprocessing); kept for TFX compatibility.
    """

    train_files: List[str]
    eval_files: List[str]
    train_steps: int
    eval_steps: int
    serving_model_dir: str
    model_run_dir: str
    custom_config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_path: Optional[str] = None
    transform_output: Optional[str] = None


def run_config(fn_args) -> RunConfig:
    """The :class:`tfrec.config.RunConfig` of a Trainer call.

    The dataset directory is :func:`tfrec.trainer_data.dataset_dir`'s: the train files' directory, or under TFX a
    view of links in ``<model_run_dir>/dataset`` to the split files and the side files.

    Raises:
      ValueError: no train files, train files outside one prepared dataset directory, or no side files.
    """
    from tfrec.trainer_data import dataset_dir

    sections = {k: v for k, v in (fn_args.custom_config or {}).items() if k in SECTIONS}
    cfg = load_config(values=sections, validate=False)
    view = os.path.join(fn_args.model_run_dir, "dataset") if fn_args.model_run_dir else None
    cfg.data.dir = dataset_dir(fn_args.train_files, fn_args.eval_files or [], fn_args.custom_config, view_dir=view)
    cfg.train.model_dir = fn_args.model_run_dir
    if fn_args.eval_steps:
        cfg.train.validation_steps = int(fn_args.eval_steps)
    if fn_args.train_steps:
        cfg.train.steps_per_epoch = max(1, -(-int(fn_args.train_steps) // cfg.train.epochs))
    cfg.validate()
    return cfg


def item_table_of(fn_args, data_dir: str) -> Optional[str]:
    """The item table whose embeddings a list-wise export precomputes: ``custom_config["item_table"]``, else the
    dataset's ``items.jsonl`` (``pipelines.hybrid_samples`` writes it), else None (no embeddings)."""
    from pipelines.hybrid_samples.validate import ITEMS_FILE

    given = (fn_args.custom_config or {}).get("item_table")
    if given:
        return str(given)
    path = os.path.join(data_dir, ITEMS_FILE)
    return path if os.path.exists(path) else None


def run_fn(fn_args, extra_callbacks: Optional[list] = None) -> None:
    """Trains and exports; see the module docstring."""
    from export import export_model
    from tfrec import devices
    from tfrec.families import family_of

    cfg = run_config(fn_args)
    cfg.train.model_dir = devices.worker_dir(cfg.train.model_dir)
    family = family_of(cfg.data.dir)
    result = family.train(cfg, extra_callbacks=extra_callbacks)
    schema = family.load_schema(cfg.data.dir)
    item_table = item_table_of(fn_args, cfg.data.dir) if family.item_embeddings else None
    target = devices.worker_dir(fn_args.serving_model_dir)
    base = target.rstrip("/") + ".export"
    if os.path.exists(base):
        shutil.rmtree(base)  # a killed attempt's staging
    exported = export_model(result.model, base, schema, data_dir=cfg.data.dir, item_table=item_table)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.rename(exported.path, target)
    shutil.rmtree(base, ignore_errors=True)
    if not devices.is_chief():
        shutil.rmtree(os.path.dirname(target), ignore_errors=True)
