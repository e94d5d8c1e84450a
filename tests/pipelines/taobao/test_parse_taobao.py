"""The Taobao readers without Beam: every layout's parser (typed records, NULL brand, empty profile values, CRLF,
each rejection reason), the header checks (the trailing-space column name), and one user's requests: grouping,
duplicates, days and splits, and the history strictly before each request from each source."""

import pytest

from pipelines.criteo.parse import InputError, Rejection
from pipelines.taobao import parse as P
from pipelines.taobao.requests import ExampleEncoder, Splitter, user_requests

from tests.support import taobao_files as F


def test_parsers_return_typed_records():
    assert P.parse_raw_sample(b"1,1494000000,10,430548_1007,0,1\r") == P.Impression("1", 1494000000, "10",
                                                                                  "430548_1007", 1)
    assert P.parse_ad(b"10,100,7,70,NULL,12.5") == P.Ad("10", "100", "7", "70", "", 12.5)
    assert P.parse_profile(b"2,6,4,2,3,,2,1,") == P.Profile("2", ("6", "4", "2", "3", "", "2", "1", ""))
    assert P.parse_behavior(b"1,1494000000,cart,100,NULL") == P.Behavior("1", 1494000000, "cart", "100", "")
    row = P.parse_joined(b"1,2017-05-06 01:00:00,1,11,430548_1007,101,8,80,500,99,5,3,1,2,2,3,0,4,7^9", 8)
    assert row.impression == P.Impression("1", F.T1, "11", "430548_1007", 1)
    assert row.ad == P.Ad("11", "101", "8", "80", "500", 99.0) and row.click_sequence == ("7", "9")
    assert P.parse_joined(b"0,1494003600,1,11,p,101,8,80,,1,,,,,,,,,", 8).impression.time_stamp == F.T1
    assert P.parse_joined(b"0,1494003600,1,11,p,101,8,80,,1,,,,,,,,,", 8).ad.brand == ""


@pytest.mark.parametrize("parse,line,reason", [
    (P.parse_raw_sample, b"", P.EMPTY_LINE),
    (P.parse_raw_sample, b"1,2,\xff,p,1,0", P.UNDECODABLE_BYTES),
    (P.parse_raw_sample, b"1,2,3,p,1", P.WRONG_FIELD_COUNT),
    (P.parse_raw_sample, b"u1,2,3,p,1,0", P.BAD_ID),
    (P.parse_raw_sample, b"1,-2,3,p,1,0", P.BAD_TIME_STAMP),
    (P.parse_raw_sample, b"1,2,3,,1,0", P.BAD_PID),
    (P.parse_raw_sample, b"1,2,3,p,1,1", P.BAD_LABEL),
    (P.parse_raw_sample, b"1,2,3,p,0,2", P.BAD_LABEL),
    (P.parse_ad, b"10,100,7,70,NULL,cheap", P.BAD_PRICE),
    (P.parse_ad, b"10,100,7,70,NULL,-1", P.BAD_PRICE),
    (P.parse_ad, b"10,100,7,70,brandX,1", P.BAD_ID),
    (P.parse_profile, b"1,5,3,1,2,2,3,0,high", P.BAD_PROFILE_VALUE),
    (P.parse_behavior, b"1,2,click,100,501", P.BAD_BTAG),
    (P.parse_joined, b"2,2017-05-06 00:00:00,1,11,p,101,8,80,500,99,5,3,1,2,2,3,0,4,", P.BAD_LABEL),
    (P.parse_joined, b"1,2017-13-06 00:00:00,1,11,p,101,8,80,500,99,5,3,1,2,2,3,0,4,", P.BAD_TIME_STAMP),
    (P.parse_joined, b"1,2017-05-06 00:00:00,1,11,p,101,8,80,500,99,5,3,1,2,2,3,0,4,7^x", P.BAD_ID),
])
def test_rejections(parse, line, reason):
    out = parse(line)
    assert isinstance(out, Rejection) and out.reason == reason and reason in P.REASONS


def test_headers():
    profile = F.HEADERS["user_profile"].encode() + b"\r\n"
    assert profile.endswith(b"new_user_class_level \r\n")  # the real file's trailing space
    assert P.check_header(profile, "user_profile", "user_profile.csv")
    assert P.check_header(b"\xef\xbb\xbf" + F.HEADERS["raw_sample"].encode(), "raw_sample", "r.csv")
    assert not P.check_header(b"1,1494000000,10,p,0,1", "raw_sample", "r.csv")  # a file without a header
    with pytest.raises(InputError, match="not the raw_sample layout"):
        P.check_header(b"user,time_stamp,adgroup_id,pid,clk,nonclk", "raw_sample", "r.csv")


def _splitter(valid_share=0.0):
    return Splitter(F.T0, range(1, 8), [8], valid_share, "tfrec")


def _impressions():
    rows = [P.parse_raw_sample(line.encode()) for line in F.RAW_SAMPLE]
    return [r for r in rows if not isinstance(r, Rejection)]


ADS = {a.adgroup_id: a for a in (P.parse_ad(x.encode()) for x in F.AD_FEATURE)}
BEHAVIORS = [b for b in (P.parse_behavior(x.encode()) for x in F.BEHAVIOR_LOG) if not isinstance(b, Rejection)]


def _requests(user, source="behavior", max_history=50, window=0):
    imps = [(i, ()) for i in _impressions() if i.user == user]
    beh = [b for b in BEHAVIORS if b.user == user]
    return user_requests(user, imps, None, beh, ADS, _splitter(), source, ["pv", "cart", "fav", "buy"],
                         max_history, window)


def test_requests_group_by_time_and_pid_with_the_history_strictly_before():
    reqs, rejected = _requests("1")
    assert not rejected
    assert [(r["split"], r["day"], r["scenario"], r["items"]) for r in reqs] == [
        ("train", 1, F.B, [["12", 0]]), ("train", 1, F.A, [["10", 0], ["11", 1]]), ("test", 8, F.A, [["11", 0]])]
    assert reqs[1]["click_history_category"] == ["101"] and reqs[1]["click_history_brand"] == ["500"]
    # day 8: the behaviours before T8 (the one at T8 itself is not before it), oldest first, NULL brand as ""
    assert reqs[2]["click_history_category"] == ["101", "100", "102"]
    assert reqs[2]["click_history_brand"] == ["500", "", "502"] and reqs[2]["click_history"] == ["", "", ""]
    assert _requests("1", max_history=2)[0][2]["click_history_category"] == ["100", "102"]  # the most recent
    clicks = _requests("1", source="clicks")[0]
    assert clicks[1]["click_history"] == [] and clicks[2]["click_history"] == ["11"]
    assert clicks[2]["click_history_category"] == ["101"] and clicks[2]["click_history_brand"] == ["500"]
    assert reqs[1]["user"]["user_id"] == "1" and reqs[1]["user"]["pvalue_level"] == ""  # no profile given
    assert len(_requests("1", window=86400)[0]) == 3  # same day, two pids: still two day-1 requests


def test_request_stage_rejections():
    reqs, rejected = _requests("2")
    assert reqs[0]["items"] == [["10", 1]]  # the click of either copy is kept
    assert [r.reason for _, r in rejected] == ["duplicate_impression"]
    assert [r.reason for _, r in _requests("3")[1]] == ["unknown_ad"]
    assert [r.reason for _, r in _requests("4")[1]] == ["outside_days"]


def test_valid_share_and_days():
    s = _splitter(valid_share=0.5)
    splits = [s.split(3, s.hash(f"r{i}")) for i in range(400)]
    assert 150 < splits.count("valid") < 250 and set(splits) == {"train", "valid"}
    assert s.split(8, 0) == "test" and s.split(9, 0) is None and s.day(F.T0) == 1 and s.day(F.T0 - 1) == 0


def test_examples_carry_context_item_history_and_label():
    import tensorflow as tf

    from tfrec.data_taobao import din_feature_spec

    reqs, _ = _requests("1")
    examples = ExampleEncoder().examples(reqs[1], ADS)
    parsed = tf.io.parse_example(examples, din_feature_spec())
    assert parsed["item_id"].numpy().tolist() == [b"10", b"11"] and parsed["label"].numpy().tolist() == [0, 1]
    assert parsed["brand"].numpy().tolist() == [b"", b"500"] and parsed["price"].numpy().tolist() == [12.5, 99.0]
    assert tf.sparse.to_dense(parsed["click_history_category"]).numpy().tolist() == [[b"101"], [b"101"]]
    assert parsed["scenario"].numpy()[0] == F.A.encode() and parsed["day"].numpy().tolist() == [1, 1]
    again = ExampleEncoder().examples(reqs[1], ADS)
    assert again == examples  # deterministic bytes
