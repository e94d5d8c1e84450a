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

Generative model
----------------
Rows are independent. The parameters below are drawn once from ``default_rng([seed, 0])``; the rows of chunk
``c`` (blocks of :data:`CHUNK_ROWS` rows) from ``default_rng([seed, 1, c])``, their labels from
``default_rng([seed, 2, c])`` and the choice of stripped lines from ``default_rng([seed, 3, c])``. Field
specifications (missing rate, distribution, effect sizes) are the tables :data:`DENSE_FIELDS` and
:data:`CATEGORICAL_FIELDS`.

*Missing values.* Fields share missingness groups, as in Criteo (``I1``/``I10`` are missing together;
``C19``/``C20``/``C25``/``C26`` too; ``C3``/``C4``/``C12``/``C16``/``C21``/``C24`` too). Each row draws one
``U_g ~ Uniform(0, 1)`` per group ``g``; field ``j`` of group ``g`` is missing iff ``U_g < m_j`` (so fields of
one group with equal rates are missing together and a lower rate nests inside a higher one).

*Numeric fields* ``I_j``. A row-level activity ``A ~ N(0, 1)`` correlates them (a Gaussian copula):
``Z_j = rho_j A + sqrt(1 - rho_j^2) E_j`` with ``E_j ~ N(0, 1)``. Then, with probability ``q_j`` the value is a
small negative integer ``-K`` with ``K in {1, 2, 3}`` (probabilities 0.85, 0.10, 0.05; only ``I2``, as in Criteo),
otherwise with probability ``z_j`` it is 0, otherwise ``x_j = floor(exp(mu_j + sigma_j Z_j))``: a zero-inflated
floored lognormal with Criteo-like medians (``exp(mu_j)``, from about 1 to about 2800) and heavy tails
(``sigma_j`` up to 1.9); the exponent is capped at 21.4 so values stay below ``2^31 - 1``.

*Categorical fields* ``C_f`` with vocabulary size ``V_f = max(2, round(V0_f * vocab_scale))``. The index ``k``
(0-based rank) is drawn from the truncated Zipf law ``P(k) = (k + 1)^-a_f / sum_{r=1}^{V_f} r^-a_f`` with
``a_f`` in [1.05, 1.3]. Index ``k`` is written as the token ``%08x`` of ``lowbias32(k XOR crc32(f))``, a
bijective 32-bit integer hash, so tokens are a fixed function of (field, index), distinct within a field and
independent of the seed. A missing value takes the extra index ``V_f`` (it has its own weights below).

*True logit.* With the signed log ``L_j = sign(x_j) log(1 + |x_j|)`` and its standardised, clipped version
``u_j = clip((L_j - mu_j) / sigma_j, -3, 3)``::

    F = sum_f w_f[k_f]                                                            (first order, categorical)
      + sum_j [x_j present] (alpha_j tanh(u_j) + beta_j exp(-u_j^2 / 2)) + [x_j missing] gamma_j   (numeric)
    H = sum_{a < b in S} <e_a, e_b>              (second order: an FM over the low-cardinality fields of S)
    logit = clip(b + sigma_F F / s_F + interaction_strength * sigma_H H / s_H, -20, 20)
    p = sigmoid(logit),   label ~ Bernoulli(p)

where ``w_f[k] ~ N(0, omega_f^2)`` (``omega_f = 0`` for pure-noise fields; the missing index has a weight too),
``alpha_j ~ N(0, eta_j^2)``, ``beta_j, gamma_j ~ N(0, (eta_j / 2)^2)``. ``S`` is the set of categorical fields
marked ``interact`` in the table: ``C9``, ``C17`` and ``C20`` (3, 10 and 4 values, plus ``C20``'s missing
index; 3 pairs). ``e_f = v_f[k_f]`` with ``v_f[k] = z_f[k] - sum_r P_f(r) z_f[r]``, where the ``z_f[k]`` are
vectors of :data:`LATENT_DIM` independent ``N(0, 1 / LATENT_DIM)`` entries and ``P_f`` is the field's own
distribution (the Zipf law times ``1 - m_f`` over the present indices, ``m_f`` on the missing index): the latent
vectors are centred under ``P_f``. ``H`` is computed as ``(|sum_a e_a|^2 - sum_a |e_a|^2) / 2``. ``s_F`` and
``s_H`` are the standard deviations of ``F`` and ``H`` on an independent calibration sample of
:data:`CALIBRATION_ROWS` rows (``default_rng([seed, 4])``), so ``sd(first order) ~ sigma_F`` and
``sd(second order) ~ interaction_strength * sigma_H`` whatever the draw of the parameters
(:data:`FIRST_ORDER_SD`, :data:`INTERACTION_SD`). The bias ``b`` is fitted by bisection so that the mean of
``p`` over the realised rows equals ``positive_rate`` (a first pass over the chunks histograms ``logit - b`` into
bins of width 50 / 2^16, so the rate is matched to about 1e-4 in expectation; the drawn labels add binomial
noise).

The fields of ``S`` are drawn independently of each other (no two share a missingness group) and each ``e_f``
has mean zero, so ``E[H | any one field] = 0``: ``H`` is a pure interaction, orthogonal to every additive
function of the features, and no first-order model captures any of it. ``S`` is small and of low cardinality so
that the interaction is learnable from the demo's ~100k training rows (its 3 x 10 x 5 cells are all frequent):
per-token latent vectors on large Zipf vocabularies cannot be learnt by any model at that scale, and products of
numeric fields are slow to learn for DCN V2, which embeds a numeric value as a multiple of one vector. The numeric
fields and the large-vocabulary fields are first-order only (frequent tokens have learnable weights, the long
tails act as noise).

With the defaults the Bayes AUC is about 0.81-0.84 over seeds (0.82 at seed 2020; Criteo's best models reach
0.81) and about 0.70 with ``interaction_strength = 0`` (an additive logit). Measured with
``bench/bench_simulator.py`` (150k rows; trained on the first 70%, AUCs on the last 20%; seeds 2020 / 7 / 1):
truth 0.823 / 0.836 / 0.809; a logistic regression on one-hot categorical, signed-log numeric and
missing-indicator features 0.645 / 0.626 / 0.647 (it cannot represent ``H``); DCN V2 (tfrec defaults, Adam 1e-3,
3 epochs, one replica) 0.783 / 0.792 / 0.757 at batch 1024, but only 0.678 / 0.682 / 0.650 at batch 4096, whose
~77 steps in all end just as it starts to pick the interaction up. ``tfrec demo`` (batch 1024, 2 replicas,
``beta_pos`` 0.5) measured test AUC 0.773 against a Bayes AUC of 0.820.

Rows are produced in chunks of :data:`CHUNK_ROWS`, so memory is bounded for any ``rows`` (about 16 bytes per
vocabulary entry plus the chunk: about 230 MB resident at the defaults), and the output is byte-identical for
an identical configuration.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zlib
from typing import Dict, List, NamedTuple, Set

import numpy as np

from tfrec.config import SimulationConfig
from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE
from tfrec.simulation.files import atomic_writes

#: Rows generated and written per chunk (fixed: the random streams are per chunk).
CHUNK_ROWS = 50_000
#: Rows of the independent sample on which the scales ``s_F`` and ``s_H`` are measured.
CALIBRATION_ROWS = 50_000
#: Dimension of the latent vectors of the second-order term.
LATENT_DIM = 4
#: Target standard deviation of the first-order part of the logit (``sigma_F``).
FIRST_ORDER_SD = 0.8
#: Target standard deviation of the second-order part at ``interaction_strength = 1`` (``sigma_H``).
INTERACTION_SD = 1.3
#: Largest vocabulary allowed for one field (the parameters take about 16 bytes per entry).
MAX_VOCABULARY = 1 << 24

_LOGIT_CLIP = 20.0
_HIST_LO, _HIST_HI, _HIST_BINS = -25.0, 25.0, 1 << 16  # histogram of logit - bias, for the bias bisection
_AUC_BINS = 1 << 20  # histogram of p, for the streaming AUC
_NEG_VALUES = np.array([-1, -2, -3], dtype=np.int64)
_NEG_CDF = np.array([0.85, 0.95, 1.0])
_INT_LUT_LO, _INT_LUT_HI = -3, 10_000
_INT_LUT = np.array([str(v) for v in range(_INT_LUT_LO, _INT_LUT_HI)], dtype=object)
_HEX_CODES = np.array([ord(c) for c in "0123456789abcdef"], dtype=np.uint32)
_NIBBLE_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)


class DenseSpec(NamedTuple):
    """Specification of one numeric field (see the module docstring for the symbols)."""

    missing_group: str  #: missingness group (fields of a group share one uniform draw per row).
    missing_rate: float  #: ``m_j``.
    zero_rate: float  #: ``z_j``, probability of a 0 among non-negative values.
    mu: float  #: ``mu_j``, log of the median of the lognormal part.
    sigma: float  #: ``sigma_j``, log-scale spread (tail heaviness).
    rho: float  #: ``rho_j``, loading on the row-level activity ``A``.
    negative_rate: float  #: ``q_j``, probability of a value in {-1, -2, -3}.
    effect: float  #: ``eta_j``, scale of the first-order effect.


class CategoricalSpec(NamedTuple):
    """Specification of one categorical field (see the module docstring for the symbols)."""

    vocabulary: int  #: ``V0_f``, vocabulary size before ``vocab_scale``.
    zipf: float  #: ``a_f``, Zipf exponent of the index frequencies.
    missing_group: str  #: missingness group.
    missing_rate: float  #: ``m_f``.
    effect: float  #: ``omega_f``, standard deviation of the per-token first-order weights (0: noise field).
    interact: bool  #: in the second-order set ``S``.


#: Numeric fields; missing rates, medians and tails follow the Criteo Kaggle train set.
DENSE_FIELDS: Dict[str, DenseSpec] = {
    "I1": DenseSpec("I1_I10", 0.4536, 0.20, 1.0, 1.2, 0.5, 0.0, 0.30),
    "I2": DenseSpec("I2", 0.0, 0.10, 1.6, 1.9, 0.3, 0.05, 0.20),
    "I3": DenseSpec("I3_I4_I6_I13", 0.215, 0.05, 2.1, 1.3, 0.4, 0.0, 0.20),
    "I4": DenseSpec("I3_I4_I6_I13", 0.217, 0.04, 1.6, 0.9, 0.4, 0.0, 0.15),
    "I5": DenseSpec("I5", 0.026, 0.02, 7.9, 1.9, 0.2, 0.0, 0.25),
    "I6": DenseSpec("I3_I4_I6_I13", 0.224, 0.05, 3.5, 1.6, 0.5, 0.0, 0.30),
    "I7": DenseSpec("I7_I9_I11", 0.043, 0.10, 1.4, 1.4, 0.6, 0.0, 0.30),
    "I8": DenseSpec("I8", 0.0005, 0.02, 2.1, 1.0, 0.2, 0.0, 0.10),
    "I9": DenseSpec("I7_I9_I11", 0.043, 0.02, 3.7, 1.3, 0.5, 0.0, 0.15),
    "I10": DenseSpec("I1_I10", 0.4536, 0.30, 0.2, 0.5, 0.3, 0.0, 0.20),
    "I11": DenseSpec("I7_I9_I11", 0.043, 0.20, 0.7, 1.0, 0.6, 0.0, 0.30),
    "I12": DenseSpec("I12", 0.766, 0.60, 1.1, 1.5, 0.3, 0.0, 0.10),
    "I13": DenseSpec("I3_I4_I6_I13", 0.217, 0.04, 1.8, 1.1, 0.5, 0.0, 0.20),
}

#: Categorical fields; vocabulary sizes follow Criteo's, the largest ones capped to 10^5 (times ``vocab_scale``).
CATEGORICAL_FIELDS: Dict[str, CategoricalSpec] = {
    "C1": CategoricalSpec(1460, 1.20, "", 0.0, 0.30, False),
    "C2": CategoricalSpec(583, 1.15, "", 0.0, 0.30, False),
    "C3": CategoricalSpec(100_000, 1.05, "C_sparse", 0.034, 0.50, False),
    "C4": CategoricalSpec(50_000, 1.10, "C_sparse", 0.034, 0.40, False),
    "C5": CategoricalSpec(305, 1.30, "", 0.0, 0.20, False),
    "C6": CategoricalSpec(24, 1.20, "C6", 0.121, 0.30, False),
    "C7": CategoricalSpec(12_517, 1.10, "", 0.0, 0.30, False),
    "C8": CategoricalSpec(633, 1.30, "", 0.0, 0.20, False),
    "C9": CategoricalSpec(3, 1.20, "", 0.0, 0.10, True),
    "C10": CategoricalSpec(50_000, 1.05, "", 0.0, 0.40, False),
    "C11": CategoricalSpec(5683, 1.10, "", 0.0, 0.30, False),
    "C12": CategoricalSpec(100_000, 1.05, "C_sparse", 0.034, 0.0, False),
    "C13": CategoricalSpec(3194, 1.10, "", 0.0, 0.30, False),
    "C14": CategoricalSpec(27, 1.20, "", 0.0, 0.30, False),
    "C15": CategoricalSpec(14_992, 1.10, "", 0.0, 0.20, False),
    "C16": CategoricalSpec(80_000, 1.05, "C_sparse", 0.034, 0.0, False),
    "C17": CategoricalSpec(10, 1.20, "", 0.0, 0.30, True),
    "C18": CategoricalSpec(5652, 1.10, "", 0.0, 0.20, False),
    "C19": CategoricalSpec(2173, 1.15, "C19_C20_C25_C26", 0.44, 0.20, False),
    "C20": CategoricalSpec(4, 1.10, "C19_C20_C25_C26", 0.44, 0.30, True),
    "C21": CategoricalSpec(90_000, 1.05, "C_sparse", 0.034, 0.30, False),
    "C22": CategoricalSpec(18, 1.20, "C22", 0.763, 0.10, False),
    "C23": CategoricalSpec(15, 1.20, "", 0.0, 0.30, False),
    "C24": CategoricalSpec(30_000, 1.10, "C_sparse", 0.034, 0.30, False),
    "C25": CategoricalSpec(105, 1.20, "C19_C20_C25_C26", 0.44, 0.20, False),
    "C26": CategoricalSpec(30_000, 1.10, "C19_C20_C25_C26", 0.44, 0.0, False),
}

assert tuple(DENSE_FIELDS) == CRITEO_DENSE and tuple(CATEGORICAL_FIELDS) == CRITEO_CATEGORICAL
# The fields of S are drawn independently of each other (no two share a missingness group), which makes ``H`` a
# pure interaction (see the module docstring).
assert len([s.missing_group for s in CATEGORICAL_FIELDS.values() if s.interact and s.missing_rate > 0]) == len(
    {s.missing_group for s in CATEGORICAL_FIELDS.values() if s.interact and s.missing_rate > 0})


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


# ----------------------------------------------------------------------------------------------- the model


@dataclasses.dataclass
class _Model:
    vocab: List[int]  # V_f per categorical field
    cdf: List[np.ndarray]  # Zipf CDF per categorical field
    salt: List[np.uint32]  # crc32(field name) per categorical field
    groups: List[str]  # missingness groups with a non-zero rate
    cat_weights: List[np.ndarray]  # w_f, length V_f + 1
    cat_latent: Dict[int, np.ndarray]  # field position in S -> centred v_f, (V_f + 1, LATENT_DIM)
    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    first_scale: float = 1.0  # sigma_F / s_F
    second_scale: float = 1.0  # sigma_H / s_H


def _build_model(seed: int, vocab_scale: float) -> _Model:
    rng = np.random.default_rng([seed, 0])
    vocab, cdf, salt, weights, cat_latent = [], [], [], [], {}
    for pos, (name, spec) in enumerate(CATEGORICAL_FIELDS.items()):
        v = max(2, int(round(spec.vocabulary * vocab_scale)))
        c = np.cumsum(np.arange(1, v + 1, dtype=np.float64) ** -spec.zipf)
        c /= c[-1]
        vocab.append(v)
        cdf.append(c)
        salt.append(np.uint32(zlib.crc32(name.encode("ascii"))))
        weights.append(rng.normal(0.0, spec.effect, v + 1) if spec.effect > 0 else np.zeros(v + 1))
        if spec.interact:
            latent = rng.normal(0.0, 1.0 / math.sqrt(LATENT_DIM), (v + 1, LATENT_DIM))
            # Centred under the field's own distribution (Zipf over present values, m_f on the missing index).
            prob = np.append(np.diff(c, prepend=0.0) * (1.0 - spec.missing_rate), spec.missing_rate)
            cat_latent[pos] = latent - prob @ latent
    eta = np.array([s.effect for s in DENSE_FIELDS.values()])
    alpha = rng.normal(0.0, 1.0, len(eta)) * eta
    beta = rng.normal(0.0, 1.0, len(eta)) * eta / 2
    gamma = rng.normal(0.0, 1.0, len(eta)) * eta / 2
    groups = sorted({s.missing_group for s in [*DENSE_FIELDS.values(), *CATEGORICAL_FIELDS.values()]
                     if s.missing_rate > 0})
    return _Model(vocab, cdf, salt, groups, weights, cat_latent, alpha, beta, gamma)


class _Rows(NamedTuple):
    dense: np.ndarray  # (n, 13) int64 raw values (meaningless where missing)
    dense_missing: np.ndarray  # (n, 13) bool
    cat: np.ndarray  # (n, 26) int64 indices, V_f where missing


def _draw_rows(model: _Model, rng: np.random.Generator, n: int) -> _Rows:
    """Draws ``n`` rows of features (no labels), always consuming ``rng`` in the same order."""
    u_group = rng.random((n, len(model.groups)))
    group_col = {g: i for i, g in enumerate(model.groups)}

    def missing(spec) -> np.ndarray:
        if spec.missing_rate <= 0:
            return np.zeros(n, dtype=bool)
        return u_group[:, group_col[spec.missing_group]] < spec.missing_rate

    activity = rng.standard_normal(n)
    dense = np.empty((n, len(DENSE_FIELDS)), dtype=np.int64)
    dense_missing = np.empty((n, len(DENSE_FIELDS)), dtype=bool)
    for j, spec in enumerate(DENSE_FIELDS.values()):
        z = spec.rho * activity + math.sqrt(1.0 - spec.rho ** 2) * rng.standard_normal(n)
        x = np.floor(np.exp(np.minimum(spec.mu + spec.sigma * z, 21.4)))  # e^21.4 < 2^31 - 1
        u = rng.random(n)
        x[u < spec.negative_rate + spec.zero_rate * (1.0 - spec.negative_rate)] = 0.0
        neg = u < spec.negative_rate
        if spec.negative_rate > 0:
            x[neg] = _NEG_VALUES[np.searchsorted(_NEG_CDF, rng.random(int(neg.sum())), side="right")]
        dense[:, j] = x.astype(np.int64)
        dense_missing[:, j] = missing(spec)
    cat = np.empty((n, len(CATEGORICAL_FIELDS)), dtype=np.int64)
    for f, spec in enumerate(CATEGORICAL_FIELDS.values()):
        idx = np.searchsorted(model.cdf[f], rng.random(n), side="right")
        np.minimum(idx, model.vocab[f] - 1, out=idx)  # guards u == last cdf value rounding
        idx[missing(spec)] = model.vocab[f]
        cat[:, f] = idx
    return _Rows(dense, dense_missing, cat)


def _logit_parts(model: _Model, rows: _Rows):
    """Returns the unscaled first-order part ``F`` and second-order part ``H`` of the logit."""
    n = rows.cat.shape[0]
    first = np.zeros(n)
    for f in range(len(CATEGORICAL_FIELDS)):
        first += model.cat_weights[f][rows.cat[:, f]]
    signed_log = np.sign(rows.dense) * np.log1p(np.abs(rows.dense).astype(np.float64))
    mu = np.array([s.mu for s in DENSE_FIELDS.values()])
    sigma = np.array([s.sigma for s in DENSE_FIELDS.values()])
    u = np.clip((signed_log - mu) / sigma, -3.0, 3.0)
    present = ~rows.dense_missing
    effect = model.alpha * np.tanh(u) + model.beta * np.exp(-0.5 * u * u)
    first += np.where(present, effect, model.gamma).sum(axis=1)

    total = np.zeros((n, LATENT_DIM))
    squares = np.zeros(n)
    for f, table in model.cat_latent.items():
        e = table[rows.cat[:, f]]
        total += e
        squares += np.einsum("ij,ij->i", e, e)
    second = 0.5 * (np.einsum("ij,ij->i", total, total) - squares)
    return first, second


def _centred_logit(model: _Model, rows: _Rows, interaction_strength: float) -> np.ndarray:
    first, second = _logit_parts(model, rows)
    return model.first_scale * first + interaction_strength * model.second_scale * second


def _fit_bias(hist: np.ndarray, target: float) -> float:
    centres = _HIST_LO + (np.arange(_HIST_BINS) + 0.5) * (_HIST_HI - _HIST_LO) / _HIST_BINS
    nz = hist > 0
    centres, weights = centres[nz], hist[nz] / hist.sum()
    lo, hi = -60.0, 60.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        rate = float(np.dot(weights, 1.0 / (1.0 + np.exp(-np.clip(mid + centres, -_LOGIT_CLIP, _LOGIT_CLIP)))))
        if rate < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------------------------- formatting


def _hash32(idx: np.ndarray, salt: np.uint32) -> np.ndarray:
    """lowbias32 (a bijection of uint32) of ``idx XOR salt``."""
    x = idx.astype(np.uint32) ^ salt
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def _hex_column(idx: np.ndarray, salt: np.uint32, missing: np.ndarray) -> List[str]:
    codes = _HEX_CODES[(_hash32(idx, salt)[:, None] >> _NIBBLE_SHIFTS) & np.uint32(0xF)]
    codes[missing] = 0  # a string of NULs reads back as ""
    return np.ascontiguousarray(codes).view("<U8").ravel().tolist()


def _int_column(x: np.ndarray, missing: np.ndarray) -> List[str]:
    out = np.empty(x.shape[0], dtype=object)
    small = (x >= _INT_LUT_LO) & (x < _INT_LUT_HI)
    out[small] = _INT_LUT[x[small] - _INT_LUT_LO]
    big = ~small
    if big.any():
        out[big] = [str(v) for v in x[big].tolist()]
    out[missing] = ""
    return out.tolist()


_LABEL_STRINGS = np.array(["0", "1"], dtype=object)


def _format_chunk(model: _Model, rows: _Rows, labels: np.ndarray, strip: np.ndarray) -> str:
    columns = [_LABEL_STRINGS[labels].tolist()]
    for j in range(len(DENSE_FIELDS)):
        columns.append(_int_column(rows.dense[:, j], rows.dense_missing[:, j]))
    for f in range(len(CATEGORICAL_FIELDS)):
        idx = rows.cat[:, f]
        columns.append(_hex_column(idx, model.salt[f], idx == model.vocab[f]))
    lines = list(map("\t".join, zip(*columns)))
    for i in np.flatnonzero(strip).tolist():
        lines[i] = lines[i].rstrip("\t")
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- public API


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
    model = _build_model(cfg.seed, cfg.vocab_scale)

    # Scales of the two parts of the logit, measured on an independent calibration sample.
    first, second = _logit_parts(model, _draw_rows(model, np.random.default_rng([cfg.seed, 4]), CALIBRATION_ROWS))
    model.first_scale = FIRST_ORDER_SD / max(float(first.std()), 1e-12)
    model.second_scale = INTERACTION_SD / max(float(second.std()), 1e-12)

    chunks = [(c, min(CHUNK_ROWS, cfg.rows - start)) for c, start in enumerate(range(0, cfg.rows, CHUNK_ROWS))]

    # Pass 1: histogram of the realised centred logits, to fit the bias.
    hist = np.zeros(_HIST_BINS, dtype=np.int64)
    for c, n in chunks:
        z = _centred_logit(model, _draw_rows(model, np.random.default_rng([cfg.seed, 1, c]), n),
                           cfg.interaction_strength)
        b = np.clip(((z - _HIST_LO) * (_HIST_BINS / (_HIST_HI - _HIST_LO))).astype(np.int64), 0, _HIST_BINS - 1)
        hist += np.bincount(b, minlength=_HIST_BINS)
    bias = _fit_bias(hist, cfg.positive_rate)

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
            rows = _draw_rows(model, np.random.default_rng([cfg.seed, 1, c]), n)
            logit = np.clip(bias + _centred_logit(model, rows, cfg.interaction_strength), -_LOGIT_CLIP,
                            _LOGIT_CLIP)
            p = 1.0 / (1.0 + np.exp(-logit))
            labels = (np.random.default_rng([cfg.seed, 2, c]).random(n) < p).astype(np.int64)
            strip = np.random.default_rng([cfg.seed, 3, c]).random(n) < strip_trailing_share
            f_out.write(_format_chunk(model, rows, labels, strip).encode("ascii"))
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
