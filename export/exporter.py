"""``export_model``: a trained tfrec model -> the next integer version of a TF Serving SavedModel.

The export holds only what serving needs: the model's variables, its vocabulary lookup tables and numeric
transforms (they are TensorFlow ops and constants inside the model, so raw values go in), and the signatures of
:mod:`export.signatures`. It is written with tf-keras' ``ExportArchive`` (which tracks the model's variables and
lookup tables, not the Keras training machinery), then:

* the ``classification`` and ``regression`` signatures get TF Serving's Classify / Regress method names with the
  stock ``MethodNameUpdater`` (``tf.saved_model.save`` writes every signature as Predict), and the SavedModel
  fingerprint is recomputed for the edited ``saved_model.pb``;
* ``assets.extra/tf_serving_warmup_requests`` is written (:mod:`export.warmup`), and
  ``assets.extra/tfrec_export.json`` records the tasks, the signatures and the feature schema;
* with ``validate=True``, the staged directory is validated (:func:`export.validate.validate`: a fresh process,
  stock ops, the Keras model's outputs) before anything is published; a failed validation removes it and raises
  :class:`ExportValidationError`, so no server polling the base path ever sees that version;
* the finished directory is renamed to the next free version (:mod:`export.versions`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

import export.preranking as preranking
import export.signatures as sig
from export.validate import ValidationReport, validate as validate_export
import export.versions as versions
import export.warmup as warmup
from tfrec.families.registry import family_of_model
from tfrec.features import PointwiseSchema

INFO_FILE = "tfrec_export.json"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export landed.

    Attributes:
      version: the integer version directory name.
      path: ``<base_path>/<version>``.
      signatures: signature name -> TF Serving method name.
      tasks: exported task names (each has outputs ``<task>`` and ``<task>_logit``).
      warmup_records: records written to ``assets.extra/tf_serving_warmup_requests``.
      examples: the serialized ``tf.Example`` rows the warmup records carry.
      validation: the report of the validation run before publishing (``validate=True``), else None.
    """

    version: int
    path: str
    signatures: Dict[str, str]
    tasks: List[str]
    warmup_records: int
    examples: List[bytes] = dataclasses.field(repr=False, default_factory=list)
    validation: Optional[ValidationReport] = dataclasses.field(repr=False, default=None)


class ExportValidationError(RuntimeError):
    """The staged export failed :func:`export.validate.validate`; nothing was published. ``report`` has the
    checks."""

    def __init__(self, report: ValidationReport):
        failed = [name for name, passed, _ in report.checks if not passed]
        super().__init__(f"validation failed: {', '.join(failed)}; nothing was published")
        self.report = report


def _ensure_built(model) -> None:
    if not model.built:
        model.build_from_config(None)


def _write_savedmodel(signature_set: sig.SignatureSet, export_dir: str) -> Dict[str, str]:
    archive = keras.export.ExportArchive()
    archive.track(signature_set.model)
    functions = signature_set.functions()
    for name, (fn, _) in functions.items():
        archive.add_endpoint(name, fn)
    # ExportArchive prints every endpoint's full signature; the export reports its own summary instead.
    interactive = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()
    try:
        archive.write_out(export_dir)
    finally:
        if interactive:
            keras.utils.enable_interactive_logging()
    methods = {name: method for name, (_, method) in functions.items()}
    _set_method_names(export_dir, methods)
    return methods


def _set_method_names(export_dir: str, methods: Mapping[str, str]) -> None:
    updater = tf.compat.v1.saved_model.signature_def_utils.MethodNameUpdater(export_dir)
    changed = False
    for name, method in methods.items():
        if method != sig.PREDICT_METHOD:
            updater.replace_method_name(signature_key=name, method_name=method, tags=["serve"])
            changed = True
    if not changed:
        return
    updater.save()
    _refresh_fingerprint(export_dir)


def _refresh_fingerprint(export_dir: str) -> None:
    # fingerprint.pb holds a checksum of saved_model.pb; after the method-name edit it is recomputed with the
    # same function tf.saved_model.save uses (no public API exposes it), or dropped if that is unavailable.
    path = os.path.join(export_dir, "fingerprint.pb")
    try:
        from tensorflow.python.saved_model import fingerprinting_utils

        fingerprinting_utils.write_fingerprint(export_dir)
    except (ImportError, AttributeError, ValueError):
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def _write_info(export_dir: str, signature_set: sig.SignatureSet, methods: Mapping[str, str]) -> None:
    info = {"model": type(signature_set.model).__name__, "tasks": [t.task for t in signature_set.tasks],
            "signatures": dict(methods), "schema": signature_set.schema.to_json(),
            "tensorflow_version": tf.__version__}
    path = os.path.join(export_dir, warmup.WARMUP_DIR, INFO_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(info, indent=2))


def export_model(model, base_path: str, schema: Optional[PointwiseSchema] = None,
                 examples: Optional[Sequence[bytes]] = None, rows: Optional[Sequence[Mapping]] = None,
                 data_dir: Optional[str] = None, model_name: str = "", warmup_rows: int = 16,
                 item_table: Optional[str] = None, warmup_lists: int = 2, validate: bool = False,
                 tolerance: float = 1e-6) -> ExportResult:
    """Exports ``model`` as the next integer version under ``base_path``, atomically.

    Args:
      model: a tfrec model (DCN V2, a multi-task model, the pre-ranking ThreeTower; built, or buildable from
        its input signature).
      base_path: the model's TF Serving base path (created if missing).
      schema: the dataset's schema (the parse spec of the signatures); default: read off the model's inputs.
        A :class:`tfrec.features.ListwiseSchema` (or a model with ``serving_functions``) takes the pre-ranking
        path of :mod:`export.preranking`.
      examples: serialized ``tf.Example`` rows for the warmup requests (first ``warmup_rows``; pre-ranking:
        serialized ``ExampleListWithContext``, first ``warmup_lists``), or
      rows: raw rows (feature -> value; see :func:`export.warmup.example_from_row`), or
      data_dir: a prepared dataset whose first rows are used. With none of the three, one all-missing example.
      model_name: ``model_spec.name`` in the warmup requests.
      warmup_rows: rows per warmup request (>= 1).
      item_table: pre-ranking only: an ``items.jsonl`` whose item embeddings go to
        ``assets.extra/item_embeddings.tfrecord`` (:func:`export.preranking.write_item_embeddings`).
      warmup_lists: pre-ranking only: example lists in the ``score_candidates`` warmup request.
      validate: validate the staged export against ``model`` (:func:`export.validate.validate`) before
        publishing it; ``tolerance`` is the largest difference allowed.

    Returns:
      :class:`ExportResult` (version, path, signatures, tasks, warmup record count, examples, validation).

    Raises:
      NotADirectoryError: ``base_path`` is a file.
      ValueError: the schema does not match the model, or bad warmup inputs.
      ExportValidationError: ``validate`` and a check failed (nothing published; ``.report`` has the checks).
    """
    if int(warmup_rows) < 1:
        raise ValueError(f"`warmup_rows` must be >= 1. Received: warmup_rows={warmup_rows}")
    _ensure_built(model)
    family = family_of_model(model)
    signature_set = family.signature_set(model, schema)
    if item_table is not None and not family.item_embeddings:
        raise ValueError(f"`item_table` is for pre-ranking models (item embeddings); this {family.name} model has "
                         "none")
    serialized = signature_set.warmup_inputs(examples, rows, data_dir, int(warmup_rows), max(1, int(warmup_lists)))
    items = preranking.read_item_table(item_table) if item_table is not None else None
    staged = versions.staging_dir(base_path)
    try:
        methods = _write_savedmodel(signature_set, staged)
        records = signature_set.warmup_records(serialized, model_name, int(warmup_rows))
        if items is not None:
            # The exported function itself (reloaded from the staged SavedModel), so the file equals what the
            # item_embedding signature answers.
            embed = tf.saved_model.load(staged).signatures[preranking.ps.ITEM_EMBEDDING]
            preranking.write_item_embeddings(embed, items, os.path.join(staged, warmup.WARMUP_DIR),
                                             source=item_table)
        warmup.write_records(staged, records)
        _write_info(staged, signature_set, methods)
        report = None
        if validate:
            report = validate_export(staged, model, schema, tolerance=tolerance)
            if not report.ok:
                raise ExportValidationError(report)
        version = versions.publish(staged, base_path)
    except BaseException:
        versions.remove_staging(staged)
        raise
    path = os.path.join(base_path, str(version))
    if report is not None:
        report.export_dir = path  # the validated directory, under the name it was published as
    return ExportResult(version=version, path=path, signatures=methods, tasks=[t.task for t in signature_set.tasks],
                        warmup_records=len(records), examples=serialized, validation=report)
