"""Parsing and validation of cascade request logs and item tables (the format of ``tfrec.simulation.cascade``).

A line is either a valid record (a dict, returned as parsed) or a :class:`Rejection` with a reason code of
:data:`REASONS` and a one-line message naming the field; the pipeline routes rejections to the dead letter.
"""

from __future__ import annotations

import json
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

#: Reason codes of rejected request lines (and item-table lines: ``bad_json``, ``missing_field``, ``bad_type``).
REASONS: Dict[str, str] = {
    "bad_json": "not UTF-8, not JSON, or not a JSON object",
    "missing_field": "a required field is absent",
    "bad_type": "a field has the wrong type (ids are strings, lists are lists of strings, day an integer >= 0)",
    "empty_list": "retrieved or ranking is empty",
    "duplicate_items": "an item appears twice in retrieved, ranking or exposed",
    "inconsistent_lengths": "ranking_scores is not aligned with ranking, or ranking is longer than retrieved",
    "ranking_not_in_retrieved": "a ranking item is not among the retrieved items",
    "exposure_not_in_ranking": "an exposed item is not in the ranking list",
    "label_on_unexposed": "a clicked item was not exposed",
    "purchase_without_click": "a purchased item was not clicked",
    "unknown_item": "an item is not in the item table",
}

#: The UTF-8 byte order mark some editors and exports put at the start of a file.
BOM = b"\xef\xbb\xbf"
#: The validated item table's file name in a prepared hybrid-sample dataset (lines of :func:`parse_item`'s fields).
ITEMS_FILE = "items.jsonl"

#: Required list fields of a request, in the order they are checked.
LIST_FIELDS = ("retrieved", "ranking", "exposed", "clicks", "purchases")
OPTIONAL_LISTS = ("all_scenario_clicks", "all_scenario_purchases", "click_history")


class Rejection(NamedTuple):
    reason: str
    message: str


def _load(line: bytes) -> Union[dict, Rejection]:
    if line.startswith(BOM):  # a UTF-8 byte order mark opens the file: not part of the first record
        line = line[len(BOM):]
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return Rejection("bad_json", f"cannot parse the line as JSON: {' '.join(str(e).split())}")
    if not isinstance(obj, dict):
        return Rejection("bad_json", f"a line must be a JSON object, got {type(obj).__name__}")
    return obj


def _str_list(obj: dict, key: str) -> Optional[Rejection]:
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        return Rejection("bad_type", f"`{key}` must be a list of strings")
    return None


def parse_request(line: bytes, user_fields: Sequence[str], items: Dict[str, tuple]) -> Union[dict, Rejection]:
    """Parses and validates one request line.

    Args:
      line: the raw line (bytes, without the line break).
      user_fields: required keys of the ``user`` object (string values).
      items: the item table (item id -> features); every item of the request must be in it.

    Returns:
      The record (a dict as in ``tfrec.simulation.cascade``; absent optional lists set to ``[]``), or a
      :class:`Rejection`.
    """
    obj = _load(line)
    if isinstance(obj, Rejection):
        return obj
    for key in ("request_id", "day", "scenario", "user") + LIST_FIELDS:
        if key not in obj:
            return Rejection("missing_field", f"`{key}` is missing")
    for key in ("request_id", "scenario"):
        if not isinstance(obj[key], str) or not obj[key]:
            return Rejection("bad_type", f"`{key}` must be a non-empty string")
    day = obj["day"]
    if isinstance(day, bool) or not isinstance(day, int) or day < 0:
        return Rejection("bad_type", f"`day` must be an integer >= 0. Received: day={day!r}")
    user = obj["user"]
    if not isinstance(user, dict):
        return Rejection("bad_type", "`user` must be an object")
    for key in user_fields:
        if key not in user:
            return Rejection("missing_field", f"`user.{key}` is missing")
        if not isinstance(user[key], str):
            return Rejection("bad_type", f"`user.{key}` must be a string")
    for key in LIST_FIELDS + OPTIONAL_LISTS:
        obj.setdefault(key, [])
        bad = _str_list(obj, key)
        if bad:
            return bad
    retrieved, ranking, exposed = obj["retrieved"], obj["ranking"], obj["exposed"]
    if not retrieved or not ranking:
        return Rejection("empty_list", "`retrieved` and `ranking` must not be empty")
    for key in ("retrieved", "ranking", "exposed", "clicks", "purchases"):
        if len(set(obj[key])) != len(obj[key]):
            return Rejection("duplicate_items", f"`{key}` lists an item twice")
    scores = obj.get("ranking_scores")
    if scores is not None and (not isinstance(scores, list) or len(scores) != len(ranking)):
        return Rejection("inconsistent_lengths", "`ranking_scores` must be a list aligned with `ranking`")
    if scores is not None and any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in scores):
        return Rejection("bad_type", "`ranking_scores` must be a list of numbers")
    if len(ranking) > len(retrieved):
        return Rejection("inconsistent_lengths",
                         f"`ranking` has {len(ranking)} items but `retrieved` only {len(retrieved)}")
    checks: Tuple[Tuple[List[str], set, str, str], ...] = (
        (ranking, set(retrieved), "ranking_not_in_retrieved", "ranking item {} is not in `retrieved`"),
        (exposed, set(ranking), "exposure_not_in_ranking", "exposed item {} is not in `ranking`"),
        (obj["clicks"], set(exposed), "label_on_unexposed", "clicked item {} is not in `exposed`"),
        (obj["purchases"], set(obj["clicks"]), "purchase_without_click", "purchased item {} is not in `clicks`"),
    )
    for values, allowed, reason, message in checks:
        for x in values:
            if x not in allowed:
                return Rejection(reason, message.format(json.dumps(x)))
    for x in retrieved + obj["click_history"]:
        if x not in items:
            return Rejection("unknown_item", f"item {json.dumps(x)} is not in the item table")
    return obj


def parse_item(line: bytes, categorical: Sequence[str], dense: Sequence[str]) -> Union[Tuple[str, tuple], Rejection]:
    """Parses one item-table line into ``(item_id, (categorical values..., dense values...))``.

    ``categorical`` must include ``item_id`` first; categorical values are strings, dense values numbers.
    """
    obj = _load(line)
    if isinstance(obj, Rejection):
        return obj
    values = []
    for key in categorical:
        if key not in obj:
            return Rejection("missing_field", f"`{key}` is missing")
        if not isinstance(obj[key], str):
            return Rejection("bad_type", f"`{key}` must be a string")
        values.append(obj[key])
    for key in dense:
        if key not in obj:
            return Rejection("missing_field", f"`{key}` is missing")
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return Rejection("bad_type", f"`{key}` must be a finite number")
        values.append(float(v))
    return values[0], tuple(values)
