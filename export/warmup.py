"""Warmup requests (``assets.extra/tf_serving_warmup_requests``) and the serialized examples they carry.

TF Serving replays the records of that file (a TFRecord of ``tensorflow.serving.PredictionLog``, at most 1000)
when it loads a version, before the version takes traffic, so the first real request does not pay for graph
initialisation. A record whose tensors do not match the signature's dtypes makes the load fail, so every
record here is built from the signatures' own specs: ``serving_default`` gets the serialized examples as a
DT_STRING ``[n]`` tensor, ``predict_raw`` one ``[n]`` tensor per feature with the feature's dtype, and
Classify / Regress get the examples as an ``ExampleList``.

The examples are real rows (the dataset's first rows, or rows given as dicts of raw values) with the label and
the weight removed.
"""

from __future__ import annotations

import math
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, input_pb2, model_pb2, predict_pb2, prediction_log_pb2,
                                     regression_pb2)

import export.names as names
import tfrec.data as data_lib
from tfrec.features import PointwiseSchema

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many


def warmup_path(export_dir: str) -> str:
    return os.path.join(export_dir, WARMUP_DIR, WARMUP_FILE)


# ---------------------------------------------------------------------------------------------- examples


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, (str, bytes)) and len(value) == 0


def example_from_row(row: Mapping[str, object], schema: PointwiseSchema) -> tf.train.Example:
    """A ``tf.Example`` of one raw row in the dataset's encoding (Criteo: raw integers, hexadecimal strings).

    Args:
      row: feature name -> raw value. Dense values are numbers (or numeric strings); categorical values are
        strings or bytes. A feature that is absent, None, NaN or "" is left out of the example (missing).
        Keys that are not features of ``schema`` (a label, a weight) are ignored.
      schema: the dataset's schema.

    Raises:
      ValueError: a dense value is not a number (names the feature and the value).
    """
    feats = {}
    for name in schema.dense:
        value = row.get(name)
        if _is_missing(value):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"dense feature `{name}` must be a number. Received: {name}={value!r}") from None
        feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[number]))
    for name in schema.categorical:
        value = row.get(name)
        if _is_missing(value):
            continue
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
    return tf.train.Example(features=tf.train.Features(feature=feats))


def serialize_rows(rows: Iterable[Mapping[str, object]], schema: PointwiseSchema) -> List[bytes]:
    """:func:`example_from_row` of each row, serialized."""
    return [example_from_row(r, schema).SerializeToString() for r in rows]


def first_records(data_dir: str, count: int, splits: Sequence[str] = ("valid", "test", "train")) -> List[bytes]:
    """The first ``count`` raw records of a prepared dataset's first split of ``splits`` that has any.

    Raises:
      FileNotFoundError: no split has records.
    """
    for split in splits:
        try:
            files = data_lib.split_files(data_dir, split)
        except data_lib.DatasetError:
            continue
        out = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]
        if out:
            return out
    raise FileNotFoundError(f"no records in any of the splits {list(splits)} of {data_dir}")


def dataset_examples(data_dir: str, schema: PointwiseSchema, count: int = 16,
                     splits: Sequence[str] = ("valid", "test", "train")) -> List[bytes]:
    """The first ``count`` records of a prepared dataset (first existing split of ``splits``), serialized, with
    the label(s) and weight features removed.

    Raises:
      FileNotFoundError: no split has records.
    """
    out = []
    for record in first_records(data_dir, count, splits):
        example = tf.train.Example.FromString(record)
        labels = getattr(schema, "labels", None) or (schema.label,)  # a MultiTaskSchema has two labels
        for key in (*labels, schema.weight):
            if key in example.features.feature:
                del example.features.feature[key]
        out.append(example.SerializeToString())
    return out


def raw_inputs(serialized: Sequence[bytes], signature_set: "SignatureSet") -> Dict[str, np.ndarray]:
    """The ``predict_raw`` inputs of serialized examples: feature -> ``[n]`` array with the signature's dtype."""
    parsed = signature_set.parse(tf.constant(list(serialized), tf.string))
    return {k: v.numpy() for k, v in parsed.items()}


# ---------------------------------------------------------------------------------------------- records


def _spec(model_name: str, signature_name: str) -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=model_name, signature_name=signature_name)


def predict_log(model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray],
                dtypes: Mapping[str, tf.DType]) -> prediction_log_pb2.PredictionLog:
    """A PredictionLog of one PredictRequest; each input tensor gets exactly the dtype in ``dtypes``."""
    request = predict_pb2.PredictRequest(model_spec=_spec(model_name, signature_name))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=dtypes[key]))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def _example_list(serialized: Sequence[bytes]) -> input_pb2.Input:
    examples = [tf.train.Example.FromString(s) for s in serialized]
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=examples))


def classify_log(model_name: str, serialized: Sequence[bytes]) -> prediction_log_pb2.PredictionLog:
    request = classification_pb2.ClassificationRequest(model_spec=_spec(model_name, names.CLASSIFICATION),
                                                       input=_example_list(serialized))
    return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))


def regress_log(model_name: str, serialized: Sequence[bytes]) -> prediction_log_pb2.PredictionLog:
    request = regression_pb2.RegressionRequest(model_spec=_spec(model_name, names.REGRESSION),
                                               input=_example_list(serialized))
    return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))


def build_records(signature_set: "SignatureSet", serialized: Sequence[bytes],
                  model_name: str = "") -> List[prediction_log_pb2.PredictionLog]:
    """The warmup records of one export: ``serving_default`` on all rows and on the first row alone (two batch
    sizes), ``predict_raw``, Classify and Regress on all rows.

    Raises:
      ValueError: no rows.
    """
    serialized = list(serialized)
    if not serialized:
        raise ValueError("warmup needs at least one example")
    examples = {names.EXAMPLES_KEY: np.array(serialized, dtype=object)}
    first = {names.EXAMPLES_KEY: np.array(serialized[:1], dtype=object)}
    string = {names.EXAMPLES_KEY: tf.string}
    raw_dtypes = {k: s.dtype for k, s in signature_set.raw_spec.items()}
    return [
        predict_log(model_name, names.SERVING_DEFAULT, examples, string),
        predict_log(model_name, names.SERVING_DEFAULT, first, string),
        predict_log(model_name, names.PREDICT_RAW, raw_inputs(serialized, signature_set), raw_dtypes),
        classify_log(model_name, serialized),
        regress_log(model_name, serialized),
    ]


def write_records(export_dir: str, records: Sequence[prediction_log_pb2.PredictionLog]) -> str:
    """Writes ``records`` to ``<export_dir>/assets.extra/tf_serving_warmup_requests``; returns the path.

    Raises:
      ValueError: more than 1000 records (TF Serving's limit).
    """
    if len(records) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_WARMUP_RECORDS} warmup records. "
                         f"Received: {len(records)} records")
    path = warmup_path(export_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_records(path: str, limit: Optional[int] = None) -> List[prediction_log_pb2.PredictionLog]:
    """Parses a warmup file into PredictionLog protos (raises on a record that does not parse)."""
    out = []
    for raw in tf.data.TFRecordDataset(path):
        out.append(prediction_log_pb2.PredictionLog.FromString(raw.numpy()))
        if limit is not None and len(out) >= limit:
            break
    return out


def warmup_examples(schema: PointwiseSchema, examples, rows, data_dir, count: int) -> List[bytes]:
    """The serialized rows of the stock signatures' warmup requests: ``examples`` (the first ``count``), the
    ``rows`` serialized with ``schema``, the dataset's first rows, or one all-missing example.

    Raises:
      ValueError: ``examples`` / ``rows`` is empty.
    """
    if examples is not None:
        out = [bytes(e) for e in examples][:count]
    elif rows is not None:
        out = serialize_rows(list(rows)[:count], schema)
    elif data_dir:
        out = dataset_examples(data_dir, schema, count)
    else:
        # No rows given: one example with every feature missing, a valid request for any schema.
        out = [tf.train.Example().SerializeToString()]
    if not out:
        raise ValueError("warmup needs at least one example; `examples` / `rows` is empty")
    return out
