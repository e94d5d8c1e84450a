"""Config sections of the Taobao display-ad protocol (HCCP Table 2): the simulator, the Beam pipelines, DIN.

Sections of :class:`tfrec.config.RunConfig` (so ``--set taobao.max_history=20`` works like any other key):

* ``taobao_sim`` (:class:`TaobaoSimConfig`): ``tfrec.simulation.taobao``, both file layouts at any size;
* ``taobao`` (:class:`TaobaoConfig`): ``pipelines.taobao`` (raw files -> requests and DIN examples -> lists);
* ``din`` (:class:`DinConfig`): ``tfrec.models.din`` and its training (``tfrec.train_din``).

Like every section, their fields carry their types and constraints (pydantic metadata, :mod:`tfrec.config.base`);
``rules`` holds the checks that read several fields. ``tfrec.config_taobao`` re-exports them.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Annotated, List, Literal

from pydantic import Field

from tfrec.config.base import CONFIG, Section, check
from tfrec.config.sections import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

#: The Alibaba display-ad log: 8 days from 2017-05-06, Unix seconds in Beijing time (UTC+8) day boundaries.
FIRST_DAY = "2017-05-06"
PROFILE_FIELDS = ("cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level", "shopping_level",
                  "occupation", "new_user_class_level")
BTAGS = ("pv", "cart", "fav", "buy")
HISTORY_SOURCES = ("auto", "behavior", "clicks", "sequence")
LAYOUTS = ("alibaba", "joined", "both")
#: A rate in [0, 1).
Rate = Annotated[float, Field(ge=0, lt=1)]
#: A non-empty list of sizes > 0.
Sizes = Annotated[List[PositiveInt], Field(min_length=1)]


@dataclasses.dataclass
class TaobaoSimConfig(Section):
    """The Taobao display-ad simulator (``tfrec.simulation.taobao``).

    Attributes:
      impressions: rows of ``raw_sample.csv`` (exactly this many; the pre-joined file has the same rows).
      users / ads / categories / brands / campaigns / customers: sizes of the simulated world.
      days: days of the log (the real one has 8).
      max_per_request: impressions per request, uniform in 1..this.
      behaviors_per_day: mean ``behavior_log.csv`` rows per user and day.
      null_brand_rate: share of ads whose brand is ``NULL``.
      empty_profile_rate: share of empty ``pvalue_level`` / ``new_user_class_level`` values.
      no_profile_rate: share of users without a ``user_profile.csv`` row.
      history_weight / brand_weight: click-logit weight of the ad's category / brand being among the user's
        recent behaviour (the signal DIN learns from the history).
      layout: ``alibaba`` (the four files), ``joined`` (FuxiCTR's pre-joined CSV) or ``both``.
      behavior_log: write ``behavior_log.csv``.
      crlf: end lines with ``\\r\\n``.
      seed: random seed; the files are a deterministic function of every field.
      output: output directory.
    """

    __pydantic_config__ = CONFIG
    config_key = "taobao_sim"

    impressions: PositiveInt = 50_000
    users: PositiveInt = 2_000
    ads: PositiveInt = 3_000
    categories: PositiveInt = 40
    brands: PositiveInt = 400
    campaigns: PositiveInt = 1_500
    customers: PositiveInt = 800
    days: PositiveInt = 8
    max_per_request: PositiveInt = 6
    behaviors_per_day: NonNegativeFloat = 6.0
    null_brand_rate: Rate = 0.05
    empty_profile_rate: Rate = 0.1
    no_profile_rate: Rate = 0.05
    history_weight: float = 2.5
    brand_weight: float = 0.8
    layout: Literal[LAYOUTS] = "alibaba"  # type: ignore[valid-type]
    behavior_log: bool = True
    crlf: bool = False
    seed: int = 2024
    output: str = ""

    def rules(self) -> None:
        check(self.ads >= 2 * self.max_per_request, "taobao_sim.ads", self.ads,
              "must be >= 2 * taobao_sim.max_per_request")


@dataclasses.dataclass
class TaobaoConfig(Section):
    """The Taobao Beam pipelines (``pipelines.taobao``): raw files -> requests -> DIN examples; scored lists.

    Inputs, one of the two layouts (lists of files or globs):

    * the Alibaba files: ``raw_sample`` (required), ``ad_feature``, ``user_profile``, ``behavior_log``
      (optional, for the behaviour history);
    * the pre-joined FuxiCTR CSV: ``joined``.

    Attributes:
      output: the requests pipeline's output directory (DIN examples, request groups, item table).
      lists_output: the lists pipeline's output directory (one ``ExampleListWithContext`` per request).
      first_day: calendar date of day 1 (``YYYY-MM-DD``).
      utc_offset_hours: the local time of the day boundaries (and of the joined layout's time strings): Beijing
        time, UTC+8, for the real log.
      train_days / test_days: days (1 = ``first_day``) of the training and test requests; rows of other days go to
        the dead letter (``outside_days``).
      valid_share: share of the training days' requests held out for validation (a keyed hash of the request).
      history: where a request's behaviour history comes from: ``behavior`` (``behavior_log``), ``clicks`` (the
        user's earlier clicks in ``raw_sample``), ``sequence`` (the joined layout's ``click_sequence``) or
        ``auto`` (behavior when a behaviour log is given, sequence for the joined layout, else clicks).
      history_btags: behaviour types that enter the history (``pv``, ``cart``, ``fav``, ``buy``).
      max_history: the most recent entries kept (strictly before the request's time stamp).
      request_window_s: 0 groups impressions by their exact ``(user, time_stamp, pid)``; ``w > 0`` by
        ``(user, time_stamp // w, pid)``.
      pool_samples: N5 pool negatives per request in the lists (ads of the item table not in the request).
      split_salt / seed: salt of the split hash; seed of the pool sampling.
      num_shards: output shards per split.
      runner / beam_args: Beam runner and extra pipeline arguments.
    """

    __pydantic_config__ = CONFIG
    config_key = "taobao"

    raw_sample: List[str] = dataclasses.field(default_factory=list)
    ad_feature: List[str] = dataclasses.field(default_factory=list)
    user_profile: List[str] = dataclasses.field(default_factory=list)
    behavior_log: List[str] = dataclasses.field(default_factory=list)
    joined: List[str] = dataclasses.field(default_factory=list)
    output: str = ""
    lists_output: str = ""
    first_day: str = FIRST_DAY
    utc_offset_hours: Annotated[int, Field(ge=-12, le=14)] = 8
    train_days: Annotated[List[Annotated[int, Field(ge=1)]], Field(min_length=1)] = dataclasses.field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    test_days: List[Annotated[int, Field(ge=1)]] = dataclasses.field(default_factory=lambda: [8])
    valid_share: Rate = 0.05
    history: Literal[HISTORY_SOURCES] = "auto"  # type: ignore[valid-type]
    history_btags: List[Literal[BTAGS]] = dataclasses.field(  # type: ignore[valid-type]
        default_factory=lambda: list(BTAGS))
    max_history: NonNegativeInt = 50
    request_window_s: NonNegativeInt = 0
    pool_samples: NonNegativeInt = 10
    split_salt: str = "tfrec"
    seed: int = 2024
    num_shards: PositiveInt = 2
    runner: str = "DirectRunner"
    beam_args: List[str] = dataclasses.field(default_factory=list)

    def rules(self) -> None:
        try:
            datetime.date.fromisoformat(self.first_day)
        except (TypeError, ValueError):
            check(False, "taobao.first_day", self.first_day, "must be a date YYYY-MM-DD")
        check(not set(self.train_days) & set(self.test_days), "taobao.test_days", self.test_days,
              "must not share days with taobao.train_days")

    def first_day_unix(self) -> int:
        """Unix seconds of the start of day 1 in the configured local time."""
        d = datetime.date.fromisoformat(self.first_day)
        midnight = datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.timezone.utc)
        return int(midnight.timestamp()) - 3600 * int(self.utc_offset_hours)


@dataclasses.dataclass
class DinConfig(Section):
    """DIN, the ranker of the Taobao protocol (``tfrec.models.din``), and its training (``tfrec.train_din``).

    Attributes:
      embedding_dim: size of every hashed feature embedding.
      hash_bins: hash buckets per categorical feature.
      attention_units: hidden layers of the activation unit (the paper's Fig. 2: one layer of 36).
      hidden_units: the MLP over the pooled history, the candidate and the user (the paper: 200-80).
      activation: ``dice`` or ``prelu`` (the MLP and the activation unit).
      use_history: False drops the behaviour sequence (the no-history baseline of the tests).
      embedding_l2: L2 weight on the embedding rows of each batch (``tfrec.models.din.DIN``).
      exclude: features DIN does not read (``tfrec.models.din.DIN``'s ``exclude``).
      max_history: history entries read per example (the most recent ones).
      batch_size / epochs / learning_rate: training (Adam, BCE).
      seed: the training seed.
    """

    __pydantic_config__ = CONFIG
    config_key = "din"

    embedding_dim: PositiveInt = 12
    hash_bins: PositiveInt = 50_000
    attention_units: Sizes = dataclasses.field(default_factory=lambda: [36])
    hidden_units: Sizes = dataclasses.field(default_factory=lambda: [200, 80])
    activation: Literal["dice", "prelu"] = "dice"
    use_history: bool = True
    embedding_l2: NonNegativeFloat = 0.0
    exclude: List[str] = dataclasses.field(default_factory=list)
    max_history: PositiveInt = 50
    batch_size: PositiveInt = 256
    epochs: PositiveInt = 2
    learning_rate: PositiveFloat = 0.001
    seed: int = 2024
