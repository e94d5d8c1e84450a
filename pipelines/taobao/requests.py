"""One user's Taobao impressions -> requests with joined features and the behaviour history before each request
(pure functions, no Beam, no TensorFlow).

Reading of the protocol (HCCP 4.1.1 on the Alibaba display-ad log):

* A request is the impressions of one user at one ``time_stamp`` in one ``pid`` (the ad position, read as the
  scenario): key ``(user, time_stamp, pid)``, or ``(user, time_stamp // w, pid)`` with ``request_window_s = w``.
  Its time stamp ``T`` is its earliest impression's; its day ``1 + (T - day 1's start) // 86400`` in the
  configured local time (Beijing time for the real log).
* Within a request the impressions are ordered by ad id (the log has no display order); a second impression of the
  same ad in one request is a dead letter (``duplicate_impression``), its click merged into the kept one (a click
  on either copy is a click).
* History (``taobao.history``), strictly before ``T``, the ``max_history`` most recent entries, oldest first, each
  ``(ad id, category, brand)``: ``behavior``: the user's ``behavior_log`` rows of the chosen ``btag`` types (no ad
  id: ``""``); ``clicks``: the user's earlier clicked impressions (any pid), category and brand from the ad table;
  ``sequence``: the joined layout's ``click_sequence`` of the request's first row (categories and brands from the
  ad table built from the joined rows; ``""`` for an id never seen as a candidate).
* Split: days in ``train_days`` -> ``train``, except a ``valid_share`` of their requests (a keyed BLAKE2b hash of
  the request id) -> ``valid``; days in ``test_days`` -> ``test``; other days -> dead letter ``outside_days``.
* A user without a profile row gets empty profile values; an impression of an ad without an ``ad_feature`` row is a
  dead letter (``unknown_ad``): DIN and the pre-ranking towers need its category.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Dict, List, Optional, Sequence, Tuple

from pipelines.criteo.parse import Rejection
from pipelines.hybrid_samples import encode
from pipelines.taobao.parse import DUPLICATE_IMPRESSION, OUTSIDE_DAYS, Ad, Behavior, Impression, Profile
from tfrec.config_taobao import PROFILE_FIELDS

UNKNOWN_AD = "unknown_ad"
EMPTY_PROFILE = ("",) * len(PROFILE_FIELDS)
#: The context fields of a request (``user_segment`` is ``cms_group_id``, the profile's user group).
USER_FIELDS = ("user_id", "user_segment") + PROFILE_FIELDS
HISTORY_FIELDS = ("click_history", "click_history_category", "click_history_brand")
ITEM_FIELDS = ("item_id", "category", "brand", "campaign_id", "customer")


class Splitter:
    """The day and split of a request (module docstring)."""

    def __init__(self, first_unix: int, train_days: Sequence[int], test_days: Sequence[int], valid_share: float,
                 salt: str):
        self.first_unix = int(first_unix)
        self.train, self.test = set(train_days), set(test_days)
        self.t_valid = int(valid_share * 2.0 ** 64)
        self.key = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()

    def day(self, ts: int) -> int:
        return (int(ts) - self.first_unix) // 86400 + 1

    def hash(self, request_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(request_id.encode("utf-8"), digest_size=8, key=self.key).digest(),
                              "little")

    def split(self, day: int, h: int) -> Optional[str]:
        if day in self.train:
            return "valid" if h < self.t_valid else "train"
        return "test" if day in self.test else None


class History:
    """A user's time-ordered history entries; :meth:`before` gives the last ``n`` strictly before a time."""

    def __init__(self, entries: List[Tuple[int, str, str, str]]):
        entries = sorted(entries)
        self.times = [e[0] for e in entries]
        self.entries = [e[1:] for e in entries]

    def before(self, ts: int, n: int) -> List[Tuple[str, str, str]]:
        k = bisect.bisect_left(self.times, ts)
        return self.entries[max(0, k - n):k] if n else []


def _ad_parts(ad: Optional[Ad]) -> Tuple[str, str]:
    return (ad.cate_id, ad.brand) if ad is not None else ("", "")


def history_entries(source: str, impressions: Sequence[Tuple[Impression, tuple]], behaviors: Sequence[Behavior],
                    ads: Dict[str, Ad], btags: Sequence[str]) -> Optional[History]:
    """The user's :class:`History` for ``behavior`` or ``clicks`` (None for ``sequence``, read per request)."""
    if source == "behavior":
        keep = set(btags)
        return History([(b.time_stamp, "", b.cate, b.brand) for b in behaviors if b.btag in keep])
    if source == "clicks":
        return History([(imp.time_stamp, imp.adgroup_id, *_ad_parts(ads.get(imp.adgroup_id)))
                        for imp, _ in impressions if imp.clk])
    return None


def user_requests(user: str, impressions: Sequence[Tuple[Impression, tuple]], profile: Optional[Profile],
                  behaviors: Sequence[Behavior], ads: Dict[str, Ad], splitter: Splitter, source: str,
                  btags: Sequence[str], max_history: int, window_s: int = 0):
    """The requests of one user, and the rejected impressions.

    Args:
      user: the user id.
      impressions: ``(Impression, click_sequence)`` pairs (``click_sequence`` ``()`` outside the joined layout).
      profile: the user's profile, or None.
      behaviors: the user's behaviour rows (``source == "behavior"``).
      ads: ad id -> :class:`Ad`.
      splitter: days and splits.
      source: ``behavior``, ``clicks`` or ``sequence`` (module docstring).
      btags / max_history / window_s: the history's behaviour types and length; the request window.

    Returns:
      ``(requests, rejections)``: ``requests`` are dicts (``request_id``, ``split``, ``day``, ``time_stamp``,
      ``scenario``, ``user`` (:data:`USER_FIELDS` -> value), the :data:`HISTORY_FIELDS` lists, ``items``: ``[[ad id,
      clk], ...]`` ordered by ad id); ``rejections`` are ``(Impression, Rejection)`` pairs.
    """
    values = profile.values if profile is not None else EMPTY_PROFILE
    context = dict(zip(USER_FIELDS, (user, values[1]) + tuple(values)))
    history = history_entries(source, impressions, behaviors, ads, btags)
    groups: Dict[tuple, list] = {}
    for imp, seq in sorted(impressions, key=lambda x: (x[0].time_stamp, x[0].pid, x[0].adgroup_id, x[0].clk)):
        key = (imp.time_stamp // window_s if window_s else imp.time_stamp, imp.pid)
        groups.setdefault(key, []).append((imp, seq))
    requests, rejected = [], []
    for (_, pid), rows in groups.items():
        t = rows[0][0].time_stamp
        day = splitter.day(t)
        request_id = f"{user}_{t}_{pid}"
        h = splitter.hash(request_id)
        split = splitter.split(day, h)
        if split is None:
            rejected += [(imp, Rejection(OUTSIDE_DAYS, f"day {day} is neither a train nor a test day"))
                         for imp, _ in rows]
            continue
        items: Dict[str, int] = {}
        for imp, _ in rows:
            if imp.adgroup_id not in ads:
                rejected.append((imp, Rejection(UNKNOWN_AD, f"ad {imp.adgroup_id} has no ad_feature row")))
            elif imp.adgroup_id in items:
                items[imp.adgroup_id] = max(items[imp.adgroup_id], imp.clk)
                rejected.append((imp, Rejection(DUPLICATE_IMPRESSION,
                                                f"ad {imp.adgroup_id} shown twice in request {request_id}")))
            else:
                items[imp.adgroup_id] = imp.clk
        if not items:
            continue
        if history is None:
            ids = list(rows[0][1])[-max_history:] if max_history else []
            entries = [(x, *_ad_parts(ads.get(x))) for x in ids]
        else:
            entries = history.before(t, max_history)
        req = {"request_id": request_id, "split": split, "day": day, "time_stamp": t, "scenario": pid,
               "user": context, "items": [[a, c] for a, c in sorted(items.items())]}
        for k, name in enumerate(HISTORY_FIELDS):
            req[name] = [e[k] for e in entries]
        requests.append(req)
    return requests, rejected


def item_values(ad: Ad) -> Tuple[str, str, str, str, str, float]:
    """An ad's :data:`ITEM_FIELDS` values and its price (the item table's and the examples' item features)."""
    return (ad.adgroup_id, ad.cate_id, ad.brand, ad.campaign_id, ad.customer, ad.price)


class ExampleEncoder:
    """Point-wise DIN examples (``tf.train.Example`` bytes, one per impression), encoded with
    :mod:`pipelines.hybrid_samples.encode` (deterministic bytes, entries in key order; item entries cached).

    Features: ``request_id``, ``scenario``, :data:`USER_FIELDS`, :data:`ITEM_FIELDS` (bytes, one value), ``price``
    (float), ``day`` and ``time_stamp`` (int64), :data:`HISTORY_FIELDS` (bytes, any number) and ``label`` (float,
    the click). The parse spec is ``tfrec.data_taobao.din_feature_spec``.
    """

    def __init__(self):
        self._items: Dict[str, List[Tuple[str, bytes]]] = {}

    def item(self, ad: Ad) -> List[Tuple[str, bytes]]:
        e = self._items.get(ad.adgroup_id)
        if e is None:
            v = item_values(ad)
            e = [(k, encode.map_entry(k, encode.bytes_feature([x.encode("utf-8")]))) for k, x in zip(ITEM_FIELDS, v)]
            e.append(("price", encode.map_entry("price", encode.float_feature([v[5]]))))
            self._items[ad.adgroup_id] = e
        return e

    @staticmethod
    def context(req: dict) -> List[Tuple[str, bytes]]:
        values = {"request_id": req["request_id"], "scenario": req["scenario"], **req["user"]}
        out = [(k, encode.map_entry(k, encode.bytes_feature([v.encode("utf-8")]))) for k, v in values.items()]
        out += [(k, encode.map_entry(k, encode.int64_feature([int(req[k])]))) for k in ("day", "time_stamp")]
        out += [(k, encode.map_entry(k, encode.bytes_feature([x.encode("utf-8") for x in req[k]])))
                for k in HISTORY_FIELDS]
        return out

    def examples(self, req: dict, ads: Dict[str, Ad]) -> List[bytes]:
        """The request's examples, in its item order."""
        context = self.context(req)
        out = []
        for ad_id, clk in req["items"]:
            entries = context + self.item(ads[ad_id])
            entries.append(("label", encode.map_entry("label", encode.float_feature([float(clk)]))))
            out.append(encode.example([e for _, e in sorted(entries, key=lambda kv: kv[0])]))
        return out
