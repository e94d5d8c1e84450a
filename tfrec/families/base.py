"""The :class:`Family` interface: everything that differs between tfrec's model families, in one object.

A family is a kind of dataset and the models that train on it: ``pointwise`` (one row, one click label: DCN V2),
``multitask`` (one row, click and conversion labels: SharedBottom, MMoE, PLE, ESMM, single-task) and
``preranking`` (one ``ExampleListWithContext`` per request: HCCP's Three-Tower model). The name is the ``kind`` a
prepared dataset's ``schema.json`` holds, the ``pipeline.family`` of a pipeline config and the ``family`` of an
experiment protocol. The command line, the Trainer module, the pipeline components and the experiments look the
family up once (:func:`tfrec.families.family_of`, :func:`tfrec.families.family_of_run`) and call it; none of them
tests which family it is.

A family's attributes describe it (its unit, batch sizes, labels, models, record format, the config sections its
trainer reads); its methods run it (schema, training, evaluation, loading a finished run, export signatures, the
Beam pipeline, the simulator; an experiment cell trains and evaluates through them). The methods import their
implementation when called, so a family is importable without TensorFlow or Apache Beam.

Adding a family: a module with a subclass that sets the attributes and implements the methods, and one
``tfrec.families.register(MyFamily())`` call (the built-in ones are listed in
:data:`tfrec.families.registry.BUILTIN`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

#: Record formats (``Family.records``).
EXAMPLE = "tf.Example"
EXAMPLE_LIST = "ExampleListWithContext"


class Family:
    """One model family (see the module docstring).

    Attributes:
      name: ``pointwise``, ``multitask``, ``preranking`` (or a registered family's).
      title: what it is, in words.
      unit: what a record and a batch count (``rows``, ``requests``).
      batch_defaults: ``(data.batch_size, data.eval_batch_size)`` when the config leaves them unset.
      throughput_unit: what the training rate counts (``examples``, ``lists``).
      models: the model names it trains.
      default_model: the model it trains while the ``model`` section is left at its ``dcn_v2`` defaults (None:
        the model must be named).
      labels: the label features of its records, main label first (StatisticsGen counts them).
      task_labels: exported task -> the label it is evaluated against (the pipeline Evaluator's default).
      records: the record format, :data:`EXAMPLE` or :data:`EXAMPLE_LIST`.
      formats: the ``prepare.input_format`` values of its Beam pipeline (``tfrec prepare``).
      pipeline_section: the config section its Beam pipeline reads (``prepare``, ``hybrid``).
      pipeline_inputs: the fields of that section that list input files (or globs).
      trainer_sections: the config sections its Trainer reads.
      item_embeddings: an export can precompute item embeddings of an item table (``--items``).
      calibration: its predictions are one probability per row (``tfrec calibration``).
    """

    name: str = ""
    title: str = ""
    unit: str = "rows"
    batch_defaults: Tuple[int, int] = (4096, 16384)
    throughput_unit: str = "examples"
    models: Tuple[str, ...] = ()
    default_model: Optional[str] = None
    labels: Tuple[str, ...] = ("label",)
    task_labels: Mapping[str, str] = {"ctr": "label"}
    records: str = EXAMPLE
    formats: Tuple[str, ...] = ()
    pipeline_section: str = "prepare"
    pipeline_inputs: Tuple[str, ...] = ("inputs", "train", "valid", "test")
    trainer_sections: Tuple[str, ...] = ("data", "model", "train")
    item_embeddings: bool = False
    calibration: bool = False

    def __repr__(self) -> str:
        return f"<family {self.name}>"

    # ------------------------------------------------------------------------------------------------ data

    def load_schema(self, data_dir: str):
        """The schema object of a prepared dataset of this family.

        Raises:
          tfrec.data.DatasetError: the dataset is missing, or its schema is another family's.
        """
        raise NotImplementedError

    def check_dataset(self, data_dir: str) -> None:
        """Raises ``tfrec.data.DatasetError`` unless ``data_dir`` is a prepared dataset of this family."""
        from tfrec.errors import DatasetError
        from tfrec.families.registry import family_of

        found = family_of(data_dir)
        if found is not self:
            raise DatasetError(f"{data_dir} is a {found.name} dataset ({found.title}), not a {self.name} one "
                               f"({self.title})")

    # ---------------------------------------------------------------------------------------------- config

    def resolve(self, cfg):
        """A copy of ``cfg`` ready for this family: unset batch sizes take :attr:`batch_defaults`; a ``model``
        section left at its (``dcn_v2``) defaults becomes :attr:`default_model`'s; the model must be one of
        :attr:`models`.

        Raises:
          tfrec.config.ConfigError: the configured model is another family's.
        """
        import dataclasses

        from tfrec.config import MODELS, DCNv2Config

        if cfg.model.name not in self.models and self.default_model and cfg.model == DCNv2Config():
            cfg = dataclasses.replace(cfg, model=MODELS[self.default_model]())
        self.check_model(cfg)
        return cfg.with_batch_defaults(*self.batch_defaults)

    def check_model(self, cfg) -> None:
        """Raises ``ConfigError`` when ``cfg``'s model is not one of :attr:`models`."""
        from tfrec.config import ConfigError
        from tfrec.families.registry import family_of_model_name

        name = cfg.model.name
        if name in self.models:
            return
        owner = family_of_model_name(name)
        raise ConfigError(f"model {name!r} needs a {owner.title}; {cfg.data.dir or 'the dataset'} is a {self.title}: "
                          f"use one of {', '.join(self.models)} (model.name). Received: model.name={name!r}")

    # -------------------------------------------------------------------------------------- train, evaluate

    def train(self, cfg, printer: Callable[[str], None] = print, extra_callbacks: Optional[list] = None):
        """Trains ``cfg`` on ``cfg.data.dir``; returns a :class:`tfrec.train.TrainResult`."""
        raise NotImplementedError

    def load_trained(self, cfg):
        """The model of the finished run in ``cfg.train.model_dir`` (its saved architecture, best weights)."""
        raise NotImplementedError

    def evaluate(self, cfg, split: str = "test", model=None, output: Optional[str] = None) -> Dict[str, Any]:
        """The family's report of ``model`` (default: the run's best weights) on ``split``, recorded in the run's
        metrics file (``output``, default the family's file in ``cfg.train.model_dir``)."""
        raise NotImplementedError

    def report_rows(self, report: Mapping[str, Any]) -> List[Tuple[str, Any]]:
        """The ``(name, value)`` rows ``tfrec evaluate`` prints of a report of :meth:`evaluate`."""
        raise NotImplementedError

    def train_and_evaluate(self, cfg, splits: Sequence[str] = ("valid", "test"),
                           printer: Callable[[str], None] = print) -> Dict[str, Any]:
        """Trains ``cfg`` and evaluates its best weights on ``splits``: ``{"summary", "metrics": {split:
        report}}``."""
        result = self.train(cfg, printer=printer)
        metrics = {split: self.evaluate(cfg, split, model=result.model) for split in splits}
        return {"summary": result.summary, "metrics": metrics}

    # ---------------------------------------------------------------------------------------------- export

    def export_tasks(self, model) -> List[Tuple[str, str, str]]:
        """``(task, probability output, logit output)`` of each exported task, in output order."""
        raise NotImplementedError

    def signature_set(self, model, schema=None):
        """The :class:`export.signatures.SignatureSet` that exports ``model``."""
        from export.signatures import SignatureSet

        return SignatureSet(model, schema)

    # ------------------------------------------------------------------------------------ pipeline, simulator

    def run_pipeline(self, section, progress: Optional[Callable[[str], None]] = None,
                     progress_every: float = 5.0) -> Dict[str, Any]:
        """Runs the family's Beam pipeline on its config section (:attr:`pipeline_section`); returns the
        dataset's statistics (``stats.json``)."""
        raise NotImplementedError

    def pipeline_stats(self, stats: Mapping[str, Any]) -> Dict[str, Any]:
        """The statistics of :meth:`run_pipeline` in the pipeline runner's terms: ``rows_written``,
        ``rows_rejected`` (records: one per row or per request) and ``positive_rate`` of the main label."""
        return dict(stats)

    def simulate(self, cfg, output: str) -> Dict[str, Any]:
        """Writes simulated raw logs of this family to ``output``; returns what the simulator measured."""
        raise NotImplementedError
