"""Contrastive losses as plain functions on tensors: the supervised contrastive loss of Combined-Contrastive
(KDD 2024 Eq. 19, after Khosla et al. 2020)."""

from __future__ import annotations

import tensorflow as tf

from tfrec.losses.listwise import masked_logsumexp


def check_temperature(temperature: float) -> float:
    """Validates a ``temperature`` argument (> 0); returns it as a float."""
    if not float(temperature) > 0.0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
    return float(temperature)


def supervised_contrastive(labels: tf.Tensor, embeddings: tf.Tensor, temperature: float = 0.4,
                           normalize: bool = True) -> tf.Tensor:
    """Supervised contrastive loss over the batch, KDD 2024 Eq. 19.

    ```
    L = 1/N * sum_{i in V} -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )
    ```

    ``V`` = the batch's valid (non-padding) samples, ``N = |V|``, ``A(i) = V \\ {i}``,
    ``P(i) = {p in A(i): y_p = y_i}``, ``z_i`` the sample's embedding (the model's penultimate representation).

    Readings (stated because Eq. 19 leaves them open):

    * an anchor whose ``P(i)`` is empty (the only sample of its class) contributes 0 and still counts in ``N``
      (Eq. 19's ``1/|N|`` runs over all samples); a batch with one class only still has a loss (every anchor has
      positives, the denominators have only them);
    * ``normalize=True`` L2-normalises the embeddings first, so ``z_i . z_a`` is a cosine similarity: the
      supervised contrastive learning the paper builds on works on the unit sphere, Eq. 19 leaves it implicit;
      ``normalize=False`` uses the raw embeddings;
    * unweighted: Eq. 19 has no sample weights (the ``weight`` feature is not used).

    Computed with a masked log-sum-exp over each row of the ``N x N`` similarity matrix (memory ``O(N^2)``: 64 MiB
    at a batch of 4096 in float32), finite for any finite similarity. With ``s_ij = z_i . z_j / tau``,
    ``r_ij = softmax_{a in A(i)}(s_i)_j`` and ``G_ij = [P(i) != {}] (r_ij - [j in P(i)] / |P(i)|) / N``:
    ``dL/ds_ij = G_ij`` and, without normalisation, ``dL/dz = (G + G^T) z / tau``.

    Args:
      labels: ``[batch]`` class labels (0 / 1); labels < 0 are padding and excluded everywhere.
      embeddings: ``[batch, d]``.
      temperature: ``tau`` > 0 (the paper uses 0.4).
      normalize: L2-normalise the embeddings first.

    Returns:
      Scalar loss; 0 for a batch with fewer than two valid samples.
    """
    temperature = check_temperature(temperature)
    embeddings = tf.convert_to_tensor(embeddings)
    if embeddings.shape.rank is not None and embeddings.shape.rank != 2:
        raise ValueError(f"supervised_contrastive needs embeddings of shape [batch, d]. "
                         f"Received: shape {embeddings.shape}")
    labels = tf.reshape(tf.cast(labels, embeddings.dtype), [-1])
    valid = labels >= 0
    if normalize:
        # Zero rows stay zero (finite gradient); padding rows are masked out below.
        embeddings = tf.math.l2_normalize(embeddings, axis=1)
    sim = tf.matmul(embeddings, embeddings, transpose_b=True) / tf.constant(temperature, embeddings.dtype)
    n_rows = tf.shape(labels)[0]
    pair_valid = tf.logical_and(valid[:, tf.newaxis], valid[tf.newaxis, :])
    others = tf.logical_and(pair_valid, tf.logical_not(tf.eye(n_rows, dtype=tf.bool)))  # A(i)
    same = tf.logical_and(others, tf.equal(labels[:, tf.newaxis], labels[tf.newaxis, :]))  # P(i)
    lse = masked_logsumexp(sim, others, axis=1)  # [N]; 0 where A(i) is empty
    same_f = tf.cast(same, sim.dtype)
    n_pos = tf.reduce_sum(same_f, axis=1)
    # -log softmax on P(i) only (0 elsewhere, no gradient): sum_p (LSE_i - s_ip) / |P(i)|.
    neg_log_prob = tf.where(same, lse[:, tf.newaxis] - sim, tf.zeros_like(sim))
    per_anchor = tf.math.divide_no_nan(tf.reduce_sum(neg_log_prob, axis=1), n_pos)
    n = tf.reduce_sum(tf.cast(valid, sim.dtype))
    return tf.math.divide_no_nan(tf.reduce_sum(per_anchor), n)
