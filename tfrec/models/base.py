"""The base of tfrec's Keras models: one overridable place that computes the loss.

A model's ``call`` returns a dict (at least ``logit`` and ``probability``; ``embedding`` where a loss needs the
penultimate representation). Training uses Keras' own ``fit`` loop (so tf.distribute, callbacks and
checkpoints work unchanged); this class only overrides ``compute_loss`` and ``compute_metrics``:

* ``compute_loss`` calls the loss given to ``compile(loss=...)`` (a ``tfrec.losses.Loss``) on the whole output
  dict, adds the regularisation losses, reports ``loss``, ``regularization_loss`` and ``total_loss``, and
  divides the optimised value by the number of replicas (gradients are summed over replicas);
* ``compute_metrics`` updates AUC and logloss, unweighted and weighted by the ``weight`` feature.

The streaming AUC here uses 10,000 thresholds: it is the training logs' running AUC. The validation metrics that
pick the best weights, lower the learning rate and stop early are replaced by the exact NumPy metrics of
``tfrec.metrics`` on the validation predictions (``tfrec.callbacks.ExactValidation``): with predictions in a narrow
range the bucketed AUC is far from the exact one.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf
import tf_keras as keras

from tfrec.losses import Loss
from tfrec.metrics.gradients import diagnostic_step


class RankingModel(keras.Model):
    """Base class of tfrec's single-task models. Subclasses implement ``call`` returning a dict of outputs."""

    #: The model family (``tfrec.families``): how the model trains, evaluates and exports. A subclass of another
    #: family sets its own.
    family = "pointwise"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.regularization_tracker = keras.metrics.Mean(name="regularization_loss")
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.auc_metric = keras.metrics.AUC(num_thresholds=10000, name="auc")
        self.weighted_auc_metric = keras.metrics.AUC(num_thresholds=10000, name="weighted_auc")
        self.logloss_metric = keras.metrics.Mean(name="logloss")
        self.weighted_logloss_metric = keras.metrics.Mean(name="weighted_logloss")

    def input_signature(self) -> Dict[str, tf.TensorSpec]:
        """Feature name -> ``TensorSpec([None], dtype)`` of the raw inputs (used to build and to export)."""
        raise NotImplementedError

    def build_from_config(self, config):
        # Keras' default builds with float placeholders; tfrec models take typed raw features.
        inputs = {name: tf.zeros([1], spec.dtype) if spec.dtype != tf.string else tf.constant([""])
                  for name, spec in self.input_signature().items()}
        self(inputs, training=False)

    @property
    def metrics(self):
        return [self.loss_tracker, self.regularization_tracker, self.total_loss_tracker,
                *getattr(self, "_component_trackers", {}).values(), self.auc_metric,
                self.weighted_auc_metric, self.logloss_metric, self.weighted_logloss_metric]

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Keras' ``compile``; a tfrec loss's state is created under the model's strategy and tracked (so
        checkpoints and ``BackupAndRestore`` carry it), and each component of a combined loss gets a tracker."""
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
        self._component_trackers = {}
        if isinstance(loss, Loss):
            with self.distribute_strategy.scope():
                loss.create_state()
                self._component_trackers = {c: keras.metrics.Mean(name=f"{c}_loss") for c in loss.components}
            state = loss.state()
            if state is not None:
                self.loss_state = state

    def compile_from_config(self, config):
        """Re-compiles a loaded model (``.keras``) with its saved optimizer and loss through :meth:`compile`.

        Keras skips this for models that override ``compile``; tfrec's override only adds the loss state and the
        component trackers, so the saved compile config applies unchanged. A stateful loss starts from its
        initial state (the state lives in training checkpoints, not in the ``.keras`` file)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built and hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_variables)

    def enable_gradient_diagnostics(self, enabled: bool = True) -> None:
        """Switches the per-batch gradient diagnostics of ``train_step`` (``tfrec.metrics.gradients``) on or off.

        The switch is read when the train function is traced; changing it drops the cached train function so
        the next ``fit`` traces a new one.
        """
        enabled = bool(enabled)
        if enabled != self.gradient_diagnostics_enabled:
            self._gradient_diagnostics = enabled
            self.train_function = None

    @property
    def gradient_diagnostics_enabled(self) -> bool:
        return bool(getattr(self, "_gradient_diagnostics", False))

    def diagnostic_variables(self) -> Dict[str, tuple]:
        """Name -> tuple of variables whose joint gradient norm the diagnostics report as ``grad_norm_<name>``
        (ordered; none by default, models override)."""
        return {}

    # train_step and test_step are traced without AutoGraph (their Python control flow is on Python values,
    # and the losses and layers they call use TensorFlow ops for tensor-dependent branches): converting the
    # call tree's source costs more than the rest of the first trace (measured: 27 s of CPU vs 3 s for DCN V2).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        """Keras' train step, plus the loss's per-step state update (once per global step).

        With :meth:`enable_gradient_diagnostics` on, the logs also carry the gradient diagnostics of the step
        (``grad_neg_*``, ``grad_pos_*``, ``grad_norm_*``; see ``tfrec.metrics.gradients``)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        diagnostics = {}
        if self.gradient_diagnostics_enabled:
            # The head's raw output: JRC's two logits where the model returns them (a loss may use them directly,
            # bypassing the derived `logit`), else `logit`.
            logit = y_pred["logits"] if "logits" in y_pred else y_pred["logit"]
            diagnostics = diagnostic_step(self.optimizer, loss, tape, self.trainable_variables, logit, y,
                                          self.diagnostic_variables())
        else:
            self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        self.on_train_step_end()
        logs = self.compute_metrics(x, y, y_pred, sample_weight)
        return {**logs, **diagnostics} if diagnostics else logs

    def on_train_step_end(self) -> None:
        """Runs after each optimizer step (replica context): the compiled tfrec loss's state update. Models that
        own their losses override it to update their losses' state."""
        if isinstance(self.loss, Loss):
            self.loss.on_train_step_end()

    def loss_count(self, y) -> tf.Tensor:
        """The weight of the replica's batch in the loss trackers: its number of valid samples (label >= 0)."""
        return tf.reduce_sum(tf.cast(tf.reshape(y, [-1]) >= 0, tf.float32))

    def task_loss(self, y: tf.Tensor, y_pred: Dict[str, tf.Tensor], sample_weight) -> tf.Tensor:
        """The loss of one replica's batch (override for multi-output losses)."""
        if not isinstance(self.loss, Loss):
            raise ValueError("compile the model with a tfrec loss: model.compile(optimizer, "
                             f"loss=tfrec.losses.get(name)). Received: loss={self.loss!r}")
        return self.loss(y, y_pred, sample_weight)

    def task_loss_terms(self, y, y_pred, sample_weight):
        """``(loss, {component: term})`` of one replica's batch; the components of a combined tfrec loss."""
        if isinstance(self.loss, Loss) and self.loss.components:
            with tf.name_scope(self.loss.name):
                return self.loss.compute_terms(y, y_pred, sample_weight)
        return self.task_loss(y, y_pred, sample_weight), {}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        task, terms = self.task_loss_terms(y, y_pred, sample_weight)
        reg = tf.add_n([tf.cast(l, task.dtype) for l in self.losses]) if self.losses else tf.zeros_like(task)
        total = task + reg
        # Weighted by the replica's number of valid samples: an evaluation batch can leave a replica empty, and
        # its (zero) loss must not count as a batch.
        n = tf.cast(self.loss_count(y), task.dtype)
        self.loss_tracker.update_state(task, sample_weight=n)
        self.regularization_tracker.update_state(reg, sample_weight=n)
        self.total_loss_tracker.update_state(total, sample_weight=n)
        for name, term in terms.items():
            tracker = getattr(self, "_component_trackers", {}).get(name)
            if tracker is not None:
                tracker.update_state(term, sample_weight=n)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / tf.cast(replicas, total.dtype)

    def compute_metrics(self, x, y, y_pred, sample_weight):
        y = tf.reshape(tf.cast(y, tf.float32), [-1])
        p = tf.reshape(y_pred["probability"], [-1])
        w = tf.ones_like(y) if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        valid = y >= 0
        y, p, w = tf.boolean_mask(y, valid), tf.boolean_mask(p, valid), tf.boolean_mask(w, valid)
        self.auc_metric.update_state(y, p)
        self.weighted_auc_metric.update_state(y, p, sample_weight=w)
        eps = 1e-7
        pc = tf.clip_by_value(p, eps, 1.0 - eps)
        ll = -(y * tf.math.log(pc) + (1.0 - y) * tf.math.log(1.0 - pc))
        self.logloss_metric.update_state(ll)
        self.weighted_logloss_metric.update_state(ll, sample_weight=w)
        return {m.name: m.result() for m in self.metrics}

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        self.compute_loss(x, y, y_pred, sample_weight)
        return self.compute_metrics(x, y, y_pred, sample_weight)
