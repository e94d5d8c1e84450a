"""The rows ``tfrec predict`` sends: a file read as a stream of batches of serialized ``tf.Example``.

What a file holds is read from its content, not only its name:

* **TFRecord** of ``tf.Example``: a name ending in ``.tfrecord`` / ``.tfrecords`` (GZIP when it ends in ``.gz``),
  or any other file whose (possibly gzip-compressed) content reads as TFRecords.
* **Text**, plain or gzip-compressed (recognised by the gzip magic bytes, so ``rows.tsv.gz`` and ``train.txt.gz``
  are text), tab-separated, one of:

  - **raw Criteo Kaggle rows** (``train.txt``): no header; the first line parses as a Kaggle row. Every line is
    read with the parser of ``tfrec prepare`` (:func:`pipelines.criteo.parse.parse_kaggle`: 37 to 40 fields,
    label 0/1, integer I1..I13, hexadecimal C1..C26, empty = missing), so a row is accepted here exactly when
    ``prepare`` accepts it; the label is not sent. Only for a model whose inputs include the 39 Criteo features.
  - **a header line naming the features**, then one row per line (an empty cell is a missing feature). Each
    cell is typed by the model's ``predict_raw`` signature; without one, a column whose cells in the first
    batch all parse as numbers is a float feature, the others strings.

  A first line that names no input of the model and is not a Criteo row is refused: a headerless file is never
  read with its first row as the header.

Rows are read lazily, ``batch_size`` at a time; ``limit`` stops the reading after that many rows.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import os
from typing import Dict, Iterable, Iterator, List, Optional

from tensorflow.core.framework import types_pb2

from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz")
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
CRITEO_FEATURES = frozenset(CRITEO_DENSE + CRITEO_CATEGORICAL)


class InputError(ValueError):
    """The input file cannot be read as rows for the model (one line naming the file, the line and why)."""


def _gzipped(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def is_tfrecord(path: str) -> bool:
    """A TFRecord by name, or a file whose first record reads as one (its length checksum holds)."""
    if path.endswith(TFRECORD_SUFFIXES):
        return True
    import tensorflow as tf

    try:
        ds = tf.data.TFRecordDataset(path, compression_type="GZIP" if _gzipped(path) else "")
        next(iter(ds.take(1)))
        return True
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError, StopIteration):
        return False


def _batches(items: Iterable[bytes], batch_size: int) -> Iterator[List[bytes]]:
    it = iter(items)
    while True:
        batch = list(itertools.islice(it, batch_size))
        if not batch:
            return
        yield batch


def read_examples(path: str, signature_def=None, batch_size: int = 1024,
                  limit: Optional[int] = None) -> Iterator[List[bytes]]:
    """Batches of serialized ``tf.Example`` from ``path`` (see the module docstring), streamed.

    Args:
      path: the input file.
      signature_def: the model's ``predict_raw`` SignatureDef (one input per raw feature, giving names and
        dtypes); None when the model has none (then no feature check and the column types are inferred).
      batch_size: rows per batch (>= 1).
      limit: read at most this many rows (None: all).

    Raises:
      InputError: a first line that names no feature and is not a Criteo row, a Criteo line ``prepare`` rejects,
        a row of the wrong length or a cell of the wrong type (the message names the file and the line).
      FileNotFoundError / IsADirectoryError: no such file.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a TSV or TFRecord file")
    if limit is not None and limit <= 0:
        return iter(())
    if is_tfrecord(path):
        return _batches(tfrecord_rows(path, limit), batch_size)
    return _text_batches(path, signature_def, batch_size, limit)


def tfrecord_rows(path: str, limit: Optional[int] = None) -> Iterator[bytes]:
    """The records of a TFRecord file (GZIP when its content is gzip-compressed), at most ``limit``."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(path, compression_type="GZIP" if _gzipped(path) else "")
    if limit is not None:
        ds = ds.take(limit)
    for record in ds:
        yield record.numpy()


def _lines(path: str) -> Iterator[bytes]:
    opener = gzip.open if _gzipped(path) else open
    with opener(path, "rb") as f:
        for line in f:
            yield line.rstrip(b"\r\n")


def _text_batches(path, signature_def, batch_size, limit) -> Iterator[List[bytes]]:
    lines = enumerate(_lines(path), start=1)
    first = next(lines, None)
    if first is None:
        return
    head = first[1][len(BOM):] if first[1].startswith(BOM) else first[1]
    inputs = dict(signature_def.inputs) if signature_def is not None else None
    from pipelines.criteo.parse import Row, parse_kaggle

    parsed = parse_kaggle(head)
    criteo_model = inputs is None or CRITEO_FEATURES <= set(inputs)
    if criteo_model and type(parsed) is Row:
        rows = itertools.chain([(1, head)], lines)
        yield from _batches(_criteo_examples(path, itertools.islice(rows, limit)), batch_size)
        return
    header = next(csv.reader([head.decode("utf-8", errors="replace")], delimiter="\t"))
    if inputs is not None and not set(header) & set(inputs):
        shown = ", ".join(sorted(inputs)[:8]) + (", ..." if len(inputs) > 8 else "")
        why = f"; as a raw Criteo row: {parsed.message}" if criteo_model else ""
        raise InputError(f"{path} line 1 is not a header naming the model's features (none of its cells is an "
                         f"input of the model: {shown}){why}")
    rows = itertools.islice(lines, limit)
    for chunk in _batches(rows, batch_size):
        yield _tsv_examples(path, header, chunk, inputs)


def _criteo_examples(path: str, rows) -> Iterator[bytes]:
    from pipelines.criteo.example import add_features, new_example
    from pipelines.criteo.parse import Rejection, parse_kaggle

    for number, line in rows:
        row = parse_kaggle(line)
        if type(row) is Rejection:
            raise InputError(f"{path} line {number}: not a Criteo row tfrec prepare accepts ({row.reason}): "
                             f"{row.message}")
        example = new_example()
        add_features(example.features.feature, CRITEO_DENSE, row.dense, CRITEO_CATEGORICAL, row.categorical)
        yield example.SerializeToString()


def _kind(dtype) -> str:
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        return "float"
    return "int" if dtype in (types_pb2.DT_INT64, types_pb2.DT_INT32) else "bytes"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _tsv_examples(path: str, header: List[str], chunk, inputs: Optional[Dict]) -> List[bytes]:
    import tensorflow as tf

    rows = [(number, next(csv.reader([line.decode("utf-8", errors="replace")], delimiter="\t")) if line else [])
            for number, line in chunk]
    for number, cells in rows:
        if len(cells) != len(header):
            raise InputError(f"{path} line {number}: {len(cells)} cells, the header has {len(header)}")
    kinds = {}
    for j, name in enumerate(header):
        if inputs is not None:
            if name in inputs:
                kinds[name] = _kind(inputs[name].dtype)
        else:
            kinds[name] = "float" if all(_is_number(c[j]) for _, c in rows if c[j]) else "bytes"
    out = []
    for number, cells in rows:
        feats = {}
        for name, cell in zip(header, cells):
            if cell == "" or name not in kinds:
                continue
            try:
                if kinds[name] == "float":
                    feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(cell)]))
                elif kinds[name] == "int":
                    feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(cell)]))
                else:
                    feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[cell.encode()]))
            except ValueError:
                raise InputError(f"{path} line {number}: feature {name!r} needs a {kinds[name]}, got {cell!r}") \
                    from None
        out.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return out
