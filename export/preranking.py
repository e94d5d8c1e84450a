"""Export of the pre-ranking (Three-Tower) model: its signatures, warmup records and precomputed item embeddings.

A pre-ranking model exports the four stock signatures on point-wise rows (one ``tf.Example`` per (request,
candidate) holding the context and the item features; ``predict_raw`` takes the click-history sequences as
``[-1, -1]`` strings padded with ``""``) plus ``user_embedding``, ``item_embedding`` and ``score_candidates``
(:mod:`tfrec.models.preranking.serving` has their inputs and outputs).

Warmup records come from the dataset's first example lists (valid split first: full candidate lists), stripped to
the features the model reads: the stock records on the first ``warmup_rows`` point-wise rows, ``user_embedding``
on the lists' contexts, ``item_embedding`` on the first ``warmup_rows`` items, ``score_candidates`` on all the
lists and on the first list alone.

Item embeddings (section 3.1.1: item embeddings "can be pre-computed"): :func:`write_item_embeddings` runs the
``item_embedding`` signature over an item table (``items.jsonl``: ``item_id``, ``category``, ``price`` per line)
and writes ``item_embeddings.tfrecord`` (one ``tf.Example`` per item: ``item_id`` bytes, ``embedding`` float list
of ``output_dim``) with ``item_embeddings.json`` (count, dim, source) beside it. ``export_model(...,
item_table=...)`` writes them into ``assets.extra/`` of the version before it is published.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import input_pb2

import export.signatures as sig
import export.warmup as warmup
from tfrec.features import ListwiseSchema
from tfrec.models.preranking import serving as ps

ITEM_EMBEDDINGS_FILE = "item_embeddings.tfrecord"
ITEM_EMBEDDINGS_INFO = "item_embeddings.json"
EXTRA_SIGNATURES = (ps.USER_EMBEDDING, ps.ITEM_EMBEDDING, ps.SCORE_CANDIDATES)


class PrerankingSignatureSet(sig.SignatureSet):
    """:class:`export.signatures.SignatureSet` of a pre-ranking model: the stock signatures on point-wise rows
    (module docstring), the model's three extra signatures from its ``extra_serving_signatures``.

    Args:
      model: a built :class:`tfrec.models.preranking.ThreeTower`.
      schema: the dataset's :class:`ListwiseSchema` (default: the model's features).

    Raises:
      ValueError: the schema lacks a feature of the model.
    """

    def __init__(self, model, schema: Optional[ListwiseSchema] = None):  # noqa: D107 - no base __init__ call
        self.model = model
        self.serving = model.serving_functions()
        self.schema = schema if schema is not None else ps.model_schema(model.tasks)
        ps.check_schema(self.schema)
        self.tasks = sig.task_outputs(model)
        self.raw_spec = self.serving.raw_spec()

    def parse(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self.serving.parse_rows(serialized)

    def predict(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return self.serving.predict_rows(features)

    def keras_outputs(self, name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The eager Keras answer to a warmup request of one of the extra signatures."""
        (value,) = inputs.values()
        return {k: v.numpy() for k, v in self.serving.eager(name, value.tolist()).items()}


    def warmup_inputs(self, examples, rows, data_dir, warmup_rows: int, list_count: int) -> List[bytes]:
        """The serialized ``ExampleListWithContext`` of the warmup records (:func:`warmup_lists`)."""
        return warmup_lists(examples, data_dir, list_count)

    def warmup_records(self, serialized: List[bytes], model_name: str, warmup_rows: int):
        """Warmup records of every signature, built from the example lists (:func:`build_records`)."""
        return build_records(self, serialized, model_name, warmup_rows)


# ---------------------------------------------------------------------------------------------- warmup inputs


def _keep(example: tf.train.Example, names: Sequence[str]) -> tf.train.Example:
    out = tf.train.Example()
    for name in names:
        if name in example.features.feature:
            out.features.feature[name].CopyFrom(example.features.feature[name])
    return out


def strip_list(serialized: bytes) -> input_pb2.ExampleListWithContext:
    """An ``ExampleListWithContext`` reduced to the model's features (labels, orders and ids of the dataset's
    lists dropped), as a serving request carries it."""
    elwc = input_pb2.ExampleListWithContext.FromString(serialized)
    out = input_pb2.ExampleListWithContext(context=_keep(elwc.context, ps.CONTEXT + ps.HISTORY))
    for e in elwc.examples:
        out.examples.append(_keep(e, ps.ITEM_FEATURES))
    return out


def dataset_lists(data_dir: str, count: int = 2, splits: Sequence[str] = ("valid", "test", "train")) -> List[bytes]:
    """The first ``count`` example lists of a hybrid-sample dataset (first existing split), stripped.

    Raises:
      FileNotFoundError: no split has records.
    """
    return [strip_list(r).SerializeToString() for r in warmup.first_records(data_dir, count, splits)]


def default_list() -> bytes:
    """One request with every context feature missing and one candidate with every feature missing."""
    return input_pb2.ExampleListWithContext(examples=[tf.train.Example()]).SerializeToString()


def rows_of(lists: Sequence[bytes], limit: int) -> List[bytes]:
    """Point-wise rows (context + item features in one ``tf.Example``) of the lists' candidates, at most
    ``limit``."""
    out = []
    for serialized in lists:
        elwc = input_pb2.ExampleListWithContext.FromString(serialized)
        for e in elwc.examples:
            row = tf.train.Example()
            row.CopyFrom(elwc.context)
            row.MergeFrom(e)
            out.append(row.SerializeToString())
            if len(out) >= limit:
                return out
    return out


def build_records(signature_set: PrerankingSignatureSet, lists: Sequence[bytes], model_name: str = "",
                  warmup_rows: int = 16):
    """Warmup records of a pre-ranking export (module docstring).

    Raises:
      ValueError: no lists, or lists without candidates.
    """
    lists = list(lists)
    if not lists:
        raise ValueError("warmup needs at least one example list")
    rows = rows_of(lists, warmup_rows)
    if not rows:
        raise ValueError("the warmup example lists hold no candidates")
    parsed = [input_pb2.ExampleListWithContext.FromString(s) for s in lists]
    contexts = [p.context.SerializeToString() for p in parsed]
    items = [e.SerializeToString() for p in parsed for e in p.examples][:warmup_rows]

    def log(name, key, values):
        return warmup.predict_log(model_name, name, {key: np.array(values, dtype=object)}, {key: tf.string})

    return warmup.build_records(signature_set, rows, model_name) + [
        log(ps.USER_EMBEDDING, ps.EXAMPLES, contexts),
        log(ps.ITEM_EMBEDDING, ps.EXAMPLES, items),
        log(ps.SCORE_CANDIDATES, ps.LISTS, lists),
        log(ps.SCORE_CANDIDATES, ps.LISTS, lists[:1]),
    ]


def warmup_lists(examples: Optional[Sequence[bytes]], data_dir: Optional[str], count: int) -> List[bytes]:
    """The serialized example lists of the warmup records: ``examples`` (stripped), the dataset's first lists,
    or one all-missing list."""
    if examples is not None:
        out = [strip_list(bytes(e)).SerializeToString() for e in examples][:count]
        if not out:
            raise ValueError("warmup needs at least one example list; `examples` is empty")
        return out
    if data_dir:
        return dataset_lists(data_dir, count)
    return [default_list()]


# ---------------------------------------------------------------------------------------------- item embeddings


def read_item_table(path: str) -> List[bytes]:
    """``items.jsonl`` (one JSON object per line: ``item_id`` and ``category`` strings, ``price`` a number) ->
    serialized item ``tf.Example`` in file order.

    Raises:
      FileNotFoundError: no such file. ValueError: a malformed line (names the line), a duplicate item id, or no
      items.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"item table not found: {path}")
    out, seen = [], set()
    with tf.io.gfile.GFile(path, "r") as f:
        for number, line in enumerate(f, 1):
            if number == 1:
                line = line.lstrip("\ufeff")  # a UTF-8 byte order mark opens the file: not part of the first item
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{number}: an item must be a JSON object")
            feats = {}
            for name in ps.ITEM:
                value = obj.get(name)
                if not isinstance(value, str):
                    raise ValueError(f"{path}:{number}: `{name}` must be a string. Received: {name}={value!r}")
                feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
            price = obj.get(ps.PRICE)
            if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price):
                raise ValueError(f"{path}:{number}: `price` must be a finite number. Received: price={price!r}")
            feats[ps.PRICE] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(price)]))
            if obj["item_id"] in seen:
                raise ValueError(f"{path}:{number}: duplicate item_id {obj['item_id']!r}")
            seen.add(obj["item_id"])
            out.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    if not out:
        raise ValueError(f"the item table {path} has no items")
    return out


def write_item_embeddings(embed: Callable[[tf.Tensor], Dict[str, tf.Tensor]], items: Sequence[bytes],
                          out_dir: str, batch_size: int = 4096, source: str = "") -> Dict[str, object]:
    """Runs ``embed`` (the ``item_embedding`` signature, or the traced function it is saved from) over ``items``
    and writes ``out_dir/item_embeddings.tfrecord`` and ``out_dir/item_embeddings.json``.

    Args:
      embed: ``examples [N] string -> {"embedding": [N, d]}``.
      items: serialized item ``tf.Example`` (:func:`read_item_table`).
      out_dir: directory of the two files (created).
      batch_size: items per call.
      source: recorded in the JSON (the item table's path).

    Returns:
      the JSON's contents (``count``, ``dim``, ``file``, ``source``, ``format``).
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    tf.io.gfile.makedirs(out_dir)
    path = os.path.join(out_dir, ITEM_EMBEDDINGS_FILE)
    dim = 0
    with tf.io.TFRecordWriter(path + ".tmp") as writer:
        for start in range(0, len(items), batch_size):
            chunk = list(items[start:start + batch_size])
            emb = embed(examples=tf.constant(chunk, tf.string))[ps.EMBEDDING].numpy()
            ids = tf.io.parse_example(tf.constant(chunk), {"item_id": tf.io.FixedLenFeature([], tf.string)})
            dim = int(emb.shape[1])
            for item_id, vector in zip(ids["item_id"].numpy(), emb):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[item_id])),
                    ps.EMBEDDING: tf.train.Feature(float_list=tf.train.FloatList(value=vector.tolist())),
                })).SerializeToString())
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    info = {"count": len(items), "dim": dim, "file": ITEM_EMBEDDINGS_FILE, "source": source,
            "signature": ps.ITEM_EMBEDDING,
            "format": "TFRecord of tf.Example: item_id (bytes), embedding (float list of dim), item table order"}
    with tf.io.gfile.GFile(os.path.join(out_dir, ITEM_EMBEDDINGS_INFO), "w") as f:
        f.write(json.dumps(info, indent=2))
    return info


def read_item_embeddings(path: str):
    """``(item ids [n] bytes, embeddings [n, d] float32)`` of an ``item_embeddings.tfrecord``."""
    ids, vectors = [], []
    for raw in tf.data.TFRecordDataset(path):
        e = tf.train.Example.FromString(raw.numpy())
        ids.append(e.features.feature["item_id"].bytes_list.value[0])
        vectors.append(list(e.features.feature[ps.EMBEDDING].float_list.value))
    return np.array(ids, dtype=object), np.array(vectors, dtype=np.float32)
