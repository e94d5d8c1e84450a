"""HCCP's contrastive losses as plain functions on tensors: Margin InfoNCE (Eq. 5, Algorithm 1) and InfoNCE.

Layout (Algorithm 1's): a batch of ``B`` requests with ``K`` sample slots each, flattened row-major to ``[B*K]``.
Each slot holds the dot product ``logits = u . i`` of the request's user embedding and the slot's item embedding
(``u_norm = ||u||``, ``i_norm = ||i||``) and belongs to at most one role, given by three boolean masks:
``p_mask`` (positives ``B^t``: impressions with the task's label 1), ``n_hard_mask`` (hard negatives
``B^h = B^r u B^p``: N2 unexposed ranking and N3 pre-ranking candidates) and ``n_easy_mask`` (easy negatives
``B^e = B^i u B^c``: N4 in-batch and N5 pool negatives). Each positive is contrasted with the hard and easy
negatives of its own row (request) only, so under a distribution strategy a replica's rows hold everything their
loss needs (replica pairing is exact; in-batch negatives N4 are built by the model into the slots of each row).

Both functions return Algorithm 1's ``tf.reduce_sum`` over the positives of the batch, i.e. ``|U|`` times the
Eq. 5 value with ``|U| = B``; the Keras classes in :mod:`tfrec.losses.classes.preranking` divide by ``B``.
"""

from __future__ import annotations

from typing import Union

import tensorflow as tf

IntLike = Union[int, tf.Tensor]


def margin_info_nce(logits: tf.Tensor, u_norm: tf.Tensor, i_norm: tf.Tensor, p_mask: tf.Tensor,
                    n_hard_mask: tf.Tensor, n_easy_mask: tf.Tensor, B: IntLike, K: IntLike, margin: float,
                    beta: Union[float, tf.Tensor], temperature: float, neg_min: float) -> tf.Tensor:
    """Margin InfoNCE, HCCP Eq. 5, computed as Algorithm 1 (line by line; the line numbers are in the code).

    ```
    L_neg = -1/|U| sum_{u in U} sum_{j in B^t_u} log( e^{v_j phi(theta_j)/tau} /
              ( e^{v_j phi(theta_j)/tau} + sum_{i in B^h_u} e^{v_i phi(theta_i)/tau}
                + sum_{k in B^e_u} e^{v_k cos(theta_k)/tau} ) )
    v = ||u|| ||i||,  cos(theta) = u.i / v,  phi(theta) = cos(theta) - m
    ```

    so ``v phi(theta) = u.i - m v``: the margin lowers the logits of the positives and of the hard negatives by
    ``m ||u|| ||i||``; easy negatives keep their raw logit (relative to the positive they are pushed a margin
    further away). Algorithm 1 blends the margin logits with the raw ones for stability,
    ``l_update = (logits_m + beta * logits) / (1 + beta)``: ``beta -> 0`` gives Eq. 5, ``beta -> inf`` gives plain
    InfoNCE (:func:`info_nce`). Line 5, ``beta *= scale``, is the training schedule's state update: a plain
    function cannot carry state across steps, so the caller passes the current ``beta`` (the Keras class
    :class:`tfrec.losses.classes.preranking.MarginInfoNCE` holds it in a variable, reads it here, and multiplies
    it by ``scale`` once per optimizer step). Gradients flow into ``u_norm`` and ``i_norm`` too (through the
    margin term ``-m v``), as in the pseudocode (no stop-gradient).

    Gradient on a hard negative's logit ``y_n`` (beta = 0), HCCP Eq. 10 written with Eq. 5's logits: for each
    positive ``j`` of the row, ``dL_j/dy_n = (1/tau) e^{(y_n - m v_n)/tau} / D_j`` with
    ``D_j = e^{(y_j - m v_j)/tau} + sum_{i in B^h} e^{(y_i - m v_i)/tau} + sum_{k in B^e} e^{y_k/tau}`` (a softmax
    probability over ``tau``). The appendix's second lines of Eq. 9-10 shift the exponents by ``m v_j`` with
    signs that do not follow from Eq. 5 (``y_i - m(v_j - v_i)`` for hard negatives, and easy negatives left
    unshifted); tfrec follows Eq. 5 and Algorithm 1, and tests the gradient in the form above.

    ``neg_min`` fills the slots that are not of the role a line selects; after the division by the temperature
    ``exp((neg_min - max)/tau)`` must underflow to exactly 0 (e.g. ``neg_min = -1e9`` in float32: any logit above
    ``neg_min + 104 * tau`` then excludes the fill exactly, and a finite value never makes ``-inf - (-inf)``).

    Args:
      logits: ``[B*K]`` dot products ``u . i``.
      u_norm: ``[B*K]`` user embedding norms (the row's user, repeated over its slots).
      i_norm: ``[B*K]`` item embedding norms.
      p_mask, n_hard_mask, n_easy_mask: ``[B*K]`` bool role masks (disjoint).
      B, K: batch size (requests) and slots per request.
      margin: the additive margin ``m`` (HCCP: 0.9).
      beta: the blend coefficient of line 4 (a float or a scalar tensor / variable).
      temperature: ``tau`` (HCCP: 0.1).
      neg_min: the fill value of lines 6-8.

    Returns:
      ``tf.reduce_sum`` of the per-positive losses (line 13): ``B`` times Eq. 5's ``L_neg``; 0 with no positive.
    """
    logits = tf.convert_to_tensor(logits)
    dtype = logits.dtype
    u_norm = tf.cast(u_norm, dtype)
    i_norm = tf.cast(i_norm, dtype)
    beta = tf.cast(beta, dtype)
    p_mask, n_hard_mask, n_easy_mask = (tf.cast(m, tf.bool) for m in (p_mask, n_hard_mask, n_easy_mask))
    # 1: function Cal_Margin_InfoNCE_Loss()
    # 2: cos_theta = logits / (u_norm * i_norm + 1e-10)                       (cos(theta) of Eq. 5)
    cos_theta = logits / (u_norm * i_norm + 1e-10)
    # 3: logits_m = (cos_theta - margin) * (u_norm * i_norm + 1e-10)          (v * phi(theta) of Eq. 5)
    logits_m = (cos_theta - margin) * (u_norm * i_norm + 1e-10)
    # 4: l_update = (logits_m + beta * logits) / (1 + beta)                   (blend for stability)
    l_update = (logits_m + beta * logits) / (1 + beta)
    # 5: beta *= scale  -- the schedule's state update, done by the caller once per step (see the docstring).
    # 6: l_p = reshape(where(p_mask, l_update, fill(neg_min)), [-1, 1])      ([B*K, 1])
    l_p = tf.reshape(tf.where(p_mask, l_update, tf.fill(tf.shape(p_mask), tf.cast(neg_min, dtype))), [-1, 1])
    # 7: l_n_hard = where(n_hard_mask, l_update, fill(neg_min))              (margin on hard negatives)
    l_n_hard = tf.where(n_hard_mask, l_update, tf.fill(tf.shape(n_hard_mask), tf.cast(neg_min, dtype)))
    # 8: l_n_easy = where(n_easy_mask, logits, fill(neg_min))                (easy negatives: raw logits)
    l_n_easy = tf.where(n_easy_mask, logits, tf.fill(tf.shape(n_easy_mask), tf.cast(neg_min, dtype)))
    # 9: l_n = concat([reshape(l_n_hard, [B, K]), reshape(l_n_easy, [B, K])], axis=1)   ([B, 2K])
    l_n = tf.concat([tf.reshape(l_n_hard, [B, K]), tf.reshape(l_n_easy, [B, K])], axis=1)
    # 10: l_n = reshape(repeat(reshape(l_n, [B, 1, 2K]), repeats=K, axis=1), [-1, 2K])  ([B*K, 2K]; the paper's
    #     [B, 1, K] is a typo: l_n is [B, 2K] after line 9)
    l_n = tf.reshape(tf.repeat(tf.reshape(l_n, [B, 1, 2 * K]), repeats=K, axis=1), [-1, 2 * K])
    # 11: l_all = gather_nd(concat([l_p, l_n], axis=1), where(p_mask))       ([num_positives, 2K + 1])
    l_all = tf.gather_nd(tf.concat([l_p, l_n], axis=1), tf.where(p_mask))
    # 12: loss = -log_softmax(l_all / t)[:, 0]                                (column 0: the positive)
    loss = -tf.nn.log_softmax(l_all / temperature)[:, 0]
    # 13: return reduce_sum(loss)
    return tf.reduce_sum(loss)
    # 14: end function


def info_nce(logits: tf.Tensor, p_mask: tf.Tensor, n_hard_mask: tf.Tensor, n_easy_mask: tf.Tensor, B: IntLike,
             K: IntLike, temperature: float, neg_min: float) -> tf.Tensor:
    """Plain InfoNCE over the same positives and negatives as :func:`margin_info_nce`, without the margin.

    ```
    L = -1/|U| sum_{u in U} sum_{j in B^t_u} log( e^{y_j/tau} / ( e^{y_j/tau} + sum_{i in B^h_u u B^e_u} e^{y_i/tau} ) )
    ```

    with ``y = u . i`` the raw logits. This is HCCP's "w/o Margin" ablation (InfoNCE on N2-N5 with no
    distinction between hard and easy negatives) and the ``beta -> inf`` limit of Algorithm 1's blend. Same
    layout and same ``reduce_sum`` (``B`` times the per-request mean) as :func:`margin_info_nce`, computed with
    Algorithm 1's lines 6-13 on the raw logits, so the two can be compared for speed on equal terms.

    Returns:
      The sum over the positives of the batch; 0 with no positive.
    """
    logits = tf.convert_to_tensor(logits)
    dtype = logits.dtype
    p_mask, n_hard_mask, n_easy_mask = (tf.cast(m, tf.bool) for m in (p_mask, n_hard_mask, n_easy_mask))
    fill = tf.fill(tf.shape(logits), tf.cast(neg_min, dtype))
    l_p = tf.reshape(tf.where(p_mask, logits, fill), [-1, 1])
    l_n_hard = tf.where(n_hard_mask, logits, fill)
    l_n_easy = tf.where(n_easy_mask, logits, fill)
    l_n = tf.concat([tf.reshape(l_n_hard, [B, K]), tf.reshape(l_n_easy, [B, K])], axis=1)
    l_n = tf.reshape(tf.repeat(tf.reshape(l_n, [B, 1, 2 * K]), repeats=K, axis=1), [-1, 2 * K])
    l_all = tf.gather_nd(tf.concat([l_p, l_n], axis=1), tf.where(p_mask))
    loss = -tf.nn.log_softmax(l_all / temperature)[:, 0]
    return tf.reduce_sum(loss)
