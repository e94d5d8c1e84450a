"""The column path of the Criteo pipeline (pipelines/criteo/fast.py) gives the row path's bytes, rows and statistics."""

from __future__ import annotations

import random

import numpy as np

import pipelines.criteo as criteo
from tests.support.pipeline_outputs import differences, snapshot
from pipelines.common.stages import ParseChunks
from pipelines.criteo.fast_encode import encode_examples
from pipelines.criteo.fast_parse import parse_chunk, parse_columns, split_chunk
from pipelines.criteo.parse import BOM, Rejection, Row, parse_kaggle
from tfrec.config import PrepareConfig


def _row(rng: random.Random, i: int) -> str:
    label = rng.choice("01")
    dense = [rng.choice(["", "0", "7", "0012", str(rng.randint(0, 10 ** rng.randint(1, 15) - 1)), "999999999999999"])
             for _ in range(13)]
    cats = [rng.choice(["", f"{rng.getrandbits(32):08x}", "ABCDEF", "0", "a" * 15]) for _ in range(26)]
    return "\t".join([label, *dense, *cats])


def test_encode_examples_equals_to_example_byte_for_byte():
    rng = random.Random(0)
    lines = [_row(rng, i).encode() for i in range(3000)]
    lines.append(b"\t".join([b"1", *[b""] * 13, *[b""] * 26]))  # every feature missing
    fields, idx, others = split_chunk(lines)
    cols, rejected = parse_columns(fields)
    assert not others and not rejected
    for beta in (1.0, 0.37, 1e-3):
        got = encode_examples(cols, beta)
        want = [criteo.to_example(parse_kaggle(line), beta) for line in lines]
        assert got == want
    np.testing.assert_array_equal(cols.label, [int(line[:1]) for line in lines])


def test_lines_the_column_path_leaves_to_the_row_parser():
    good = _row(random.Random(1), 0).split("\t")

    def with_(i, v):
        f = list(good)
        f[i] = v
        return "\t".join(f).encode()

    lines = [
        "\t".join(good).encode(), with_(2, "-3"),  # negatives are the column path's too
        with_(2, "-0"), with_(2, "1" * 16), with_(2, "+3"), with_(2, "1.5"), with_(0, "2"),
        with_(0, ""), with_(20, "g0"), with_(20, "a" * 16), with_(20, "ab\x00"), "\t".join(good[:38]).encode(),
        b"", b"   ", with_(30, "\xff"), with_(2, "-"),
    ]
    fields, idx, others = split_chunk(lines)
    cols, rejected = parse_columns(fields)
    left = sorted(others + [idx[i] for i in rejected])
    assert left == list(range(2, len(lines)))
    assert len(cols.label) == 2 and cols.dense[1, 1] == -3


def test_the_pipeline_output_does_not_depend_on_the_path(tmp_path, monkeypatch):
    """A file mixing both kinds of lines, prepared with the column path and with the row path only: the same
    records per split, dead letters, vocabularies, transform and stats."""
    rng = random.Random(2)
    lines = [_row(rng, i) for i in range(2500)]
    for i in range(0, 2500, 37):
        f = lines[i].split("\t")
        f[1 + i % 13] = "-%d" % (i % 5)  # negatives, -0 among them
        lines[i] = "\t".join(f)
    for i in range(5, 2500, 101):
        lines[i] = "\t".join(lines[i].split("\t")[:38])  # stripped trailing fields
    lines += ["2\t1", "", "1" + "\tzz" * 39, lines[3] + "\r"]
    src = tmp_path / "train.txt"
    src.write_text("\n".join(lines) + "\n")
    cfg = dict(inputs=[str(src)], num_shards=3, min_count=2, beta_pos=0.4)
    fast = criteo.run(PrepareConfig(output=str(tmp_path / "fast"), **cfg))
    monkeypatch.setattr(criteo.pipeline.ParseRows, "process", ParseChunks.process)
    rows = criteo.run(PrepareConfig(output=str(tmp_path / "rows"), **cfg))
    assert fast == rows and fast["rows_rejected"] == 3
    assert not differences(snapshot(str(tmp_path / "fast")), snapshot(str(tmp_path / "rows")))


def test_row_tuple_and_namedtuple_serialize_alike():
    r = Row(1, [1.0] + [None] * 12, [b"ab"] + [b""] * 25)
    assert criteo.to_example(r, 0.5) == criteo.to_example(tuple(r), 0.5)


def _bad_lines(good: list) -> list:
    """Lines the column path must leave to the row parser (each gives a row or a rejection there), beside good ones."""

    def with_(i, v):
        f = list(good)
        f[i] = v
        return "\t".join(f).encode()

    return [
        with_(2, "-3"), with_(2, "-0"), with_(2, "-00"), with_(2, "-"), with_(2, "1" * 15), with_(2, "1" * 16),
        with_(2, "+3"), with_(2, "1.5"), with_(2, "1e3"), with_(2, " 3"), with_(2, "3-"), with_(0, "2"), with_(0, ""),
        with_(0, "01"), with_(20, "g0"), with_(20, "a" * 15), with_(20, "a" * 16), with_(20, "ab\x00"),
        with_(20, "a\rb"), with_(39, "ff\r"), BOM + "\t".join(good).encode(), "\t".join(good[:37]).encode(),
        "\t".join(good[:36]).encode(), "\t".join(good + ["x"]).encode(), b"\t" * 39, b"", b"   ",
        with_(30, "\xff"), "\t".join(good).encode().replace(b"\t", b"\t\xff", 1),  # (the second: not UTF-8)
        "\t".join(["1"] + [""] * 39).encode(), "\t".join(["0"] * 40).encode(),
    ]


def test_parse_chunk_equals_the_split_then_column_checks():
    """:func:`parse_chunk` (on the chunk's joined bytes) accepts exactly the lines that :func:`split_chunk` +
    :func:`parse_columns` accept, with the same columns and the same bytes."""
    rng = random.Random(3)
    good = _row(rng, 0).split("\t")
    lines = [_row(rng, i).encode() for i in range(1500)] + _bad_lines(good)
    rng.shuffle(lines)
    for chunk in (lines, lines[:1], _bad_lines(good), [b""], []):
        fields, idx, others = split_chunk(chunk)
        cols, rejected = parse_columns(fields)
        want_idx = [i for j, i in enumerate(idx) if j not in set(rejected)]
        want_others = sorted(others + [idx[i] for i in rejected])
        got, got_idx, got_others = parse_chunk(chunk)
        assert (got_idx, got_others) == (want_idx, want_others)
        assert (got is None) == (cols is None)
        if got is not None:
            np.testing.assert_array_equal(got.label, cols.label)
            np.testing.assert_array_equal(got.dense, cols.dense)
            np.testing.assert_array_equal(got.present, cols.present)
            assert [t.tolist() for t in got.tokens] == [list(c) for c in cols.categorical]
            assert encode_examples(got, 0.3) == encode_examples(cols, 0.3)
            assert encode_examples(got, 0.3) == [criteo.to_example(parse_kaggle(chunk[i]), 0.3) for i in got_idx]
    assert parse_chunk(lines)[2]  # (some lines did go to the row parser)


def test_bad_rows_get_the_same_records_and_rejections_on_both_paths(tmp_path, monkeypatch):
    """A Kaggle file with bad rows (wrong field counts, non-numeric integers, empty fields, a BOM, CRLF line ends)
    among good ones: the column path and the row path alone write the same records, the same dead letters (reason,
    message, row) and the same statistics; rows in = written + rejected."""
    rng = random.Random(4)
    good = _row(rng, 0).split("\t")
    bad = [line.decode("utf-8", errors="surrogateescape") for line in _bad_lines(good)]
    lines = [_row(rng, i) for i in range(1200)]
    for k, line in enumerate(bad):
        lines.insert(37 * k + 5, line)
    data = "\r\n".join(lines[:600]).encode("utf-8", errors="surrogateescape") + b"\r\n" + \
        "\n".join(lines[600:]).encode("utf-8", errors="surrogateescape") + b"\n"
    src = tmp_path / "train.txt"
    src.write_bytes(data)
    cfg = dict(inputs=[str(src)], num_shards=2, min_count=1, beta_pos=0.25)
    fast = criteo.run(PrepareConfig(output=str(tmp_path / "fast"), **cfg))
    monkeypatch.setattr(criteo.pipeline.ParseRows, "process", ParseChunks.process)
    rows = criteo.run(PrepareConfig(output=str(tmp_path / "rows"), **cfg))
    assert fast == rows
    assert fast["rows_in"] == len(lines) == sum(fast["rows_written"].values()) + fast["rows_rejected"]
    want = [parse_kaggle(line.encode("utf-8", errors="surrogateescape")) for line in lines]
    rejections = [r for r in want if type(r) is Rejection]
    assert fast["rows_rejected"] == len(rejections) >= 10
    assert {r.reason for r in rejections} >= {"wrong_field_count", "non_numeric_integer", "bad_label",
                                              "bad_categorical", "empty_line", "undecodable_bytes"}
    assert fast["rejected_by_reason"] == {reason: sum(r.reason == reason for r in rejections)
                                          for reason in fast["rejected_by_reason"]}
    assert not differences(snapshot(str(tmp_path / "fast")), snapshot(str(tmp_path / "rows")))
