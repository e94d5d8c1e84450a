r"""The generative model of the Criteo-shaped simulator (:func:`tfrec.simulation.criteo.simulate`): field
specifications, parameters, rows and their true logit.

Rows are independent. The parameters below are drawn once from ``default_rng([seed, 0])``; the rows of chunk
``c`` (blocks of :data:`~tfrec.simulation.criteo.CHUNK_ROWS` rows) from ``default_rng([seed, 1, c])``, their
labels from ``default_rng([seed, 2, c])`` and the choice of stripped lines from ``default_rng([seed, 3, c])``. Field
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
:data:`~tfrec.simulation.criteo.CALIBRATION_ROWS` rows (``default_rng([seed, 4])``), so ``sd(first order) ~
sigma_F`` and ``sd(second order) ~ interaction_strength * sigma_H`` whatever the draw of the parameters
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

Rows are produced in chunks of :data:`~tfrec.simulation.criteo.CHUNK_ROWS`, so memory is bounded for any
``rows`` (about 16 bytes per vocabulary entry plus the chunk: about 230 MB resident at the defaults), and the
output is byte-identical for an identical configuration.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Dict, List, NamedTuple

import numpy as np

from tfrec.features import CRITEO_CATEGORICAL, CRITEO_DENSE

#: Dimension of the latent vectors of the second-order term.
LATENT_DIM = 4
#: Target standard deviation of the first-order part of the logit (``sigma_F``).
FIRST_ORDER_SD = 0.8
#: Target standard deviation of the second-order part at ``interaction_strength = 1`` (``sigma_H``).
INTERACTION_SD = 1.3
LOGIT_CLIP = 20.0  # the logit is clipped to [-LOGIT_CLIP, LOGIT_CLIP]
HIST_LO, HIST_HI, HIST_BINS = -25.0, 25.0, 1 << 16  # histogram of logit - bias, for the bias bisection
_NEG_VALUES = np.array([-1, -2, -3], dtype=np.int64)
_NEG_CDF = np.array([0.85, 0.95, 1.0])


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


@dataclasses.dataclass
class Model:
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


def build_model(seed: int, vocab_scale: float) -> Model:
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
    return Model(vocab, cdf, salt, groups, weights, cat_latent, alpha, beta, gamma)


class Rows(NamedTuple):
    dense: np.ndarray  # (n, 13) int64 raw values (meaningless where missing)
    dense_missing: np.ndarray  # (n, 13) bool
    cat: np.ndarray  # (n, 26) int64 indices, V_f where missing


def draw_rows(model: Model, rng: np.random.Generator, n: int) -> Rows:
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
    return Rows(dense, dense_missing, cat)


def logit_parts(model: Model, rows: Rows):
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


def centred_logit(model: Model, rows: Rows, interaction_strength: float) -> np.ndarray:
    first, second = logit_parts(model, rows)
    return model.first_scale * first + interaction_strength * model.second_scale * second


def fit_bias(hist: np.ndarray, target: float) -> float:
    centres = HIST_LO + (np.arange(HIST_BINS) + 0.5) * (HIST_HI - HIST_LO) / HIST_BINS
    nz = hist > 0
    centres, weights = centres[nz], hist[nz] / hist.sum()
    lo, hi = -60.0, 60.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        rate = float(np.dot(weights, 1.0 / (1.0 + np.exp(-np.clip(mid + centres, -LOGIT_CLIP, LOGIT_CLIP)))))
        if rate < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
