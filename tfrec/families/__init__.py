"""tfrec's model families: ``pointwise`` (DCN V2), ``multitask`` (PWiseR's multi-task models) and ``preranking``
(HCCP's Three-Tower model), each one :class:`Family` object that owns what differs between them.

    from tfrec.families import family_of

    family = family_of("data")            # from the dataset's schema.json
    result = family.train(cfg)            # the family's training, model, loss and metrics
    report = family.evaluate(cfg, "test")

:mod:`tfrec.families.registry` is the one place that decides a family (:func:`family_of`, :func:`family_of_run`,
:func:`family_of_model`); :mod:`tfrec.families.base` documents the interface.
"""

from tfrec.families.base import EXAMPLE, EXAMPLE_LIST, Family
from tfrec.families.registry import (family_of, family_of_format, family_of_model, family_of_model_name, family_of_run,
                                     get, kind_of, names, register)

__all__ = ["EXAMPLE", "EXAMPLE_LIST", "Family", "family_of", "family_of_format", "family_of_model",
           "family_of_model_name", "family_of_run", "get", "kind_of", "names", "register"]
