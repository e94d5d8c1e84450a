"""Small Taobao files in both layouts, written by the tests, with their exact expected counts.

Alibaba layout (CRLF line ends, headers; the ``user_profile`` header ends with ``new_user_class_level `` and a
trailing space): 13 ``raw_sample`` data lines (an empty one among them), 3 ads (ad 10 with a ``NULL`` brand), 2
profiles (user 2 with empty ``pvalue_level`` and ``new_user_class_level``; user 3 has none), 6 behaviours.

``raw_sample`` rows and what becomes of them (day 1 starts at ``T0``, Beijing time):

* user 1, day 1, pid A: ads 10 and 11 (11 clicked) -> one request of 2 impressions;
* user 1, same time, pid B: ad 12 -> a second request;
* user 2, day 2, pid A: ad 10 clicked, then ad 10 again unclicked -> one impression (clicked), one dead letter
  ``duplicate_impression``;
* user 3, day 3: ad 13, which has no ad_feature row -> ``unknown_ad``;
* user 1, day 8: ad 11 -> the test request (its click history: ad 11 of day 1);
* user 4, day 9 -> ``outside_days``;
* five malformed lines: ``bad_id``, ``bad_label``, ``bad_pid``, ``wrong_field_count``, ``empty_line``.

So 13 in = 5 written (4 train, 1 test; 2 clicks) + 8 rejected. The joined layout has the same impressions with
their features (ad 13 carries its own, so it is written) and one line with a bad time string.
"""

import os

T0 = 1494000000  # 2017-05-06 00:00:00 UTC+8
DAY = 86400
T1, T2, T3, T8, T9 = T0 + 3600, T0 + DAY + 60, T0 + 2 * DAY, T0 + 7 * DAY + 10, T0 + 8 * DAY + 5
A, B = "430548_1007", "430539_1007"

RAW_SAMPLE = [
    f"1,{T1},10,{A},1,0", f"1,{T1},11,{A},0,1", f"1,{T1},12,{B},1,0",
    f"2,{T2},10,{A},0,1", f"2,{T2},10,{A},1,0",
    f"3,{T3},13,{A},1,0",
    f"1,{T8},11,{A},1,0",
    f"4,{T9},10,{A},1,0",
    f"x,{T1},10,{A},1,0", f"5,{T1},10,{A},1,1", f"5,{T1},10,,1,0", f"5,{T1},10,{A},1", "",
]
AD_FEATURE = ["10,100,7,70,NULL,12.5", "11,101,8,80,500,99.0", "12,100,9,90,501,3.25"]
USER_PROFILE = ["1,5,3,1,2,2,3,0,4", "2,6,4,2,3,,2,1,"]
BEHAVIOR_LOG = [f"1,{T1 - 100},pv,101,500", f"1,{T2},cart,100,NULL", f"1,{T8},pv,100,501",
                f"1,{T8 - 1},fav,102,502", f"2,{T1},pv,100,501", f"1,{T2},click,100,501"]
HEADERS = {"raw_sample": "user,time_stamp,adgroup_id,pid,nonclk,clk",
           "ad_feature": "adgroup_id,cate_id,campaign_id,customer,brand,price",
           "user_profile": "userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,shopping_level,"
                           "occupation,new_user_class_level ",
           "behavior_log": "user,time_stamp,btag,cate,brand"}
EXPECTED = {"rows_in": 13, "written": {"train": 4, "valid": 0, "test": 1}, "clicks": {"train": 2, "valid": 0, "test": 0},
            "requests": {"train": 3, "valid": 0, "test": 1},
            "raw_rejected": {"bad_id": 1, "bad_label": 1, "bad_pid": 1, "wrong_field_count": 1, "empty_line": 1},
            "request_rejected": {"duplicate_impression": 1, "unknown_ad": 1, "outside_days": 1}}


def _local(ts):
    import datetime

    return datetime.datetime.fromtimestamp(ts + 8 * 3600, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def joined_lines():
    """The joined layout of the same impressions (the malformed raw lines left out) plus a bad time string."""
    ads = {a.split(",")[0]: a.split(",")[1:] for a in AD_FEATURE}
    ads["13"] = ["103", "1", "2", "", "7.0"]
    profiles = {p.split(",")[0]: p.split(",")[1:] for p in USER_PROFILE}
    out = ["clk,time_stamp,userid,adgroup_id,pid,cate_id,campaign_id,customer,brand,price,cms_segid,cms_group_id,"
           "final_gender_code,age_level,pvalue_level,shopping_level,occupation,new_user_class_level,click_sequence"]
    for line in RAW_SAMPLE[:8]:
        user, ts, ad, pid, _, clk = line.split(",")
        brand = ads[ad][3] if ads[ad][3] != "NULL" else ""
        seq = "11" if (user, int(ts)) == ("1", T8) else ""
        out.append(",".join([clk, _local(int(ts)), user, ad, pid, ads[ad][0], ads[ad][1], ads[ad][2], brand,
                             ads[ad][4], *profiles.get(user, [""] * 8), seq]))
    out.append(f"0,2017-13-01 00:00:00,1,10,{A},100,7,70,,12.5,5,3,1,2,2,3,0,4,")
    return out


def write(root, layout="alibaba", crlf=True):
    """Writes the files under ``root``; returns ``{kind: path}``."""
    eol = "\r\n" if crlf else "\n"
    os.makedirs(root, exist_ok=True)
    kinds = ({"raw_sample": RAW_SAMPLE, "ad_feature": AD_FEATURE, "user_profile": USER_PROFILE,
              "behavior_log": BEHAVIOR_LOG} if layout == "alibaba" else {"joined": None})
    out = {}
    for kind, rows in kinds.items():
        lines = joined_lines() if kind == "joined" else [HEADERS[kind]] + rows
        path = os.path.join(root, f"{kind}.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(eol.join(lines) + eol)
        out[kind] = path
    return out
