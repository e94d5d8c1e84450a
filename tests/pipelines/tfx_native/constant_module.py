"""A Trainer module for the TFX tests (not a test): run_fn exports a SavedModel that scores every example 0.5
(AUC 0.5), a model worse than any trained one."""

import tensorflow as tf


class _Constant(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        n = tf.shape(examples)[0]
        return {"ctr": tf.fill([n], 0.5), "ctr_logit": tf.zeros([n])}


def run_fn(fn_args):
    module = _Constant()
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures={"serving_default": module.serve})
