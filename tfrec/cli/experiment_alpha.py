"""``tfrec experiment --alpha``: the alpha of the KDD 2024 combined losses, replacing the authors' table.

``--alpha 0.7`` gives every loss of :data:`tfrec.experiments.kdd.protocols.KDD_ALPHAS` (Combined-Pair, JRC,
Combined-List, RCR) alpha 0.7 at every beta_pos; ``--alpha combined_pair=0.7,jrc=0.4`` names losses (the others
keep the table); ``--alpha 0.8,jrc=0.4`` is 0.8 for every loss but JRC. The result fills
:attr:`tfrec.experiments.Options.alphas`.

Each cell of a KDD protocol sets its loss's params itself (``model.loss.params={}`` then its own), so a
``model.loss.params`` key from ``--config`` or ``--set`` would never reach a cell: :func:`check_loss_params` makes
that a usage error (pointing to ``--alpha``) instead of a silent no-op. Likewise an ``--alpha`` that changes no
setting of the protocols run (the ``alpha`` protocol sweeps alpha itself; ``focal`` has no alpha; ``sparsity``
has no JRC) is an error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, List, Optional, Sequence

from tfrec.cli.common import UsageError

EXAMPLE = "--alpha 0.7 or --alpha combined_pair=0.7,jrc=0.4"


def parse_alpha(text: str) -> Dict[str, float]:
    """``--alpha``'s value as ``{loss: alpha}`` over the losses of ``KDD_ALPHAS`` (see the module docstring)."""
    from tfrec.experiments.kdd.protocols import KDD_ALPHAS

    default: Optional[float] = None
    named: Dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise UsageError(f"--alpha has an empty entry ({EXAMPLE}). Received: --alpha={text}")
        key, sep, value = item.rpartition("=")
        key = key.strip()
        try:
            alpha = float(value)
        except ValueError:
            raise UsageError(f"--alpha: {value.strip()!r} is not a number ({EXAMPLE}). Received: --alpha={text}")
        if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
            raise UsageError(f"--alpha values must be in [0, 1]. Received: --alpha={text}")
        if not sep:
            if default is not None:
                raise UsageError(f"--alpha has two values for every loss. Received: --alpha={text}")
            default = alpha
            continue
        if key not in KDD_ALPHAS:
            raise UsageError(f"--alpha: no loss {key!r} takes the KDD alpha; known: {', '.join(sorted(KDD_ALPHAS))}. "
                             f"Received: --alpha={text}")
        if key in named:
            raise UsageError(f"--alpha names {key} twice. Received: --alpha={text}")
        named[key] = alpha
    out = {loss: default for loss in KDD_ALPHAS} if default is not None else {}
    out.update(named)
    return out


def _uses(protocol, opts, loss: str) -> bool:
    """Whether ``protocol``'s settings take ``loss``'s alpha from ``opts.alphas`` (a sentinel alpha changes them)."""
    sentinel = dataclasses.replace(opts, alphas={loss: -1.0})
    return protocol.settings(sentinel) != protocol.settings(dataclasses.replace(opts, alphas=None))


def check_alpha(text: str, alphas: Dict[str, float], protocols: Iterable, opts) -> None:
    """Fails when ``--alpha`` changes no setting of ``protocols``, or names a loss none of them trains."""
    protocols = list(protocols)
    used = {loss for loss in alphas if any(_uses(p, opts, loss) for p in protocols)}
    run = ", ".join(p.name for p in protocols)
    if not used:
        raise UsageError(f"--alpha={text} changes no setting of {run} (it sets the alpha of the losses in "
                         "sparsity, losses and findings; the alpha protocol sweeps alpha with --values)")
    named = {part.split("=", 1)[0].strip() for part in text.split(",") if "=" in part}
    unused = sorted(named - used)
    if unused:
        raise UsageError(f"--alpha names {', '.join(unused)}, which {run} does not train")


def override_loss_keys(overrides: Iterable[str]) -> List[str]:
    """The ``model.loss.params`` keys that ``--set`` overrides set, as config keys
    (``model.loss.params.alpha=0.3`` -> ``model.loss.params.alpha``; ``model.loss.params={alpha: 0.3}`` ->
    ``model.loss.params``, and ``model.loss.params.alpha`` too when the value names alpha)."""
    out = set()
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "model.loss.params":
            out.add(key)
            if "alpha" in value:
                out.add("model.loss.params.alpha")
        elif key.startswith("model.loss.params."):
            out.add("model.loss.params." + key[len("model.loss.params."):].split(".", 1)[0])
    return sorted(out)


def check_loss_params(keys: Sequence[str], protocol, opts) -> None:
    """Fails when ``keys`` (``model.loss.params`` keys from ``--config`` / ``--set``) are set for ``protocol``,
    whose cells replace the loss params with their own."""
    if keys and any("model.loss.params={}" in s.overrides for s in protocol.settings(opts)):
        hint = f"; use {EXAMPLE}" if "model.loss.params.alpha" in keys else ""
        raise UsageError(f"{', '.join(keys)} does not reach the cells of {protocol.name}: each cell sets its loss's "
                         f"params{hint}")
