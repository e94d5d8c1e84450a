"""The SavedModel signatures of a tfrec model, with the stable names that TF Serving clients rely on.

Every point-wise model gets four signatures (``tfrec`` never changes their names, dtypes or ranks):

* ``serving_default`` (``tensorflow/serving/predict``): ``examples`` string ``[-1]`` (serialized ``tf.Example``)
  -> per task ``t``: ``t`` (probability) and ``t_logit``, float32 ``[-1]``;
* ``predict_raw`` (predict): one ``[-1]`` tensor per feature (float32 dense, string categorical) -> as
  ``serving_default``;
* ``classification`` (``tensorflow/serving/classify``): ``inputs`` string ``[-1]`` -> ``scores`` float32
  ``[-1, 2]`` = (P(0), P(1)) and ``classes`` string ``[-1, 2]`` = ("0", "1");
* ``regression`` (``tensorflow/serving/regress``): ``inputs`` string ``[-1]`` -> ``outputs`` float32 ``[-1]`` =
  P(1).

Classify and Regress answer for the first task (``ctr``). The examples are parsed with the dataset's schema
(:meth:`tfrec.features.PointwiseSchema.parse_spec`): a missing dense feature parses as NaN and a missing
categorical feature as "", the conventions the model's own preprocessing (vocabulary lookups, numeric
transforms) was trained with, so a raw Criteo row (hexadecimal strings, raw integers) goes in and a probability
comes out.

Task names come from the model's family (:meth:`tfrec.families.Family.export_tasks`): a multi-task model exports one
probability and one logit per task it outputs; a point-wise model (DCN V2) exports its ``probability`` and
``logit`` as task ``ctr``.

The functions are traced without AutoGraph: tfrec's models branch only on Python values and select with
``tf.where``, and tracing is much faster (a first export of a small model: 20 s with AutoGraph, 1 s without, on a
loaded 2-core host). A model with Python control flow on tensors fails loudly at export instead of being
converted.

Extension point: a model that defines ``extra_serving_signatures()`` (returning name -> ``(tf.function with an
input signature, method name)``) gets those signatures too, for example a pre-ranking model's ``user_embedding``,
``item_embedding`` and ``score_candidates`` (one serialized ``ExampleListWithContext`` per request). Their names
must not clash with the four above; their warmup records belong in :func:`export.warmup.build_records` (the
pre-ranking model's: :mod:`export.preranking`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Tuple

import tensorflow as tf

from tfrec.features import PointwiseSchema

from export.names import (CLASS_LABELS, CLASSES_KEY, CLASSIFICATION, CLASSIFY_METHOD, DEFAULT_TASK, EXAMPLES_KEY,
                          INPUTS_KEY, OUTPUTS_KEY, PREDICT_METHOD, PREDICT_RAW, REGRESS_METHOD, REGRESSION, SCORES_KEY,
                          SERVING_DEFAULT)


@dataclasses.dataclass(frozen=True)
class TaskOutputs:
    """Where a task's probability and logit are in the model's output dict, and their exported names."""

    task: str
    probability_key: str
    logit_key: str

    @property
    def names(self) -> Tuple[str, str]:
        return self.task, f"{self.task}_logit"


def task_outputs(model) -> List[TaskOutputs]:
    """The exported tasks of ``model``, in output order (the first one answers Classify and Regress), as its
    family names them (:meth:`tfrec.families.Family.export_tasks`)."""
    from tfrec.families.registry import family_of_model

    return [TaskOutputs(*t) for t in family_of_model(model).export_tasks(model)]


def schema_of(model, name: str = "model") -> PointwiseSchema:
    """A :class:`PointwiseSchema` read off the model's raw input signature (float32 dense, string categorical)."""
    spec = model.input_signature()
    dense = tuple(k for k, s in spec.items() if s.dtype == tf.float32)
    categorical = tuple(k for k, s in spec.items() if s.dtype == tf.string)
    other = [k for k, s in spec.items() if s.dtype not in (tf.float32, tf.string)]
    if other:
        raise ValueError(f"inputs {other} are neither float32 nor string; pass the dataset's schema explicitly")
    return PointwiseSchema(name=name, dense=dense, categorical=categorical)


def check_schema(model, schema: PointwiseSchema) -> None:
    """Raises ValueError when ``schema`` does not give every model input with the input's dtype."""
    spec = model.input_signature()
    parse = schema.parse_spec(with_label=False)
    missing = sorted(set(spec) - set(parse))
    if missing:
        raise ValueError(f"the schema {schema.name!r} lacks the model inputs {missing}")
    wrong = sorted(k for k, s in spec.items() if parse[k].dtype != s.dtype)
    if wrong:
        raise ValueError(f"the schema {schema.name!r} gives other dtypes than the model for {wrong}")


class SignatureSet:
    """Builds the serving functions of one model (see the module docstring).

    Args:
      model: a built tfrec model (``input_signature()``; ``call`` returns a dict of ``[batch]`` outputs).
      schema: the dataset's schema (its parse spec turns serialized examples into the model's raw inputs);
        default: read off the model's input signature.

    Raises:
      ValueError: the schema does not match the model's inputs, or an extra signature reuses a stock name.
    """

    def __init__(self, model, schema: PointwiseSchema = None):
        self.model = model
        self.schema = schema if schema is not None else schema_of(model)
        check_schema(model, self.schema)
        self.tasks = task_outputs(model)
        self.raw_spec = {k: tf.TensorSpec([None], s.dtype, name=k) for k, s in model.input_signature().items()}

    def warmup_inputs(self, examples, rows, data_dir, warmup_rows: int, list_count: int) -> List[bytes]:
        """The serialized requests the warmup records carry (:func:`export.warmup.warmup_examples`: rows)."""
        from export.warmup import warmup_examples

        return warmup_examples(self.schema, examples, rows, data_dir, warmup_rows)

    def warmup_records(self, serialized: List[bytes], model_name: str, warmup_rows: int):
        """The warmup ``PredictionLog`` records of every signature (:func:`export.warmup.build_records`)."""
        import export.warmup as warmup

        return warmup.build_records(self, serialized, model_name)

    # ------------------------------------------------------------------------------------------ pieces

    def parse(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``[batch]`` serialized ``tf.Example`` -> the model's raw inputs (``[batch]`` each)."""
        parsed = tf.io.parse_example(serialized, self.schema.parse_spec(with_label=False))
        return {k: parsed[k] for k in self.raw_spec}

    def predict(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Raw inputs -> ``{task: probability [-1], task_logit: logit [-1]}`` (float32, rank 1)."""
        out = self.model(features, training=False)
        result = {}
        for t in self.tasks:
            prob_name, logit_name = t.names
            result[prob_name] = tf.ensure_shape(tf.reshape(tf.cast(out[t.probability_key], tf.float32), [-1]),
                                                [None])
            result[logit_name] = tf.ensure_shape(tf.reshape(tf.cast(out[t.logit_key], tf.float32), [-1]), [None])
        return result

    def first_probability(self, serialized: tf.Tensor) -> tf.Tensor:
        return self.predict(self.parse(serialized))[self.tasks[0].task]

    # ------------------------------------------------------------------------------------------ signatures

    def functions(self) -> Dict[str, Tuple[Callable, str]]:
        """name -> ``(tf.function with an input signature, TF Serving method name)``, stock ones first."""
        examples = tf.TensorSpec([None], tf.string, name=EXAMPLES_KEY)
        inputs = tf.TensorSpec([None], tf.string, name=INPUTS_KEY)

        @tf.function(input_signature=[examples], autograph=False)
        def serving_default(examples):
            return self.predict(self.parse(examples))

        @tf.function(input_signature=[self.raw_spec], autograph=False)
        def predict_raw(features):
            return self.predict(features)

        @tf.function(input_signature=[inputs], autograph=False)
        def classification(inputs):
            p = self.first_probability(inputs)
            scores = tf.ensure_shape(tf.stack([1.0 - p, p], axis=1), [None, 2])
            classes = tf.ensure_shape(tf.tile(tf.constant([list(CLASS_LABELS)]), tf.stack([tf.size(p), 1])),
                                      [None, 2])
            return {SCORES_KEY: scores, CLASSES_KEY: classes}

        @tf.function(input_signature=[inputs], autograph=False)
        def regression(inputs):
            return {OUTPUTS_KEY: self.first_probability(inputs)}

        fns = {SERVING_DEFAULT: (serving_default, PREDICT_METHOD), PREDICT_RAW: (predict_raw, PREDICT_METHOD),
               CLASSIFICATION: (classification, CLASSIFY_METHOD), REGRESSION: (regression, REGRESS_METHOD)}
        extra = getattr(self.model, "extra_serving_signatures", None)
        if callable(extra):
            for name, value in dict(extra()).items():
                if name in fns:
                    raise ValueError(f"extra signature {name!r} clashes with a stock signature {sorted(fns)}")
                fns[name] = value
        return fns
