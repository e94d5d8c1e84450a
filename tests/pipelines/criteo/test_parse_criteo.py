"""Unit tests of the pure-Python Criteo row parser (``pipelines.criteo.parse``); no Beam, no TensorFlow."""

import math

import pytest

from pipelines.criteo import parse
from pipelines.criteo.parse import KAGGLE, X1, Rejection, Row, is_header, parse_line, sniff_format

HEX = [f"{i:08x}" for i in range(26)]
INTS = [str(i * 7) for i in range(13)]


def kaggle(label="1", dense=None, cats=None):
    return "\t".join([label, *(INTS if dense is None else dense), *(HEX if cats is None else cats)]).encode()


def x1(label="1", dense=None, cats=None):
    return ",".join([label, *(INTS if dense is None else dense), *(HEX if cats is None else cats)]).encode()


def reason(result):
    assert isinstance(result, Rejection), result
    return result.reason


def test_valid_kaggle_row_values():
    dense = ["", "-3", "0", "17", "", "123456", "1", "2", "3", "4", "5", "6", "7"]
    cats = ["", *HEX[1:25], "DEADBEEF"]
    row = parse_line(kaggle("0", dense, cats) + b"\n", KAGGLE)
    assert type(row) is Row
    assert row.label == 0
    assert row.dense == [None, -3.0, 0.0, 17.0, None, 123456.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert all(type(x) is float for x in row.dense if x is not None)
    assert row.categorical == [b"", *[h.encode() for h in HEX[1:25]], b"DEADBEEF"]


@pytest.mark.parametrize("n_fields", [37, 38, 39, 40])
def test_37_to_40_fields_valid_and_padded(n_fields):
    fields = kaggle().split(b"\t")
    stripped = fields[: n_fields - 1] + [b"c0ffee"] if n_fields < 40 else fields
    row = parse_line(b"\t".join(stripped), KAGGLE)
    assert type(row) is Row
    assert len(row.dense) == 13 and len(row.categorical) == 26
    if n_fields < 40:
        assert row.categorical[n_fields - 15] == b"c0ffee"
    assert row.categorical[n_fields - 14:] == [b""] * (40 - n_fields)


@pytest.mark.parametrize("n_fields", [1, 2, 36, 41, 45])
def test_wrong_field_count_rejected_with_count(n_fields):
    fields = (kaggle().split(b"\t") + [b"ab"] * 10)[:n_fields]
    result = parse_line(b"\t".join(fields), KAGGLE)
    assert reason(result) == "wrong_field_count"
    assert str(n_fields) in result.message


@pytest.mark.parametrize("label", ["2", "", "-1", "1.0", "yes", " 1"])
def test_bad_label_kaggle(label):
    assert reason(parse_line(kaggle(label), KAGGLE)) == "bad_label"


@pytest.mark.parametrize("value", ["1.5", "12a", "abc", "+3", "1_000", " 4", "--2", "-", "1e3", "nan"])
def test_kaggle_non_integer_rejected_naming_field_and_value(value):
    dense = list(INTS)
    dense[4] = value
    result = parse_line(kaggle(dense=dense), KAGGLE)
    assert reason(result) == "non_numeric_integer"
    assert "I5" in result.message and repr(value) in result.message


def test_kaggle_negative_integers_ok():
    dense = ["-1", "-2", "-300", *INTS[3:]]
    row = parse_line(kaggle(dense=dense), KAGGLE)
    assert row.dense[:3] == [-1.0, -2.0, -300.0]


@pytest.mark.parametrize("value", ["xyz!", "12 34", "g00d", "0x1f"])
def test_kaggle_bad_categorical(value):
    cats = list(HEX)
    cats[6] = value
    result = parse_line(kaggle(cats=cats), KAGGLE)
    assert reason(result) == "bad_categorical"
    assert "C7" in result.message and repr(value) in result.message


def test_empty_and_whitespace_lines():
    for line in (b"", b"\n", b"\r\n", b"   ", b" \t \n"):
        assert reason(parse_line(line, KAGGLE)) == "empty_line"
        assert reason(parse_line(line, X1)) == "empty_line"


def test_undecodable_bytes():
    line = kaggle().replace(HEX[3].encode(), b"\xff\xfe\x00\x01")
    result = parse_line(line, KAGGLE)
    assert reason(result) == "undecodable_bytes"
    assert reason(parse_line(b"1," + b"\xc3" + b",2", X1)) == "undecodable_bytes"
    assert "\\xff\\xfe" in parse.raw_text(line)


def test_crlf_and_newline_stripped():
    row = parse_line(kaggle(cats=HEX[:25] + [""]) + b"\r\n", KAGGLE)
    assert type(row) is Row and row.categorical[-1] == b""


def test_check_order_first_failure_wins():
    # field count is checked before the label, the label before the values.
    assert reason(parse_line(b"2\t1\t2", KAGGLE)) == "wrong_field_count"
    assert reason(parse_line(kaggle("2", dense=["x"] * 13), KAGGLE)) == "bad_label"
    assert reason(parse_line(kaggle(dense=["x"] * 13, cats=["!"] * 26), KAGGLE)) == "non_numeric_integer"


def test_x1_floats_and_free_tokens():
    dense = ["0.05", "3.0", "", "-2.5", "1e-3", "7", ".5", "5.", "0", "-0.0", "1E2", "+4", "12345.678"]
    cats = ["tok", "hello world", "", "ünï", "A-B_C", *HEX[5:]]
    row = parse_line(x1("1", dense, cats), X1)
    assert type(row) is Row
    assert row.label == 1
    assert row.dense == [0.05, 3.0, None, -2.5, 0.001, 7.0, 0.5, 5.0, 0.0, -0.0, 100.0, 4.0, 12345.678]
    assert row.categorical[:5] == [b"tok", b"hello world", b"", "ünï".encode(), b"A-B_C"]


@pytest.mark.parametrize("label,expected", [("0", 0), ("1", 1), ("0.0", 0), ("1.0", 1)])
def test_x1_labels(label, expected):
    assert parse_line(x1(label), X1).label == expected


@pytest.mark.parametrize("label", ["2", "0.5", "", "label", "a"])
def test_x1_bad_label(label):
    assert reason(parse_line(x1(label), X1)) == "bad_label"


@pytest.mark.parametrize("value", ["abc", "1.2.3", "nan", "inf", "-inf", "1e999", "1_0", " 1", "1-2", "e5"])
def test_x1_non_numeric(value):
    dense = list(INTS)
    dense[2] = value
    result = parse_line(x1(dense=dense), X1)
    assert reason(result) == "non_numeric_integer"
    assert "I3" in result.message


def test_x1_field_counts_and_quotes():
    fields = x1().split(b",")
    assert type(parse_line(b",".join(fields[:37]), X1)) is Row
    assert reason(parse_line(b",".join(fields[:36]), X1)) == "wrong_field_count"
    assert reason(parse_line(b",".join(fields + [b"x"]), X1)) == "wrong_field_count"
    quoted = x1(cats=['"a,b"', *HEX[1:]])
    row = parse_line(quoted, X1)
    assert type(row) is Row and row.categorical[0] == b"a,b"


def test_x1_header_detection():
    header = ",".join(["label", *[f"I{i}" for i in range(1, 14)], *[f"C{i}" for i in range(1, 27)]]).encode()
    assert is_header(header)
    assert sniff_format(header + b"\n") == X1
    assert sniff_format(kaggle()) == KAGGLE
    assert sniff_format(b"") == KAGGLE
    assert is_header(b"\xef\xbb\xbf" + header) and sniff_format(b"\xef\xbb\xbf" + header) == X1
    assert not is_header(kaggle())
    assert not is_header(x1())
    # parsed as a row (which the pipeline never does) the header is a bad label, not a silent drop.
    assert reason(parse_line(header, X1)) == "bad_label"


def test_kaggle_huge_integer_out_of_float_range():
    dense = list(INTS)
    dense[0] = "9" * 400
    result = parse_line(kaggle(dense=dense), KAGGLE)
    assert reason(result) == "non_numeric_integer"
    dense[0] = "9" * 30
    assert math.isclose(parse_line(kaggle(dense=dense), KAGGLE).dense[0], 1e30)


def test_unknown_format():
    with pytest.raises(ValueError, match="fmt"):
        parse_line(kaggle(), "tsv")


def test_reasons_are_stable():
    assert parse.REASONS == ("empty_line", "undecodable_bytes", "wrong_field_count", "bad_label",
                             "non_numeric_integer", "bad_categorical")
