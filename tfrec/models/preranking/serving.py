"""Serving functions of the Three-Tower pre-ranking model: raw serialized requests in, embeddings and scores out.

The three pre-ranking signatures (``export.signatures``' extension point, :meth:`ThreeTower.extra_serving_signatures`)
and the point-wise pieces the stock signatures use. Everything parses raw values (strings, prices) with the
model's own parse specs, and the towers hash them, so the SavedModel holds every feature transform:

* ``user_embedding``: ``examples`` string ``[N]``, serialized context ``tf.Example`` (``user_id``, ``user_segment``,
  ``scenario`` one bytes value each; ``click_history`` and ``click_history_category`` any number) -> per task ``t``:
  ``t`` float32 ``[N, output_dim]``, the user tower's embedding ``u^t``;
* ``item_embedding``: ``examples`` string ``[N]``, serialized item ``tf.Example`` (``item_id``, ``category``
  bytes, ``price`` float) -> ``embedding`` float32 ``[N, output_dim]``, ``i_j`` (section 3.1.1: precomputable);
* ``score_candidates``: ``lists`` string ``[B]``, one serialized ``ExampleListWithContext`` per request (context:
  the context features above; examples: one item ``tf.Example`` per candidate) -> per task ``t``: ``t`` (``p_t``)
  and ``t_logit`` (``logit_t = 2 sigmoid(c_t) u^t . i_j``) float32 ``[B, L]`` and ``example_mask`` int32 ``[B, L]``,
  ``L`` the longest list of the batch; padded slots (mask 0) score 0. The user tower runs once per request.
* point-wise rows (``serving_default``, ``classification``, ``regression``): one ``tf.Example`` per (request,
  candidate) holding the context and the item features -> ``t`` / ``t_logit`` ``[N]``.

Missing features parse as the training reader's padding does: strings ``""``, ``price`` 0. Features a request
carries beyond these (labels, orders of the dataset's lists) are ignored.
"""

from __future__ import annotations

from typing import Dict, Tuple

import tensorflow as tf

from tfrec.features import MISSING_CATEGORICAL, ListwiseSchema
from tfrec.models.preranking.towers import CONTEXT, HISTORY, ITEM

PRICE = "price"
ITEM_FEATURES = ITEM + (PRICE,)
MASK = "example_mask"
EXAMPLES, LISTS, EMBEDDING = "examples", "lists", "embedding"
USER_EMBEDDING, ITEM_EMBEDDING, SCORE_CANDIDATES = "user_embedding", "item_embedding", "score_candidates"
PREDICT_METHOD = "tensorflow/serving/predict"  # TF Serving's Predict method name (as export.signatures spells it)


def context_spec() -> Dict[str, object]:
    """Parse spec of the context ``tf.Example``: one string per context feature, string sequences."""
    spec: Dict[str, object] = {f: tf.io.FixedLenFeature([], tf.string, default_value=MISSING_CATEGORICAL)
                               for f in CONTEXT}
    spec.update({f: tf.io.VarLenFeature(tf.string) for f in HISTORY})
    return spec


def item_spec() -> Dict[str, object]:
    """Parse spec of an item ``tf.Example``: ``item_id``, ``category`` strings, ``price`` float (default 0)."""
    spec: Dict[str, object] = {f: tf.io.FixedLenFeature([], tf.string, default_value=MISSING_CATEGORICAL)
                               for f in ITEM}
    spec[PRICE] = tf.io.FixedLenFeature([], tf.float32, default_value=0.0)
    return spec


def _dense(parsed: Dict[str, object]) -> Dict[str, tf.Tensor]:
    return {k: (tf.sparse.to_dense(v, default_value=MISSING_CATEGORICAL) if isinstance(v, tf.SparseTensor) else v)
            for k, v in parsed.items()}


def model_schema(tasks, name: str = "preranking") -> ListwiseSchema:
    """The :class:`ListwiseSchema` of the features the model reads (for an export without the dataset's)."""
    return ListwiseSchema(name=name, context_categorical=CONTEXT, context_int=(), context_sequences=HISTORY,
                          item_categorical=ITEM, item_dense=(PRICE,), tasks=tuple(tasks))


def check_schema(schema: ListwiseSchema) -> None:
    """Raises ValueError when the dataset's schema lacks a model feature or stores it with another kind."""
    wanted = {"context_categorical": CONTEXT, "context_sequences": HISTORY, "item_categorical": ITEM,
              "item_dense": (PRICE,)}
    missing = sorted(f for kind, names in wanted.items() for f in names if f not in getattr(schema, kind))
    if missing:
        raise ValueError(f"the schema {schema.name!r} lacks the pre-ranking model's features {missing} "
                         f"(or stores them with another kind)")


class ServingFunctions:
    """The parse and score functions behind the pre-ranking signatures (module docstring). Each works eagerly and
    inside a ``tf.function``; :meth:`signatures` wraps them with their input signatures.

    Args:
      model: a built :class:`tfrec.models.preranking.ThreeTower`.
    """

    def __init__(self, model):
        self.model = model
        self.tasks = list(model.tasks)

    # ------------------------------------------------------------------------------------------ parsing

    def parse_context(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``[N]`` serialized context examples -> context features ``[N]``, sequences ``[N, H]`` (``""`` padded)."""
        return _dense(tf.io.parse_example(serialized, context_spec()))

    def parse_items(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``[N]`` serialized item examples -> ``item_id``, ``category``, ``price`` ``[N]``."""
        return tf.io.parse_example(serialized, item_spec())

    def parse_rows(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``[N]`` serialized point-wise rows (context and item features in one example) -> raw features."""
        return _dense(tf.io.parse_example(serialized, {**context_spec(), **item_spec()}))

    def parse_lists(self, serialized: tf.Tensor) -> Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor], tf.Tensor]:
        """``[B]`` serialized ``ExampleListWithContext`` -> (context ``[B]``, items ``[B, L]``, mask ``[B, L]``), with
        TF-Ranking's parser (``DecodeProtoV2`` with the message's descriptor inlined: stock ops only)."""
        import tensorflow_ranking as tfr

        parsed = _dense(tfr.data.parse_from_example_list(serialized, list_size=None,
                                                         context_feature_spec=context_spec(),
                                                         example_feature_spec=item_spec(), mask_feature_name=MASK))
        return ({f: parsed[f] for f in CONTEXT + HISTORY}, {f: parsed[f] for f in ITEM_FEATURES}, parsed[MASK])

    # ------------------------------------------------------------------------------------------ outputs

    def user_embedding(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``{task: [N, output_dim]}`` of serialized context examples."""
        user = self.model.user_embedding(self.parse_context(serialized), training=False)
        return {t: tf.ensure_shape(user[t], [None, self.model.output_dim]) for t in self.tasks}

    def item_embedding(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``{"embedding": [N, output_dim]}`` of serialized item examples."""
        emb = self.model.item_embedding(self.parse_items(serialized), training=False)
        return {EMBEDDING: tf.ensure_shape(emb, [None, self.model.output_dim])}

    def score_candidates(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        """``{t, t_logit: [B, L] float32, example_mask: [B, L] int32}`` of serialized example lists."""
        context, items, mask = self.parse_lists(serialized)
        out = self.model.score(context, items, training=False)
        result = {MASK: tf.ensure_shape(tf.cast(mask, tf.int32), [None, None])}
        for t in self.tasks:
            for name, key in ((t, t), (f"{t}_logit", f"logit_{t}")):
                value = tf.where(mask, out[key], tf.zeros_like(out[key]))
                result[name] = tf.ensure_shape(value, [None, None])
        return result

    def predict_rows(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Raw point-wise features (context ``[N]``, sequences ``[N, H]``, items ``[N]``) -> ``{t, t_logit: [N]}``;
        each row is a request with one candidate."""
        context = {f: features[f] for f in CONTEXT + HISTORY}
        items = {f: tf.reshape(features[f], [-1, 1]) for f in ITEM_FEATURES}
        out = self.model.score(context, items, training=False)
        result = {}
        for t in self.tasks:
            result[t] = tf.ensure_shape(tf.reshape(out[t], [-1]), [None])
            result[f"{t}_logit"] = tf.ensure_shape(tf.reshape(out[f"logit_{t}"], [-1]), [None])
        return result

    def raw_spec(self) -> Dict[str, tf.TensorSpec]:
        """Inputs of ``predict_raw``: context and item features ``[-1]``, sequences ``[-1, -1]`` (``""`` padded)."""
        spec = {f: tf.TensorSpec([None], tf.string, name=f) for f in CONTEXT}
        spec.update({f: tf.TensorSpec([None, None], tf.string, name=f) for f in HISTORY})
        spec.update({f: tf.TensorSpec([None], tf.string, name=f) for f in ITEM})
        spec[PRICE] = tf.TensorSpec([None], tf.float32, name=PRICE)
        return spec

    # ------------------------------------------------------------------------------------------ signatures

    def signatures(self):
        """``{name: (tf.function, method name)}`` of ``user_embedding``, ``item_embedding``, ``score_candidates``
        (traced without AutoGraph, as the stock signatures are)."""
        examples = tf.TensorSpec([None], tf.string, name=EXAMPLES)
        lists = tf.TensorSpec([None], tf.string, name=LISTS)

        @tf.function(input_signature=[examples], autograph=False)
        def user_embedding(examples):
            return self.user_embedding(examples)

        @tf.function(input_signature=[examples], autograph=False)
        def item_embedding(examples):
            return self.item_embedding(examples)

        @tf.function(input_signature=[lists], autograph=False)
        def score_candidates(lists):
            return self.score_candidates(lists)

        return {USER_EMBEDDING: (user_embedding, PREDICT_METHOD), ITEM_EMBEDDING: (item_embedding, PREDICT_METHOD),
                SCORE_CANDIDATES: (score_candidates, PREDICT_METHOD)}

    def eager(self, name: str, serialized) -> Dict[str, tf.Tensor]:
        """The Keras model's answer to one of the three signatures, computed eagerly (for validation)."""
        fn = {USER_EMBEDDING: self.user_embedding, ITEM_EMBEDDING: self.item_embedding,
              SCORE_CANDIDATES: self.score_candidates}.get(name)
        if fn is None:
            raise KeyError(f"no pre-ranking signature {name!r}")
        return fn(tf.constant(list(serialized), tf.string))
