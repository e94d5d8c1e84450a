"""Pure-Python parsing and validation of Criteo rows (no Beam, no TensorFlow).

Two input formats:

* ``kaggle``: the Kaggle / DAC ``train.txt``. Tab-separated ``label, I1..I13, C1..C26``; integers for I*,
  hexadecimal strings for C*, empty fields for missing values, no header. Some copies strip trailing empty
  fields, so 37 to 40 fields are valid (padded to 40 with empty fields).
* ``x1``: the criteo_x1 CSV (BARS / FuxiCTR). A header line ``label,I1,...,C26`` then comma-separated rows;
  numeric values may be floats, categorical values are arbitrary non-empty tokens; empty = missing. The same
  37..40 field rule applies. Quoted fields are read with the ``csv`` module (only when the line has a ``"``).

:func:`parse_line` returns either a :class:`Row` or a :class:`Rejection` (a stable ``reason`` code from
:data:`REASONS` and a one-line human message). A row is never silently dropped: the only line that is neither a
row nor a rejection is an x1 header, recognised by :func:`is_header`. A whole file is checked once, from its first
line (:func:`file_format`): a CSV header that is not criteo_x1's stops the run (:class:`InputError`) instead of
sending every row to the dead letter.

In a :class:`Row`, a missing dense value is ``None`` and a missing categorical value is ``b""`` (the value
``tf.io.parse_example`` gives an absent categorical feature, see ``tfrec.features``).
"""

from __future__ import annotations

import csv
import math
import re
from typing import List, NamedTuple, Optional, Union

from tfrec.config import ConfigError
from tfrec.features import CRITEO_CATEGORICAL, CRITEO_COLUMNS, CRITEO_DENSE

KAGGLE = "kaggle"
X1 = "x1"
FORMATS = (KAGGLE, X1)

NUM_FIELDS = 1 + len(CRITEO_DENSE) + len(CRITEO_CATEGORICAL)  # 40
MIN_FIELDS = NUM_FIELDS - 3  # copies that strip trailing empty fields keep at least C23
_DENSE_END = 1 + len(CRITEO_DENSE)  # 14

#: Stable rejection reason codes, in the order the checks run.
EMPTY_LINE = "empty_line"
UNDECODABLE_BYTES = "undecodable_bytes"
WRONG_FIELD_COUNT = "wrong_field_count"
BAD_LABEL = "bad_label"
NON_NUMERIC_INTEGER = "non_numeric_integer"
BAD_CATEGORICAL = "bad_categorical"
REASONS = (EMPTY_LINE, UNDECODABLE_BYTES, WRONG_FIELD_COUNT, BAD_LABEL, NON_NUMERIC_INTEGER, BAD_CATEGORICAL)

HEADER_PREFIX = b"label,"
BOM = b"\xef\xbb\xbf"
_HEADER_PREFIXES = (HEADER_PREFIX, BOM + HEADER_PREFIX)  # with or without a UTF-8 BOM
_HEX = b"0123456789abcdefABCDEF"
_FLOAT_CHARS = b"0123456789.eE+-"
_FLOAT_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WHITESPACE = b" \t\r\n\x0b\x0c"


class InputError(ConfigError):
    """An input file that cannot be read as the run is configured (a directory, an archive, a header that does not
    match the format): one line naming the file. A usage error, like a config error (``tfrec`` exits 2)."""


class Row(NamedTuple):
    """A valid Criteo row.

    Attributes:
      label: 0 or 1.
      dense: 13 values of I1..I13 as Python floats; ``None`` when missing.
      categorical: 26 values of C1..C26 as bytes; ``b""`` when missing.
    """

    label: int
    dense: List[Optional[float]]
    categorical: List[bytes]


class Rejection(NamedTuple):
    """A rejected line: a stable reason code (one of :data:`REASONS`) and a one-line message."""

    reason: str
    message: str


def raw_text(line: bytes) -> str:
    """The line as text for the dead-letter output (undecodable bytes shown as ``\\xNN``)."""
    return line.decode("utf-8", errors="backslashreplace")


def strip_eol(line: bytes) -> bytes:
    """Removes a trailing line break (``\\n``, ``\\r\\n`` or a stray ``\\r``) and nothing else."""
    return line.rstrip(b"\r\n")


def is_header(line: bytes) -> bool:
    """True for a criteo_x1 header line (``label,...``, possibly after a UTF-8 BOM). Only x1 files have one."""
    return line.startswith(_HEADER_PREFIXES)


def sniff_format(first_line: bytes) -> str:
    """The format of a file from its first line: a ``label,`` header means x1, anything else Kaggle."""
    return X1 if is_header(first_line) else KAGGLE


def _fields(line: bytes) -> List[bytes]:
    if b'"' in line:
        return [f.encode("utf-8") for f in next(csv.reader([line.decode("utf-8", errors="replace")]))]
    return line.split(b",")


def _is_number(field: bytes) -> bool:
    return _FLOAT_RE.fullmatch(field.strip()) is not None


def file_format(fmt: str, first_line: bytes, source: str) -> str:
    """The format a Criteo file is read in: ``fmt`` (``auto``, ``kaggle`` or ``x1``) checked against, or (auto)
    told by, the file's first line.

    * A line with a tab (a Kaggle TSV row), or with neither tab nor comma: ``kaggle`` under ``auto``.
    * A comma-separated line: the criteo_x1 header (exactly ``label,I1..I13,C1..C26``, after a UTF-8 BOM) or a
      data row (its first field is a number: a headerless x1 file) means ``x1`` under ``auto``. Any other first
      line is a header, and one that is not criteo_x1's is an error: read by position, its rows would land in the
      wrong columns or be rejected one by one.
    * An empty file: ``fmt``, ``kaggle`` under ``auto``.

    Args:
      fmt: the configured format.
      first_line: the file's first line (decompressed; with or without its line break).
      source: the file, named in the error.

    Returns:
      ``kaggle`` or ``x1``.

    Raises:
      InputError: a CSV header that is not criteo_x1's (the message says whether it names none of the Criteo
        columns or which ones differ); a criteo_x1 file under ``kaggle``.
    """
    line = strip_eol(first_line)
    if line.startswith(BOM):
        line = line[len(BOM):]
    if b"\t" in line or b"," not in line:
        return fmt if fmt != "auto" else KAGGLE
    fields = _fields(line)
    names = [f.decode("utf-8", errors="backslashreplace").strip() for f in fields]
    if names == CRITEO_COLUMNS:
        if fmt == KAGGLE:
            raise InputError(f"{source} is a criteo_x1 CSV (header label,I1..I13,C1..C26), not a Kaggle TSV; use "
                             "--format x1 or auto")
        return X1
    if _is_number(fields[0]):
        return fmt if fmt != "auto" else X1  # a data row: a headerless CSV
    known = [n for n in names if n in CRITEO_COLUMNS]
    if not known:
        raise InputError(f"{source}: its CSV header names none of the Criteo columns (label, I1..I13, C1..C26); it "
                         f"starts with {names[:4]} (AliExpress / Ali-CCP files: --format aliexpress or aliccp)")
    missing = [n for n in CRITEO_COLUMNS if n not in names]
    unknown = [n for n in names if n not in CRITEO_COLUMNS]
    detail = (f"missing {missing[:5]}, unknown {unknown[:5]}" if missing or unknown
              else "the same names, repeated or in another order")
    raise InputError(f"{source}: its CSV header is not criteo_x1's label,I1..I13,C1..C26 ({detail}); the rows "
                     "would be read by position")


def parse_line(line: bytes, fmt: str) -> Union[Row, Rejection]:
    """Parses and validates one line (without or with its line break) of format ``fmt`` (kaggle or x1).

    An x1 header line must be skipped by the caller (:func:`is_header`); parsed here it is a ``bad_label``.
    """
    if fmt == KAGGLE:
        return parse_kaggle(line)
    if fmt == X1:
        return parse_x1(line)
    raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={fmt!r}")


def _check_common(line: bytes) -> Union[Rejection, None]:
    if not line.strip(_WHITESPACE):
        return Rejection(EMPTY_LINE, "empty line" if not line else "line has only whitespace")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejection(UNDECODABLE_BYTES, f"not valid UTF-8: {e.reason} at byte {e.start}")
    return None


#: Public names of the checks every tfrec CSV parser shares (``pipelines.multitask.parse``).
check_line = _check_common
FLOAT_RE = _FLOAT_RE


def _field_count(fields: List[bytes], sep: str) -> Union[Rejection, List[bytes]]:
    n = len(fields)
    if n < MIN_FIELDS or n > NUM_FIELDS:
        return Rejection(WRONG_FIELD_COUNT, f"{n} {sep}-separated fields; expected {MIN_FIELDS} to {NUM_FIELDS} "
                         f"(label, I1..I13, C1..C26; trailing empty fields may be stripped)")
    if n < NUM_FIELDS:
        fields.extend([b""] * (NUM_FIELDS - n))
    return fields


def _bad_number(name: str, value: bytes, what: str) -> Rejection:
    return Rejection(NON_NUMERIC_INTEGER, f"{name} is not {what}: {raw_text(value)!r}")


def parse_kaggle(line: bytes) -> Union[Row, Rejection]:
    """Parses a Kaggle / DAC ``train.txt`` line (tab-separated; integer I*, hexadecimal C*)."""
    line = strip_eol(line)
    bad = _check_common(line)
    if bad is not None:
        return bad
    fields = _field_count(line.split(b"\t"), "tab")
    if type(fields) is Rejection:
        return fields
    label = fields[0]
    if label == b"0":
        y = 0
    elif label == b"1":
        y = 1
    else:
        return Rejection(BAD_LABEL, f"label must be 0 or 1, got {raw_text(label)!r}")

    ds = fields[1:_DENSE_END]
    joined = b"".join(ds)
    if joined.isdigit() and len(joined) < 300:  # fast path: only non-negative integers (or missing)
        dense = [float(v) if v else None for v in ds]
    else:
        dense = []
        for name, v in zip(CRITEO_DENSE, ds):
            if not v:
                dense.append(None)
                continue
            digits = v[1:] if v[:1] == b"-" else v
            if not digits.isdigit():
                return _bad_number(name, v, "an integer")
            x = float(v)
            if not math.isfinite(x):
                return _bad_number(name, v, "an integer in the float range")
            dense.append(x)

    cs = fields[_DENSE_END:]
    if b"".join(cs).strip(_HEX):  # some value has a non-hexadecimal character
        for name, v in zip(CRITEO_CATEGORICAL, cs):
            if v.strip(_HEX):
                return Rejection(BAD_CATEGORICAL, f"{name} is not hexadecimal: {raw_text(v)!r}")
    return Row(y, dense, cs)


def _x1_number(name: str, v: bytes) -> Union[float, Rejection]:
    if not _FLOAT_RE.fullmatch(v):
        return _bad_number(name, v, "a number")
    x = float(v)
    if not math.isfinite(x):
        return _bad_number(name, v, "a finite number")
    return x


def parse_x1(line: bytes) -> Union[Row, Rejection]:
    """Parses a criteo_x1 CSV row (comma-separated; numbers may be floats, categorical tokens are free)."""
    line = strip_eol(line)
    bad = _check_common(line)
    if bad is not None:
        return bad
    if b'"' in line:
        fields = [f.encode("utf-8") for f in next(csv.reader([line.decode("utf-8")]))]
    else:
        fields = line.split(b",")
    fields = _field_count(fields, "comma")
    if type(fields) is Rejection:
        return fields
    label = fields[0]
    if label == b"0" or label == b"1":
        y = 1 if label == b"1" else 0
    else:
        x = _x1_number("label", label) if label else None
        if type(x) is not float or x not in (0.0, 1.0):
            return Rejection(BAD_LABEL, f"label must be 0 or 1, got {raw_text(label)!r}")
        y = int(x)

    ds = fields[1:_DENSE_END]
    joined = b"".join(ds)
    dense: Optional[List[Optional[float]]] = None
    if not joined.translate(None, _FLOAT_CHARS):  # fast path: only characters of plain decimal numbers
        try:
            dense = [float(v) if v else None for v in ds]
        except ValueError:
            dense = None
        if dense is not None and (len(joined) >= 300 or b"e" in joined or b"E" in joined) and not all(
                x is None or math.isfinite(x) for x in dense):
            dense = None
    if dense is None:
        dense = []
        for name, v in zip(CRITEO_DENSE, ds):
            if not v:
                dense.append(None)
                continue
            x = _x1_number(name, v)
            if type(x) is Rejection:
                return x
            dense.append(x)
    return Row(y, dense, fields[_DENSE_END:])
