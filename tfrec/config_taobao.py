"""The Taobao protocol's config sections and constants, kept importable under their previous module name.

They live in :mod:`tfrec.config.taobao` (sections of :class:`tfrec.config.RunConfig`: ``taobao_sim``, ``taobao``,
``din``); this module re-exports them for the readers, pipelines and tests that import them from here.
"""

from tfrec.config.taobao import (BTAGS, FIRST_DAY, HISTORY_SOURCES, LAYOUTS, PROFILE_FIELDS, DinConfig, TaobaoConfig,
                                 TaobaoSimConfig)

__all__ = ["BTAGS", "DinConfig", "FIRST_DAY", "HISTORY_SOURCES", "LAYOUTS", "PROFILE_FIELDS", "TaobaoConfig",
           "TaobaoSimConfig"]
