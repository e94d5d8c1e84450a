r"""A Criteo-shaped click-log simulator with a known true click probability per row.

:func:`simulate` writes a file in the exact format of the Criteo Kaggle ``train.txt`` (so the Criteo reader and
pipeline run on it unchanged) and, beside it, the ground truth that real click logs never have.

Files
-----
``cfg.output`` (``train.txt``)
  One row per line, ``\n``-terminated, no header, 40 tab-separated fields: ``label`` (``0`` or ``1``), ``I1`` ..
  ``I13`` (decimal integers, ``-3`` upwards; the empty string when missing), ``C1`` .. ``C26`` (8-character
  lowercase hexadecimal tokens such as ``68fd1e64``; the empty string when missing). With
  ``strip_trailing_share > 0`` each line, independently with that probability, has its trailing empty fields
  removed together with their tabs, as in some Criteo copies, so those lines have 37 to 40 fields (``C23`` is never
  missing, so at most ``C24``, ``C25`` and ``C26`` are stripped).
``cfg.output + ".truth"``
  The true click probability ``p`` of each row, one float per line (``%.10g``), line ``i`` for line ``i`` of
  ``train.txt``. The label of a row is a Bernoulli(``p``) draw. The truth is not in the Criteo columns.
``cfg.output + ".meta.json"``
  The configuration, ``strip_trailing_share``, the fitted constants of the model (``bias``, scales), the
  realised positive rate, the mean of ``p``, ``truth_auc`` (ROC AUC of ``p`` against the drawn labels: the best
  AUC any model can expect on this data), ``truth_logloss`` (mean log loss of ``p``), and per field the configured
  and realised missing rates, the vocabulary sizes and the number of distinct non-missing values.

The generative model (the true logit, the fields and their parameters) is :mod:`tfrec.simulation.criteo_model`;
the text of the rows :mod:`tfrec.simulation.criteo_format`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, List, Set

import numpy as np

from tfrec.config import SimulationConfig
from tfrec.simulation.criteo_format import format_chunk
from tfrec.simulation.criteo_model import (CATEGORICAL_FIELDS, DENSE_FIELDS, FIRST_ORDER_SD, HIST_BINS, HIST_HI,
                                          HIST_LO, INTERACTION_SD, LATENT_DIM, LOGIT_CLIP, build_model,
                                          centred_logit, draw_rows, fit_bias, logit_parts)
from tfrec.simulation.files import atomic_writes

#: Rows generated and written per chunk (fixed: the random streams are per chunk).
CHUNK_ROWS = 50_000
#: Rows of the independent sample on which the scales ``s_F`` and ``s_H`` are measured.
CALIBRATION_ROWS = 50_000
#: Largest vocabulary allowed for one field (the parameters take about 16 bytes per entry).
MAX_VOCABULARY = 1 << 24
_AUC_BINS = 1 << 20  # histogram of p, for the streaming AUC


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` wrote and the realised statistics (also in the ``.meta.json`` file).

    Attributes:
      output_path: path of the Criteo-format ``train.txt`` (``cfg.output``).
      truth_path: path of the true click probabilities, one per line of ``output_path``.
      meta_path: path of the JSON metadata.
      rows: number of rows written.
      positive_rate: realised share of label 1.
      mean_probability: mean of the true probabilities (the expected positive rate).
      truth_auc: ROC AUC of the true probability against the drawn labels (the Bayes-optimal AUC).
      truth_logloss: mean log loss of the true probability.
      bias: the fitted global bias ``b`` of the true logit.
      missing_rates: realised missing rate per field (``I1`` .. ``I13``, ``C1`` .. ``C26``).
      distinct: number of distinct non-missing values per field.
    """

    output_path: str
    truth_path: str
    meta_path: str
    rows: int
    positive_rate: float
    mean_probability: float
    truth_auc: float
    truth_logloss: float
    bias: float
    missing_rates: Dict[str, float]
    distinct: Dict[str, int]


def _check(ok: bool, name: str, value: object, message: str) -> None:
    if not ok:
        raise ValueError(f"`{name}` {message}. Received: {name}={value!r}")


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _validate(cfg: SimulationConfig, strip_trailing_share: float) -> None:
    _check(isinstance(cfg, SimulationConfig), "cfg", cfg, "must be a SimulationConfig")
    _check(_is_int(cfg.rows) and cfg.rows > 0, "cfg.rows", cfg.rows,
           "must be a positive integer")
    _check(_is_number(cfg.positive_rate) and 0.0 < cfg.positive_rate < 1.0, "cfg.positive_rate",
           cfg.positive_rate, "must be in (0, 1)")
    _check(_is_int(cfg.seed) and cfg.seed >= 0, "cfg.seed", cfg.seed,
           "must be a non-negative integer")
    _check(_is_number(cfg.vocab_scale) and cfg.vocab_scale > 0, "cfg.vocab_scale", cfg.vocab_scale,
           "must be > 0")
    largest = max(s.vocabulary for s in CATEGORICAL_FIELDS.values())
    _check(round(largest * cfg.vocab_scale) <= MAX_VOCABULARY, "cfg.vocab_scale", cfg.vocab_scale,
           f"must keep every vocabulary <= {MAX_VOCABULARY} (the largest base vocabulary is {largest})")
    _check(_is_number(cfg.interaction_strength) and cfg.interaction_strength >= 0, "cfg.interaction_strength",
           cfg.interaction_strength, "must be >= 0")
    _check(isinstance(cfg.output, str) and cfg.output != "", "cfg.output", cfg.output,
           "must be a non-empty path")
    _check(_is_number(strip_trailing_share) and 0.0 <= strip_trailing_share <= 1.0, "strip_trailing_share",
           strip_trailing_share, "must be in [0, 1]")


def _auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((np.dot(pos, neg_below) + 0.5 * np.dot(pos, neg)) / (n_pos * n_neg))


def simulate(cfg: SimulationConfig, strip_trailing_share: float = 0.0) -> SimulationResult:
    """Simulates a Criteo-shaped click log with a known true click probability per row.

    Writes ``cfg.output`` (Criteo Kaggle ``train.txt`` format), ``cfg.output + ".truth"`` (the true
    probabilities) and ``cfg.output + ".meta.json"``; the module docstring gives the formats and the model. The
    files are a deterministic function of ``cfg`` and ``strip_trailing_share``; they are written to temporary
    names in chunks of :data:`CHUNK_ROWS` rows and renamed when complete. Missing parent directories are
    created.

    Args:
      cfg: the simulation config (``rows``, ``positive_rate``, ``seed``, ``vocab_scale``,
        ``interaction_strength``, ``output``).
      strip_trailing_share: share in [0, 1] of lines whose trailing empty fields (and their tabs) are removed.

    Returns:
      A :class:`SimulationResult` with the paths and realised statistics.

    Raises:
      ValueError: an argument or config field out of range or of the wrong type, or an empty ``cfg.output``;
        the one-line message names it and the value received.
      OSError: the output files cannot be written.
    """
    _validate(cfg, strip_trailing_share)
    cfg = dataclasses.replace(cfg, rows=int(cfg.rows), seed=int(cfg.seed), positive_rate=float(cfg.positive_rate),
                              vocab_scale=float(cfg.vocab_scale),
                              interaction_strength=float(cfg.interaction_strength))  # plain JSON types
    model = build_model(cfg.seed, cfg.vocab_scale)

    # Scales of the two parts of the logit, measured on an independent calibration sample.
    first, second = logit_parts(model, draw_rows(model, np.random.default_rng([cfg.seed, 4]), CALIBRATION_ROWS))
    model.first_scale = FIRST_ORDER_SD / max(float(first.std()), 1e-12)
    model.second_scale = INTERACTION_SD / max(float(second.std()), 1e-12)

    chunks = [(c, min(CHUNK_ROWS, cfg.rows - start)) for c, start in enumerate(range(0, cfg.rows, CHUNK_ROWS))]

    # Pass 1: histogram of the realised centred logits, to fit the bias.
    hist = np.zeros(HIST_BINS, dtype=np.int64)
    for c, n in chunks:
        z = centred_logit(model, draw_rows(model, np.random.default_rng([cfg.seed, 1, c]), n),
                           cfg.interaction_strength)
        b = np.clip(((z - HIST_LO) * (HIST_BINS / (HIST_HI - HIST_LO))).astype(np.int64), 0, HIST_BINS - 1)
        hist += np.bincount(b, minlength=HIST_BINS)
    bias = fit_bias(hist, cfg.positive_rate)

    # Pass 2: the same rows again, with labels, written out.
    out_dir = os.path.dirname(os.path.abspath(cfg.output))
    os.makedirs(out_dir, exist_ok=True)
    truth_path, meta_path = cfg.output + ".truth", cfg.output + ".meta.json"
    n_dense, n_cat = len(DENSE_FIELDS), len(CATEGORICAL_FIELDS)
    dense_missing = np.zeros(n_dense, dtype=np.int64)
    cat_missing = np.zeros(n_cat, dtype=np.int64)
    dense_seen: List[Set[int]] = [set() for _ in range(n_dense)]
    cat_seen = [np.zeros(v, dtype=bool) for v in model.vocab]
    pos_hist = np.zeros(_AUC_BINS, dtype=np.int64)
    neg_hist = np.zeros(_AUC_BINS, dtype=np.int64)
    n_pos, sum_p, sum_loss = 0, 0.0, 0.0
    with atomic_writes([cfg.output, truth_path], "wb") as (f_out, f_truth):
        for c, n in chunks:
            rows = draw_rows(model, np.random.default_rng([cfg.seed, 1, c]), n)
            logit = np.clip(bias + centred_logit(model, rows, cfg.interaction_strength), -LOGIT_CLIP,
                            LOGIT_CLIP)
            p = 1.0 / (1.0 + np.exp(-logit))
            labels = (np.random.default_rng([cfg.seed, 2, c]).random(n) < p).astype(np.int64)
            strip = np.random.default_rng([cfg.seed, 3, c]).random(n) < strip_trailing_share
            f_out.write(format_chunk(model, rows, labels, strip).encode("ascii"))
            f_truth.write(("\n".join(map("{:.10g}".format, p.tolist())) + "\n").encode("ascii"))

            n_pos += int(labels.sum())
            sum_p += float(p.sum())
            # log p = -log(1 + e^-z), log(1 - p) = -log(1 + e^z)
            sum_loss += float(np.where(labels == 1, np.logaddexp(0.0, -logit), np.logaddexp(0.0, logit)).sum())
            bins = np.minimum((p * _AUC_BINS).astype(np.int64), _AUC_BINS - 1)
            pos_hist += np.bincount(bins[labels == 1], minlength=_AUC_BINS)
            neg_hist += np.bincount(bins[labels == 0], minlength=_AUC_BINS)
            dense_missing += rows.dense_missing.sum(axis=0)
            for j in range(n_dense):
                dense_seen[j].update(np.unique(rows.dense[~rows.dense_missing[:, j], j]).tolist())
            for f in range(n_cat):
                idx = rows.cat[:, f]
                present = idx < model.vocab[f]
                cat_missing[f] += n - int(present.sum())
                cat_seen[f][idx[present]] = True

    rows_total = cfg.rows
    missing_rates = {name: float(dense_missing[j]) / rows_total for j, name in enumerate(DENSE_FIELDS)}
    missing_rates.update({name: float(cat_missing[f]) / rows_total for f, name in enumerate(CATEGORICAL_FIELDS)})
    distinct = {name: len(dense_seen[j]) for j, name in enumerate(DENSE_FIELDS)}
    distinct.update({name: int(cat_seen[f].sum()) for f, name in enumerate(CATEGORICAL_FIELDS)})
    result = SimulationResult(
        output_path=cfg.output,
        truth_path=truth_path,
        meta_path=meta_path,
        rows=rows_total,
        positive_rate=n_pos / rows_total,
        mean_probability=sum_p / rows_total,
        truth_auc=_auc_from_histograms(pos_hist, neg_hist),
        truth_logloss=sum_loss / rows_total,
        bias=bias,
        missing_rates=missing_rates,
        distinct=distinct,
    )
    fields: Dict[str, Dict[str, object]] = {}
    for name, spec in DENSE_FIELDS.items():
        fields[name] = {"missing_rate": missing_rates[name], "expected_missing_rate": spec.missing_rate,
                        "distinct": distinct[name]}
    for f, (name, cspec) in enumerate(CATEGORICAL_FIELDS.items()):
        fields[name] = {"missing_rate": missing_rates[name], "expected_missing_rate": cspec.missing_rate,
                        "distinct": distinct[name], "vocabulary": model.vocab[f]}
    meta = {
        "format": "criteo_kaggle_train_txt",
        "config": dataclasses.asdict(cfg),
        "strip_trailing_share": float(strip_trailing_share),
        "rows": rows_total,
        "positive_rate": result.positive_rate,
        "mean_probability": result.mean_probability,
        "truth_auc": result.truth_auc,
        "truth_logloss": result.truth_logloss,
        "model": {
            "bias": bias,
            "first_order_scale": model.first_scale,
            "interaction_scale": model.second_scale,
            "first_order_sd": FIRST_ORDER_SD,
            "interaction_sd": INTERACTION_SD,
            "latent_dim": LATENT_DIM,
            "interacting_fields": [n for n, s in CATEGORICAL_FIELDS.items() if s.interact],
        },
        "fields": fields,
        "files": {"train": os.path.basename(cfg.output), "truth": os.path.basename(truth_path)},
    }
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return result
