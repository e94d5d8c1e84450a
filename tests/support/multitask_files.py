"""Hand-written AliExpress and Ali-CCP files in their exact layouts, with one malformed row per reason."""

from tfrec.features import ALIEXPRESS_COLUMNS

ALIEXPRESS_HEADER = ",".join(ALIEXPRESS_COLUMNS)
ALICCP_HEADER = "click,purchase,101,121,122,D109_14,124,109_14,D127_14"


def aliexpress_row(search_id=1, cat=None, num=None, click="1", conversion="0"):
    """One AliExpress line: search_id, categorical_1..16, numerical_1..63, click, conversion."""
    cat = cat if cat is not None else [str(i + search_id % 3) for i in range(16)]
    num = num if num is not None else [f"{0.5 * i - 3:.2f}" for i in range(63)]
    return ",".join([str(search_id), *cat, *num, click, conversion])


def aliexpress_lines():
    """``(good lines, {reason: bad lines})``; the good lines cover every (click, conversion) kind."""
    good = [aliexpress_row(1, click="0", conversion="0"), aliexpress_row(2, click="1", conversion="0"),
            aliexpress_row(3, click="1", conversion="1"), aliexpress_row(4, click="0.0", conversion="0.0"),
            aliexpress_row(5, cat=[""] + ["7"] * 15, num=[""] + ["1e3"] * 62, click="1", conversion="1")]
    bad = {
        "wrong_field_count": [aliexpress_row(6)[:-2], aliexpress_row(7) + ",1"],
        "non_numeric": [aliexpress_row(8, num=["abc"] + ["0"] * 62), aliexpress_row(9, num=["inf"] + ["0"] * 62)],
        "bad_label": [aliexpress_row(10, click="2"), aliexpress_row(11, conversion="yes")],
        "conversion_without_click": [aliexpress_row(12, click="0", conversion="1")],
        "empty_line": ["   "],
    }
    return good, bad


def aliccp_lines():
    """``(good lines, {reason: bad lines})`` in the Ali-CCP layout of :data:`ALICCP_HEADER`."""
    good = ["0,0,5,12,3,0.25,7,9,1.5", "1,0,6,12,4,0.5,7,,2", "1,1,5,13,3,-1e-2,8,9,", "0,0,,,,,,,"]
    bad = {
        "wrong_field_count": ["1,0,5,12,3,0.25,7,9", "1,0,5,12,3,0.25,7,9,1.5,4"],
        "non_numeric": ["0,0,5,12,3,zero,7,9,1.5"],
        "bad_label": ["-1,0,5,12,3,0.25,7,9,1.5"],
        "conversion_without_click": ["0,1,5,12,3,0.25,7,9,1.5"],
    }
    return good, bad


def write(path, lines, header=None):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in ([header] if header else []) + list(lines)))
    return str(path)


#: Funnel columns kept for an Ali-CCP-layout copy (numeric feature-id column names, as Ali-CCP has them).
ALICCP_COPY = {"click": "click", "conversion": "purchase", "categorical_1": "101", "categorical_2": "205",
               "categorical_3": "121", "categorical_4": "206", "numerical_1": "D101_1", "numerical_5": "D205_1"}


def prepare_aliccp_funnel(root, rows=2400, seed=3, click_rate=0.25):
    """Simulates a funnel (``tfrec simulate --kind funnel``), copies a few of its columns into the Ali-CCP layout
    (:data:`ALICCP_COPY`) and prepares it with ``tfrec prepare --format aliccp``; returns the dataset directory.
    ``click_rate``: the funnel's click rate (``simulation.funnel.click_rate``)."""
    import os

    from tfrec.cli import main

    raw, data = os.path.join(root, "raw", "aliexpress.csv"), os.path.join(root, "data")
    assert main(["simulate", "--kind", "funnel", "--out", raw, "--rows", str(rows), "--seed", str(seed),
                 "--noisy-click-share", "0.3", "--set", "simulation.funnel.users=200",
                 "--set", "simulation.funnel.items=50", "--set", f"simulation.funnel.click_rate={click_rate}",
                 "--set", "simulation.funnel.conversion_rate=0.3"]) == 0
    with open(raw) as f:
        header = f.readline().rstrip("\n").split(",")
        keep = [header.index(c) for c in ALICCP_COPY]
        lines = [",".join(ALICCP_COPY[header[i]] for i in keep)]
        lines += [",".join(fields[i] for i in keep) for fields in (line.rstrip("\n").split(",") for line in f)]
    narrow = os.path.join(root, "raw", "aliccp.csv")
    with open(narrow, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert main(["prepare", "--input", narrow, "--out", data, "--format", "aliccp", "--min-count", "2",
                 "--beta-pos", "0.5", "--runner", "DirectRunner"]) == 0
    return data
