"""The datasets of the ``pwiser`` protocol's noise sweep (and its ``--quick`` data): the funnel simulator
(``tfrec.simulation.funnel``) at a noisy-click share, prepared with the multi-task Beam pipeline."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Sequence

from tfrec.config import RunConfig
from tfrec.experiments.core.datasets import made_once, split_counts
from tfrec.experiments.core.registry import Options
from tfrec.experiments.pwiser.settings import noise_dataset, noise_shares

#: The funnel's informative columns, kept in the Ali-CCP layout when ``prepare.input_format`` is ``aliccp``
#: (user, item, user segment and item category ids; the noisy latent vectors of the user and the item).
NARROW_COLUMNS = {"click": "click", "conversion": "purchase", "categorical_1": "101", "categorical_2": "205",
                  "categorical_3": "121", "categorical_4": "206",
                  **{f"numerical_{i}": f"D101_{i}" for i in range(1, 5)},
                  **{f"numerical_{i + 4}": f"D205_{i}" for i in range(1, 5)}}


def narrow_copy(src: str, dst: str, columns: Dict[str, str] = NARROW_COLUMNS) -> int:
    """Copies the columns ``columns`` (AliExpress name -> Ali-CCP name, in that order) of the AliExpress CSV
    ``src`` into ``dst`` with the Ali-CCP names as its header; returns the number of data rows.

    Raises:
      ValueError: ``src`` lacks one of the columns.
    """
    with open(src, "r", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        header = f.readline().rstrip("\n").split(",")
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{src} has no column {missing[0]!r}")
        keep = [header.index(c) for c in columns]
        g.write(",".join(columns.values()) + "\n")
        rows = 0
        for line in f:
            fields = line.rstrip("\n").split(",")
            g.write(",".join(fields[i] for i in keep) + "\n")
            rows += 1
    return rows


def prepare_funnel_data(cfg: RunConfig, out_dir: str, share: float, printer: Callable[[str], None] = print) -> str:
    """Simulates the funnel at noisy-click share ``share`` (``cfg.simulation``, ``kind: funnel``) and prepares
    it with the multi-task pipeline (``cfg.prepare``) into ``<out_dir>/pwiser_data/noise<share>/data``; a rerun
    with the same settings reuses it. With ``prepare.input_format: aliccp`` the pipeline reads the
    :data:`NARROW_COLUMNS` copy (Ali-CCP layout), otherwise the full AliExpress file.

    Returns:
      The prepared dataset directory.
    """
    from pipelines.multitask import run as prepare
    from tfrec.simulation import simulate_funnel

    root = os.path.join(os.path.abspath(out_dir), "pwiser_data", noise_dataset(share))
    raw, data_dir = os.path.join(root, "raw", "aliexpress.csv"), os.path.join(root, "data")
    narrow = cfg.prepare.input_format == "aliccp"
    sim = dataclasses.replace(cfg.simulation, kind="funnel", output=raw,
                              funnel=dataclasses.replace(cfg.simulation.funnel, noisy_click_share=float(share)))
    inputs = os.path.join(root, "raw", "aliccp.csv") if narrow else raw
    prep = dataclasses.replace(cfg.prepare, inputs=[inputs], train=[], valid=[], test=[], output=data_dir,
                               input_format="aliccp" if narrow else "aliexpress")
    wanted = {"simulation": dataclasses.asdict(sim), "prepare": dataclasses.asdict(prep)}
    def make() -> dict:
        os.makedirs(os.path.dirname(raw), exist_ok=True)
        r = simulate_funnel(sim)
        printer(f"pwiser data: {r.rows:,} funnel exposures at noisy-click share {share:g} (realised "
                f"{r.noisy_click_share:.3f}), click rate {r.click_rate:.4f}, conversions per click "
                f"{r.conversion_rate:.4f}; Bayes AUC ctr {r.truth_ctr_auc:.4f} cvr {r.truth_cvr_auc:.4f}")
        if narrow:
            narrow_copy(raw, inputs)
        stats = prepare(prep)
        printer(f"pwiser data: prepared {data_dir} ({split_counts(stats['rows_written'])})")
        return {"truth": dataclasses.asdict(r)}

    return made_once(root, data_dir, wanted, make, printer, label="pwiser data")


def quick_data(cfg: RunConfig, out_dir: str, printer: Callable[[str], None] = print) -> str:
    return prepare_funnel_data(cfg, out_dir, cfg.simulation.funnel.noisy_click_share, printer)


def datasets(base: RunConfig, opts: Options, out_dir: str, printer: Callable[[str], None],
             names: Sequence[str]) -> Dict[str, str]:
    return {noise_dataset(s): prepare_funnel_data(base, out_dir, s, printer) for s in noise_shares(opts)
            if noise_dataset(s) in names}


