"""Pure-Python parsing and validation of multi-task (click, conversion) CSV rows (no Beam, no TensorFlow).

Two layouts, both comma-separated with a header row (quoted fields are read with the ``csv`` module):

* ``aliexpress``: ``search_id, categorical_1..16, numerical_1..63, click, conversion``
  (:data:`tfrec.features.ALIEXPRESS_COLUMNS`). ``search_id`` is the session id, kept out of the features. The
  layout is fixed, so a file without the header is read too; a first line that is a header (not a number in the
  first, or one of the last two, columns) but differs from it is an error for the whole file.
* ``aliccp``: the preprocessed Ali-CCP CSV: ``click, purchase`` then the categorical feature-id columns (names
  such as ``101``, ``121``, ``109_14``) and the dense columns (names starting with ``D``), in any order. The
  header is required: :func:`aliccp_layout` reads each column's role from it. ``purchase`` becomes the
  ``conversion`` label.

Values: categorical values are kept as raw bytes (empty = missing); dense values must be decimal numbers
(floats allowed; empty = missing, ``None``); labels ``0`` / ``1`` (``0.0`` / ``1.0`` too).

Rejections (:data:`REASONS`, in the order the checks run): ``empty_line``, ``undecodable_bytes``,
``wrong_field_count`` (not exactly the header's number of columns), ``bad_label`` (a click or conversion that
is not 0 or 1), ``conversion_without_click`` (conversion 1 with click 0: the funnel is exposure -> click ->
conversion, and the CVR task is defined on clicked samples, so such a row contradicts the data model; it is
rejected rather than repaired, because neither "the click was lost" nor "the conversion is spurious" can be
told from the row), ``non_numeric`` (a dense value that is not a finite number).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from pipelines.criteo.parse import (BAD_LABEL, EMPTY_LINE, FLOAT_RE, UNDECODABLE_BYTES, WRONG_FIELD_COUNT,
                                    InputError, Rejection, check_line, raw_text, strip_eol)
from tfrec.features import ALIEXPRESS_COLUMNS, CLICK, CONVERSION, MultiTaskSchema

ALIEXPRESS = "aliexpress"
ALICCP = "aliccp"
FORMATS = (ALIEXPRESS, ALICCP)

# empty_line, undecodable_bytes, wrong_field_count and bad_label are the Criteo parser's codes.
CONVERSION_WITHOUT_CLICK = "conversion_without_click"
NON_NUMERIC = "non_numeric"
REASONS = (EMPTY_LINE, UNDECODABLE_BYTES, WRONG_FIELD_COUNT, BAD_LABEL, CONVERSION_WITHOUT_CLICK, NON_NUMERIC)

_BOM = b"\xef\xbb\xbf"
ALICCP_PURCHASE = "purchase"


class LayoutError(InputError):
    """A header that does not match its layout (one line, naming the file and the problem; a usage error)."""


class Row(NamedTuple):
    """A valid multi-task row: ``click``, ``conversion`` (0/1, conversion <= click), ``dense`` (floats or
    ``None``) and ``categorical`` (bytes, ``b""`` when missing), in the layout's schema order."""

    click: int
    conversion: int
    dense: List[Optional[float]]
    categorical: List[bytes]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Column roles of one CSV layout.

    Attributes:
      name: ``aliexpress`` or ``aliccp`` (the schema's name).
      columns: the header's column names, in file order.
      click / conversion: column indices of the labels.
      dense / categorical: ``(column index, feature name)`` of each feature, in schema order.
    """

    name: str
    columns: Tuple[str, ...]
    click: int
    conversion: int
    dense: Tuple[Tuple[int, str], ...]
    categorical: Tuple[Tuple[int, str], ...]

    @property
    def header(self) -> bytes:
        return ",".join(self.columns).encode("utf-8")

    def schema(self) -> MultiTaskSchema:
        return MultiTaskSchema(name=self.name, dense=tuple(n for _, n in self.dense),
                               categorical=tuple(n for _, n in self.categorical))

    def to_json(self) -> dict:
        return {"name": self.name, "columns": list(self.columns)}

    @classmethod
    def from_json(cls, obj: dict) -> "Layout":
        return layout_from_header(obj["name"], list(obj["columns"]), "layout")


def split_fields(line: bytes) -> List[bytes]:
    """The comma-separated fields of a line (the ``csv`` module only when the line has a quote)."""
    if b'"' in line:
        return [f.encode("utf-8") for f in next(csv.reader([line.decode("utf-8")]))]
    return line.split(b",")


def header_fields(first_line: bytes) -> List[str]:
    """The column names of a header line (BOM, line break and surrounding spaces removed)."""
    line = strip_eol(first_line)
    if line.startswith(_BOM):
        line = line[len(_BOM):]
    return [f.decode("utf-8", errors="backslashreplace").strip() for f in split_fields(line)]


def aliexpress_layout() -> Layout:
    return layout_from_header(ALIEXPRESS, ALIEXPRESS_COLUMNS, "aliexpress")


def layout_from_header(fmt: str, columns: Sequence[str], source: str) -> Layout:
    """The :class:`Layout` of format ``fmt`` for a header ``columns``.

    Raises:
      LayoutError: an AliExpress header other than :data:`tfrec.features.ALIEXPRESS_COLUMNS`; an Ali-CCP header
        without ``click`` and ``purchase`` first, with an empty or repeated name, or without features.
    """
    columns = tuple(columns)
    if fmt == ALIEXPRESS:
        if columns != tuple(ALIEXPRESS_COLUMNS):
            extra = [_short(c) for c in columns if c not in ALIEXPRESS_COLUMNS]
            if len(extra) == len(columns):
                raise LayoutError(f"{source}: its header names none of the AliExpress columns (search_id, "
                                  "categorical_1..16, numerical_1..63, click, conversion); it starts with "
                                  f"{extra[:4]}")
            raise LayoutError(f"{source}: not the AliExpress header (search_id, categorical_1..16, numerical_1..63, "
                              f"click, conversion); {len(columns)} columns, unknown: {extra[:3]}")
        return Layout(ALIEXPRESS, columns, columns.index(CLICK), columns.index(CONVERSION),
                      tuple((i, c) for i, c in enumerate(columns) if c.startswith("numerical_")),
                      tuple((i, c) for i, c in enumerate(columns) if c.startswith("categorical_")))
    if fmt == ALICCP:
        if columns[:2] != (CLICK, ALICCP_PURCHASE):
            raise LayoutError(f"{source}: the Ali-CCP header must start with click,purchase; got {list(columns[:2])}")
        names = columns[2:]
        if not names or any(not c for c in names) or len(set(columns)) != len(columns):
            raise LayoutError(f"{source}: the Ali-CCP header needs distinct, non-empty feature column names after "
                              f"click,purchase; got {list(names)[:5]}")
        if CONVERSION in names:
            raise LayoutError(f"{source}: a feature column may not be named {CONVERSION!r} (the label's name)")
        return Layout(ALICCP, columns, 0, 1,
                      tuple((i, c) for i, c in enumerate(columns) if i >= 2 and c.startswith("D")),
                      tuple((i, c) for i, c in enumerate(columns) if i >= 2 and not c.startswith("D")))
    raise ValueError(f"`fmt` must be one of {FORMATS}. Received: fmt={fmt!r}")


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[:width] + "..."


def file_layout(fmt: str, first_line: bytes, source: str) -> Tuple[Layout, bool]:
    """``(layout, has_header)`` of a file from its first line.

    Raises:
      LayoutError: a tab-separated first line (not a CSV), an Ali-CCP file without a header, or a header that
        does not fit the layout.
    """
    line = strip_eol(first_line)
    if b"\t" in line and b"," not in line:
        raise LayoutError(f"{source}: its first line is tab-separated, not a {fmt} CSV (a Criteo Kaggle TSV? "
                          "--format kaggle or auto)")
    fields = header_fields(first_line)
    if fmt == ALIEXPRESS:
        # A data row has numbers where the session id and the two labels are; anything else there is a header,
        # which must then be the AliExpress one (read by position, another header's rows would be misread).
        ids = [fields[0], *fields[-2:]] if fields else []
        looks_like_header = any(v and not FLOAT_RE.fullmatch(v.encode("utf-8")) for v in ids)
        if looks_like_header:
            return layout_from_header(fmt, fields, source), True
        return aliexpress_layout(), False
    if not fields or fields[0] != CLICK:
        raise LayoutError(f"{source}: an Ali-CCP file must start with its header (click,purchase,<feature "
                          f"columns>); the first line starts with {[_short(f) for f in fields[:2]]}")
    return layout_from_header(fmt, fields, source), True


def is_header(line: bytes, layout: Layout) -> bool:
    """True for a header line of ``layout`` (possibly after a BOM), skipped by the pipeline (not a row)."""
    line = strip_eol(line)
    if line.startswith(_BOM):
        line = line[len(_BOM):]
    return line == layout.header


def _label(value: bytes, name: str) -> Union[int, Rejection]:
    if value == b"0" or value == b"1":
        return int(value == b"1")
    if FLOAT_RE.fullmatch(value.strip()) and float(value) in (0.0, 1.0):
        return int(float(value))
    return Rejection(BAD_LABEL, f"{name} must be 0 or 1, got {raw_text(value)!r}")


def parse_line(line: bytes, layout: Layout) -> Union[Row, Rejection]:
    """Parses and validates one data line (with or without its line break) of ``layout``; see the module
    docstring for the rules and reasons. A header line must be skipped by the caller (:func:`is_header`)."""
    line = strip_eol(line)
    bad = check_line(line)
    if bad is not None:
        return bad
    fields = split_fields(line)
    if len(fields) != len(layout.columns):
        return Rejection(WRONG_FIELD_COUNT, f"{len(fields)} comma-separated fields; expected "
                                            f"{len(layout.columns)} ({layout.name} header)")
    click = _label(fields[layout.click], layout.columns[layout.click])
    if type(click) is Rejection:
        return click
    conversion = _label(fields[layout.conversion], layout.columns[layout.conversion])
    if type(conversion) is Rejection:
        return conversion
    if conversion and not click:
        return Rejection(CONVERSION_WITHOUT_CLICK, f"{layout.columns[layout.conversion]} is 1 but click is 0 "
                                                   "(conversions happen only after clicks)")
    dense: List[Optional[float]] = []
    for i, name in layout.dense:
        v = fields[i].strip()
        if not v:
            dense.append(None)
            continue
        if not FLOAT_RE.fullmatch(v) or not math.isfinite(float(v)):
            return Rejection(NON_NUMERIC, f"{name} is not a finite number: {raw_text(fields[i])!r}")
        dense.append(float(v))
    return Row(click, conversion, dense, [fields[i] for i, _ in layout.categorical])
