r"""Pure-Python parsing of the public Taobao display-ad files (no Beam, no TensorFlow).

Two layouts (comma-separated, UTF-8, ``\n`` or ``\r\n`` line ends, a header line or none):

* the four Alibaba files (https://tianchi.aliyun.com/dataset/dataDetail?dataId=56):

  - ``raw_sample.csv`` (:data:`RAW_SAMPLE`): ``user,time_stamp,adgroup_id,pid,nonclk,clk``; ``time_stamp`` in Unix
    seconds; ``nonclk + clk == 1``;
  - ``ad_feature.csv`` (:data:`AD_FEATURE`): ``adgroup_id,cate_id,campaign_id,customer,brand,price``; ``brand``
    may be ``NULL``;
  - ``user_profile.csv`` (:data:`USER_PROFILE`): ``userid,cms_segid,cms_group_id,final_gender_code,age_level,
    pvalue_level,shopping_level,occupation,new_user_class_level`` (the real header has a trailing space after the
    last name: names are compared stripped); every profile value may be empty;
  - ``behavior_log.csv`` (:data:`BEHAVIOR_LOG`): ``user,time_stamp,btag,cate,brand``; ``btag`` one of ``pv``,
    ``cart``, ``fav``, ``buy``; ``brand`` may be ``NULL``;

* the pre-joined layout (FuxiCTR's, :data:`JOINED`): ``clk,time_stamp,userid,adgroup_id,pid,cate_id,campaign_id,
  customer,brand,price,<the 8 profile fields>,click_sequence`` with ``time_stamp`` as ``YYYY-MM-DD HH:MM:SS``
  (local time, see :func:`parse_local_time`) and ``click_sequence`` ``^``-separated ids of the user's earlier
  clicked ads (may be empty).

Values are kept raw, as strings (ids are checked to be non-negative integers; the pipelines never renumber
them). A missing value (``NULL`` brand, empty profile field) is ``""``. Every parser returns a typed record or a
:class:`Rejection` with a stable reason code of :data:`REASONS`; a header line is recognised by
:func:`is_header` and checked once per file by :func:`check_header`, which stops the run on a header that is not
the layout's (a one-line :class:`pipelines.criteo.parse.InputError`) instead of rejecting every row.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Dict, NamedTuple, Optional, Tuple, Union

from pipelines.criteo.parse import BOM, InputError, Rejection, strip_eol
from tfrec.config_taobao import BTAGS, PROFILE_FIELDS

RAW_SAMPLE = ("user", "time_stamp", "adgroup_id", "pid", "nonclk", "clk")
AD_FEATURE = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price")
USER_PROFILE = ("userid",) + PROFILE_FIELDS
BEHAVIOR_LOG = ("user", "time_stamp", "btag", "cate", "brand")
JOINED = ("clk", "time_stamp", "userid", "adgroup_id", "pid", "cate_id", "campaign_id", "customer", "brand", "price",
          *PROFILE_FIELDS, "click_sequence")
LAYOUTS: Dict[str, Tuple[str, ...]] = {"raw_sample": RAW_SAMPLE, "ad_feature": AD_FEATURE,
                                       "user_profile": USER_PROFILE, "behavior_log": BEHAVIOR_LOG, "joined": JOINED}

EMPTY_LINE = "empty_line"
UNDECODABLE_BYTES = "undecodable_bytes"
WRONG_FIELD_COUNT = "wrong_field_count"
BAD_ID = "bad_id"
BAD_TIME_STAMP = "bad_time_stamp"
BAD_LABEL = "bad_label"
BAD_PID = "bad_pid"
BAD_PRICE = "bad_price"
BAD_BTAG = "bad_btag"
BAD_PROFILE_VALUE = "bad_profile_value"
#: Request-stage reasons (``pipelines.taobao.requests``): a day outside the train and test days, and a repeated
#: impression of the same ad in one request.
OUTSIDE_DAYS = "outside_days"
DUPLICATE_IMPRESSION = "duplicate_impression"
REASONS = (EMPTY_LINE, UNDECODABLE_BYTES, WRONG_FIELD_COUNT, BAD_ID, BAD_TIME_STAMP, BAD_LABEL, BAD_PID, BAD_PRICE,
           BAD_BTAG, BAD_PROFILE_VALUE, OUTSIDE_DAYS, DUPLICATE_IMPRESSION)
NULL = "NULL"


class Impression(NamedTuple):
    """One ``raw_sample`` row (or the impression part of a joined row). ``clk`` is 0 or 1."""

    user: str
    time_stamp: int
    adgroup_id: str
    pid: str
    clk: int


class Ad(NamedTuple):
    """One ``ad_feature`` row; ``brand`` is ``""`` for ``NULL``."""

    adgroup_id: str
    cate_id: str
    campaign_id: str
    customer: str
    brand: str
    price: float


class Profile(NamedTuple):
    """One ``user_profile`` row: the user id and the 8 profile values (``""`` when empty), in
    :data:`tfrec.config_taobao.PROFILE_FIELDS` order."""

    userid: str
    values: Tuple[str, ...]


class Behavior(NamedTuple):
    """One ``behavior_log`` row; ``brand`` is ``""`` for ``NULL``."""

    user: str
    time_stamp: int
    btag: str
    cate: str
    brand: str


class JoinedRow(NamedTuple):
    """One pre-joined row: its impression, ad, profile and ``click_sequence`` (ids, oldest first)."""

    impression: Impression
    ad: Ad
    profile: Profile
    click_sequence: Tuple[str, ...]


Parsed = Union[Impression, Ad, Profile, Behavior, JoinedRow, Rejection]


def _fields(raw: bytes, n: int):
    """The ``n`` stripped text fields of a line, or a Rejection."""
    if not raw.strip():
        return Rejection(EMPTY_LINE, "empty line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Rejection(UNDECODABLE_BYTES, f"not UTF-8 at byte {e.start}")
    parts = text.split(",")
    if len(parts) != n:
        return Rejection(WRONG_FIELD_COUNT, f"{len(parts)} fields, expected {n}")
    return [p.strip() for p in parts]


def _id(value: str, name: str) -> Optional[Rejection]:
    if not value.isdigit() or not value.isascii():
        return Rejection(BAD_ID, f"`{name}` must be a non-negative integer id; got {value[:40]!r}")
    return None


def _brand(value: str) -> Union[str, Rejection]:
    if value in (NULL, ""):
        return ""
    return _id(value, "brand") or value


def _time(value: str) -> Union[int, Rejection]:
    if not value.isdigit() or not value.isascii():
        return Rejection(BAD_TIME_STAMP, f"`time_stamp` must be Unix seconds; got {value[:40]!r}")
    return int(value)


def _price(value: str) -> Union[float, Rejection]:
    try:
        price = float(value)
    except ValueError:
        return Rejection(BAD_PRICE, f"`price` must be a number; got {value[:40]!r}")
    if not price >= 0.0 or price == float("inf"):
        return Rejection(BAD_PRICE, f"`price` must be finite and >= 0; got {value[:40]!r}")
    return price


def _profile(user: str, values) -> Union[Profile, Rejection]:
    for name, v in zip(PROFILE_FIELDS, values):
        if v and (not v.isdigit() or not v.isascii()):
            return Rejection(BAD_PROFILE_VALUE, f"`{name}` must be an integer or empty; got {v[:40]!r}")
    return Profile(user, tuple(values))


def _ad(f) -> Union[Ad, Rejection]:
    for name, v in zip(("adgroup_id", "cate_id", "campaign_id", "customer"), f[:4]):
        bad = _id(v, name)
        if bad:
            return bad
    brand = _brand(f[4])
    if isinstance(brand, Rejection):
        return brand
    price = _price(f[5])
    if isinstance(price, Rejection):
        return price
    return Ad(f[0], f[1], f[2], f[3], brand, price)


def parse_raw_sample(raw: bytes) -> Union[Impression, Rejection]:
    """A ``raw_sample`` line (without its line break) -> :class:`Impression` or :class:`Rejection`."""
    f = _fields(raw, len(RAW_SAMPLE))
    if isinstance(f, Rejection):
        return f
    user, ts, ad, pid, nonclk, clk = f
    bad = _id(user, "user") or _id(ad, "adgroup_id")
    if bad:
        return bad
    t = _time(ts)
    if isinstance(t, Rejection):
        return t
    if not pid:
        return Rejection(BAD_PID, "`pid` is empty")
    if (nonclk, clk) not in (("0", "1"), ("1", "0")):
        return Rejection(BAD_LABEL, f"`nonclk,clk` must be 1,0 or 0,1; got {nonclk[:10]},{clk[:10]}")
    return Impression(user, t, ad, pid, int(clk))


def parse_ad(raw: bytes) -> Union[Ad, Rejection]:
    """An ``ad_feature`` line -> :class:`Ad` or :class:`Rejection`."""
    f = _fields(raw, len(AD_FEATURE))
    return f if isinstance(f, Rejection) else _ad(f)


def parse_profile(raw: bytes) -> Union[Profile, Rejection]:
    """A ``user_profile`` line -> :class:`Profile` or :class:`Rejection`."""
    f = _fields(raw, len(USER_PROFILE))
    if isinstance(f, Rejection):
        return f
    return _id(f[0], "userid") or _profile(f[0], f[1:])


def parse_behavior(raw: bytes) -> Union[Behavior, Rejection]:
    """A ``behavior_log`` line -> :class:`Behavior` or :class:`Rejection`."""
    f = _fields(raw, len(BEHAVIOR_LOG))
    if isinstance(f, Rejection):
        return f
    user, ts, btag, cate, brand = f
    bad = _id(user, "user") or _id(cate, "cate")
    if bad:
        return bad
    t = _time(ts)
    if isinstance(t, Rejection):
        return t
    if btag not in BTAGS:
        return Rejection(BAD_BTAG, f"`btag` must be one of {', '.join(BTAGS)}; got {btag[:20]!r}")
    b = _brand(brand)
    return b if isinstance(b, Rejection) else Behavior(user, t, btag, cate, b)


def parse_local_time(value: str, utc_offset_hours: int) -> Union[int, Rejection]:
    """``YYYY-MM-DD HH:MM:SS`` in local time (UTC + ``utc_offset_hours``) -> Unix seconds; Unix seconds pass."""
    if value.isdigit() and value.isascii():
        return int(value)
    try:
        t = datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return Rejection(BAD_TIME_STAMP, f"`time_stamp` must be YYYY-MM-DD HH:MM:SS; got {value[:40]!r}")
    return calendar.timegm(t.timetuple()) - 3600 * int(utc_offset_hours)


def parse_joined(raw: bytes, utc_offset_hours: int = 8) -> Union[JoinedRow, Rejection]:
    """A pre-joined line -> :class:`JoinedRow` or :class:`Rejection`."""
    f = _fields(raw, len(JOINED))
    if isinstance(f, Rejection):
        return f
    clk, ts, user, ad_id, pid = f[:5]
    if clk not in ("0", "1"):
        return Rejection(BAD_LABEL, f"`clk` must be 0 or 1; got {clk[:10]!r}")
    bad = _id(user, "userid")
    if bad:
        return bad
    t = parse_local_time(ts, utc_offset_hours)
    if isinstance(t, Rejection):
        return t
    if not pid:
        return Rejection(BAD_PID, "`pid` is empty")
    ad = _ad([ad_id] + f[5:10])
    if isinstance(ad, Rejection):
        return ad
    profile = _profile(user, f[10:18])
    if isinstance(profile, Rejection):
        return profile
    sequence = tuple(x for x in f[18].split("^") if x)
    for x in sequence:
        bad = _id(x, "click_sequence")
        if bad:
            return bad
    return JoinedRow(Impression(user, t, ad_id, pid, int(clk)), ad, profile, sequence)


PARSERS = {"raw_sample": parse_raw_sample, "ad_feature": parse_ad, "user_profile": parse_profile,
           "behavior_log": parse_behavior, "joined": parse_joined}


def header_names(line: bytes) -> Tuple[str, ...]:
    """The stripped column names of a header line (a UTF-8 BOM and the line break removed)."""
    if line.startswith(BOM):
        line = line[len(BOM):]
    return tuple(x.strip() for x in strip_eol(line).decode("utf-8", errors="replace").split(","))


def is_header(line: bytes, kind: str) -> bool:
    """True for a header line of a ``kind`` file: its first field is the layout's first column name."""
    first = LAYOUTS[kind][0].encode()
    if line.startswith(BOM):
        line = line[len(BOM):]
    return line.split(b",", 1)[0].strip() == first


def check_header(first_line: bytes, kind: str, path: str) -> bool:
    """Checks the first line of a ``kind`` file; returns whether it is a header.

    Raises:
      InputError: a header whose (stripped) names are not the layout's, in order.
    """
    if not is_header(first_line, kind):
        return False
    names = header_names(first_line)
    if names != LAYOUTS[kind]:
        raise InputError(f"taobao: {path}: header {','.join(names)} is not the {kind} layout "
                         f"{','.join(LAYOUTS[kind])}")
    return True
