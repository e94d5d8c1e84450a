"""Test Trainer module (not a test): run_fn writes a SavedModel that scores every example 0.5 (AUC 0.5)."""

import tensorflow as tf


class _Constant(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        n = tf.shape(examples)[0]
        return {"ctr": tf.fill([n, 1], 0.5), "ctr_logit": tf.zeros([n, 1])}


def run_fn(fn_args):
    module = _Constant()
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures={"serving_default": module.serve})
