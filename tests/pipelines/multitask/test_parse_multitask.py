"""The multi-task CSV parsers: AliExpress and Ali-CCP layouts, header roles, every rejection reason."""

import pytest

from pipelines.multitask.parse import (ALICCP, ALIEXPRESS, REASONS, LayoutError, Row, file_layout, is_header,
                                       layout_from_header, parse_line)
from pipelines.criteo.parse import Rejection
from tests.support.multitask_files import ALICCP_HEADER, ALIEXPRESS_HEADER, aliccp_lines, aliexpress_lines


def _aliexpress():
    layout, has_header = file_layout(ALIEXPRESS, ALIEXPRESS_HEADER.encode() + b"\n", "f.csv")
    assert has_header
    return layout


def test_aliexpress_rows():
    layout = _aliexpress()
    assert layout.schema().dense[0] == "numerical_1" and len(layout.schema().dense) == 63
    assert layout.schema().categorical == tuple(f"categorical_{i}" for i in range(1, 17))
    good, _ = aliexpress_lines()
    rows = [parse_line(line.encode(), layout) for line in good]
    assert all(type(r) is Row for r in rows), rows
    assert [(r.click, r.conversion) for r in rows] == [(0, 0), (1, 0), (1, 1), (0, 0), (1, 1)]
    assert rows[1].categorical[0] == b"2" and rows[1].dense[:2] == [-3.0, -2.5]  # search_id is not a feature
    assert rows[4].categorical[0] == b"" and rows[4].dense[0] is None and rows[4].dense[1] == 1000.0
    assert parse_line((good[0] + "\r\n").encode(), layout) == rows[0]


def test_aliexpress_rejections_have_reasons():
    layout = _aliexpress()
    _, bad = aliexpress_lines()
    for reason, lines in bad.items():
        for line in lines:
            r = parse_line(line.encode(), layout)
            assert type(r) is Rejection and r.reason == reason, (reason, r)
            assert r.reason in REASONS and "\n" not in r.message
    assert parse_line(b"\xff\xfe,1", layout).reason == "undecodable_bytes"


def test_aliexpress_header_handling():
    layout = _aliexpress()
    assert is_header(ALIEXPRESS_HEADER.encode() + b"\r\n", layout)
    assert is_header(b"\xef\xbb\xbf" + ALIEXPRESS_HEADER.encode(), layout)
    good, _ = aliexpress_lines()
    assert not is_header(good[0].encode(), layout)
    # Headerless AliExpress files are read (the layout is fixed); a different header is an error.
    layout2, has_header = file_layout(ALIEXPRESS, good[0].encode(), "g.csv")
    assert not has_header and layout2 == layout
    with pytest.raises(LayoutError, match="not the AliExpress header"):
        file_layout(ALIEXPRESS, ALIEXPRESS_HEADER.replace("numerical_63", "num_63").encode(), "h.csv")


def test_aliccp_roles_from_header():
    layout, has_header = file_layout(ALICCP, ALICCP_HEADER.encode(), "ccp.csv")
    assert has_header
    schema = layout.schema()
    assert schema.dense == ("D109_14", "D127_14")
    assert schema.categorical == ("101", "121", "122", "124", "109_14")
    assert schema.labels == ("click", "conversion")
    good, bad = aliccp_lines()
    rows = [parse_line(line.encode(), layout) for line in good]
    assert all(type(r) is Row for r in rows), rows
    assert rows[0] == Row(0, 0, [0.25, 1.5], [b"5", b"12", b"3", b"7", b"9"])
    assert rows[1].categorical[4] == b"" and rows[2].dense == [-0.01, None]
    assert (rows[2].click, rows[2].conversion) == (1, 1)
    for reason, lines in bad.items():
        for line in lines:
            assert parse_line(line.encode(), layout).reason == reason, (reason, line)


@pytest.mark.parametrize("header, needle", [
    ("101,121,click,purchase", "must start with its header"),
    ("click,conversion,101", "must start with click,purchase"),
    ("click,purchase", "distinct, non-empty"),
    ("click,purchase,101,101", "distinct, non-empty"),
    ("click,purchase,101,,D1", "distinct, non-empty"),
])
def test_aliccp_bad_headers(header, needle):
    with pytest.raises(LayoutError, match=needle):
        file_layout(ALICCP, header.encode(), "x.csv")


def test_layout_json_round_trip():
    layout = layout_from_header(ALICCP, ALICCP_HEADER.split(","), "x")
    assert type(layout).from_json(layout.to_json()) == layout
