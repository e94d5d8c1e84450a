"""Executors of tfrec's TFX components: each calls the component logic of :mod:`pipelines.tfx.components` (the
same functions the home-made runner calls) on TFX's artifacts.

TFX's Examples artifact holds ``Split-<name>/`` directories of GZIP TFRecords; tfrec's ExampleGen writes its side
files (``schema.json``, ``stats.json``, ``transform.json``, ``vocab/``, ``items.jsonl``) into the artifact's root.
The component logic reads a prepared dataset directory (``<split>-*.tfrecord.gz`` beside the side files), so each
executor hands it a view of links (:func:`tfrec.trainer_data.build_view`), built in a temporary directory and
removed afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List

from absl import logging
from tfx.dsl.components.base import base_beam_executor, base_executor
from tfx.types import artifact_utils

from pipelines.tfx import artifacts as home
from pipelines.tfx.components import ComponentError, Context, read_json, write_json

SPLITS = ("train", "valid", "test")
PAYLOAD_FORMAT = "payload_format"  # TFX's custom property name (tfx.components.example_gen.utils)


def pipeline_config(text: str):
    """The :class:`pipelines.tfx.config.PipelineConfig` of a component's ``config`` parameter (JSON of sections)."""
    from pipelines.tfx.config import PipelineConfig
    from tfrec.config import load_sections

    return load_sections(PipelineConfig, values=json.loads(text), validate=False)


@contextlib.contextmanager
def examples_view(examples, dataset_dir: str = ""):
    """A prepared-dataset view (a temporary directory) of a TFX Examples artifact: its ``Split-<name>/`` files with
    the side files of ``dataset_dir`` (a stock ExampleGen's artifact has none), by default the artifact's own
    (tfrec's ExampleGen writes them there)."""
    from tfrec.trainer_data import build_view

    tmp = tempfile.mkdtemp(prefix="tfrec-view-")
    try:
        splits = {s: sorted(glob.glob(os.path.join(examples.uri, f"Split-{s}", "*")))
                  for s in artifact_utils.decode_split_names(examples.split_names)}
        yield build_view(os.path.join(tmp, "data"), splits, dataset_dir or examples.uri)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _context(output_dir: str) -> Context:
    return Context(root="/", output_dir=output_dir, run_id="", cfg=None, printer=logging.info)


class ExampleGenExecutor(base_beam_executor.BaseBeamExecutor):
    """The family's Beam pipeline (:meth:`tfrec.families.Family.run_pipeline` on its config section) with the
    pipeline's ``beam_pipeline_args``, then the shards moved into ``Split-<name>/``."""

    def Do(self, input_dict: Dict[str, List], output_dict: Dict[str, List], exec_properties: Dict[str, Any]) -> None:
        from pipelines.tfx.components import example_gen
        from tfrec.families import EXAMPLE_LIST

        cfg = pipeline_config(exec_properties["config"])
        cfg.pipeline.family = exec_properties["family"]
        cfg.pipeline.beam_args = list(self._beam_pipeline_args)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        fam = example_gen.family(cfg)  # ComponentError for an unknown family
        family = fam.name
        section = getattr(cfg, fam.pipeline_section)
        section = dataclasses.replace(section, output=examples.uri,
                                      beam_args=list(section.beam_args) + list(cfg.pipeline.beam_args))
        stats = fam.pipeline_stats(fam.run_pipeline(section))
        for split in SPLITS:
            target = os.path.join(examples.uri, f"Split-{split}")
            os.makedirs(target, exist_ok=True)
            for path in sorted(glob.glob(os.path.join(examples.uri, f"{split}-*.tfrecord.gz"))):
                os.rename(path, os.path.join(target, os.path.basename(path)))
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        examples.span = 0
        listwise = fam.records == EXAMPLE_LIST
        examples.set_string_custom_property(PAYLOAD_FORMAT, "FORMAT_PROTO" if listwise else "FORMAT_TF_EXAMPLE")
        examples.set_string_custom_property("file_format", "tfrecords_gzip")
        examples.set_string_custom_property("tfrec_family", family)
        examples.set_string_custom_property("tfrec_stats", json.dumps({
            k: stats.get(k) for k in ("rows_written", "rows_rejected", "positive_rate")}, default=str))


class ListwiseStatisticsGenExecutor(base_executor.BaseExecutor):
    """``statistics_gen.execute`` on list-wise records: ``statistics.json`` per split."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from pipelines.tfx.components import statistics_gen

        examples = artifact_utils.get_single_instance(input_dict["examples"])
        out = artifact_utils.get_single_instance(output_dict["statistics"])
        with examples_view(examples, exec_properties.get("dataset_dir") or "") as view:
            statistics_gen.execute(_context(out.uri), {"examples": home.Examples(uri=view)},
                                   json.loads(exec_properties["params"]))
        out.split_names = artifact_utils.encode_split_names(list(SPLITS))
        out.set_string_custom_property("tfrec_format", "statistics.json")


class ListwiseExampleValidatorExecutor(base_executor.BaseExecutor):
    """``example_validator.execute`` against the schema of the last validated data (``baseline_dir``; this run's
    own on the first run); anomalies stop the run unless ``validator.allow_anomalies``. Data that passes becomes
    the baseline."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from pipelines.tfx.components import example_validator
        from pipelines.tfx.components.schema_gen import infer_schema

        params = json.loads(exec_properties["params"])
        statistics = artifact_utils.get_single_instance(input_dict["statistics"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        out = artifact_utils.get_single_instance(output_dict["anomalies"])
        baseline = os.path.join(exec_properties["baseline_dir"], "statistics.json")
        current = os.path.join(statistics.uri, "statistics.json")
        reference = read_json(baseline if os.path.exists(baseline) else current)
        schema_dir = os.path.join(out.uri, "reference_schema")
        os.makedirs(schema_dir, exist_ok=True)
        write_json(os.path.join(schema_dir, "schema.json"), infer_schema(reference["train"]))
        with examples_view(examples, exec_properties.get("dataset_dir") or "") as view:
            inputs = {"statistics": home.Statistics(uri=statistics.uri), "schema": home.Schema(uri=schema_dir),
                      "examples": home.Examples(uri=view)}
            produced = example_validator.execute(_context(out.uri), inputs, params)  # raises on anomalies
        out.split_names = artifact_utils.encode_split_names(list(SPLITS))
        out.set_int_custom_property("tfrec_anomalies", int(produced["anomalies"].properties["count"]))
        os.makedirs(exec_properties["baseline_dir"], exist_ok=True)
        shutil.copy(current, baseline + ".tmp")
        os.replace(baseline + ".tmp", baseline)


class ValidationGateExecutor(base_executor.BaseExecutor):
    """TFDV validation against the last validated data (:mod:`pipelines.tfx_native.validation`)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        import tensorflow_data_validation as tfdv
        from tensorflow_metadata.proto.v0 import anomalies_pb2
        from tfx.components.statistics_gen import stats_artifact_utils
        from tfx.utils import io_utils

        from pipelines.tfx_native import validation as v

        params = json.loads(exec_properties["params"])
        stats_artifact = artifact_utils.get_single_instance(input_dict["statistics"])
        schema_uri = artifact_utils.get_single_uri(input_dict["schema"])
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))
        stock = artifact_utils.get_single_instance(input_dict["anomalies"])
        out = artifact_utils.get_single_instance(output_dict["gate_anomalies"])
        splits = artifact_utils.decode_split_names(stats_artifact.split_names)
        stats = {s: stats_artifact_utils.load_statistics(stats_artifact, s).proto() for s in splits}
        baseline = v.Baseline(exec_properties["baseline_dir"])
        ref_schema = baseline.schema() if baseline.exists() else schema
        ref_train = baseline.statistics("train") if baseline.exists() else stats["train"]
        checked = v.reference_schema(ref_schema, ref_train, params["labels"], params)
        found = []
        for split in splits:
            diff = os.path.join(stock.uri, f"Split-{split}", "SchemaDiff.pb")
            if os.path.exists(diff):
                with open(diff, "rb") as f:
                    found += v.describe(anomalies_pb2.Anomalies.FromString(f.read()), split, "ExampleValidator")
            previous = ref_train if split == "train" else None
            result = tfdv.validate_statistics(stats[split], checked, previous_statistics=previous)
            found += v.describe(result, split, "reference", stats[split], previous)
            os.makedirs(os.path.join(out.uri, f"Split-{split}"), exist_ok=True)
            with open(os.path.join(out.uri, f"Split-{split}", "SchemaDiff.pb"), "wb") as f:
                f.write(result.SerializeToString())
        write_json(os.path.join(out.uri, "anomalies.json"), found)
        tfdv.write_schema_text(checked, os.path.join(out.uri, "reference_schema.pbtxt"))
        out.split_names = artifact_utils.encode_split_names(splits)
        out.set_int_custom_property("tfrec_anomalies", len(found))
        allowed = bool(params["allow_anomalies"])
        if found:
            text = "\n".join(
                [f"{len(found)} data anomal{'y' if len(found) == 1 else 'ies'} ("
                 + ("last validated data: " + baseline.path if baseline.exists() else "first run: no earlier data")
                 + "):"] + [f"  - [{a['kind']}] {a['message']}" for a in found]
                + ["validator.allow_anomalies=true: training anyway" if allowed else
                   "set validator.allow_anomalies=true to train anyway"])
            with open(os.path.join(out.uri, "anomalies.txt"), "w", encoding="utf-8") as f:
                f.write(text + "\n")
            if not allowed:
                raise ComponentError(text)
            logging.warning(text)
        baseline.replace(schema, stats_artifact.uri, splits)


def dataset_family(view: str):
    """The family of the examples (:func:`tfrec.families.family_of` on the view's ``schema.json``).

    Raises:
      ComponentError: the view has no readable ``schema.json`` (a stock ExampleGen's artifact without
        ``dataset_dir``).
    """
    from tfrec.data import DatasetError
    from tfrec.families import family_of

    try:
        return family_of(view)
    except DatasetError as e:
        raise ComponentError(f"{e}; the Examples artifact has no tfrec side files (a stock ExampleGen wrote it?): "
                             "give the component dataset_dir, the prepared directory it read") from None


class EvaluatorExecutor(base_executor.BaseExecutor):
    """``evaluator.execute``: tfrec's exact metrics of the candidate's SavedModel and of the model serving now (the
    newest version under ``serving_base_path``, if any); a standard ModelBlessing (``blessed`` = 1 or 0,
    ``current_model_id``) that the stock Pusher and ``LatestBlessedModelStrategy`` read. The examples' family
    (their ``schema.json``: the artifact's own, or ``dataset_dir``'s) must be the one the parameters score
    (:func:`pipelines.tfx.components.evaluator.check_family`): list-wise records through ``score_candidates``."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from tfx.components.evaluator import constants
        from tfx.utils import path_utils

        from export.versions import list_versions
        from pipelines.tfx.components import evaluator

        params = json.loads(exec_properties["params"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        serving = os.path.relpath(path_utils.serving_model_path(model.uri), model.uri)
        base = exec_properties.get("serving_base_path") or ""
        versions = list_versions(base) if base and os.path.isdir(base) else []
        baseline = (home.Model(uri=os.path.join(base, str(versions[-1])), properties={"serving_model_dir": "."})
                    if versions else None)
        with examples_view(examples, exec_properties.get("dataset_dir") or "") as view:
            evaluator.check_family(params, dataset_family(view))
            produced = evaluator.execute(_context(blessing.uri), {
                "examples": home.Examples(uri=view),
                "model": home.Model(uri=model.uri, properties={"serving_model_dir": serving}),
                "baseline_model": baseline}, params)
        props = produced["blessing"].properties
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, 1 if props["blessed"] else 0)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        if baseline is not None:
            blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
        blessing.set_string_custom_property("tfrec_reasons", "; ".join(props["reasons"]))
        blessing.set_string_custom_property("tfrec_metrics", json.dumps(props["metrics"]))
