"""A Trainer module for the TFX tests (not a test): run_fn exports a SavedModel that scores every example 0.5
(AUC 0.5), a model worse than any trained one. Its outputs: ``<task>`` and ``<task>_logit`` for each task of
``custom_config["constant_tasks"]`` (default ``["ctr"]``, the point-wise export's; ``["ctr", "cvr"]`` stands in
for a multi-task model)."""

import tensorflow as tf


class _Constant(tf.Module):
    def __init__(self, tasks):
        super().__init__()
        self.tasks = list(tasks)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        n = tf.shape(examples)[0]
        out = {}
        for task in self.tasks:
            out[task], out[f"{task}_logit"] = tf.fill([n], 0.5), tf.zeros([n])
        return out


def run_fn(fn_args):
    module = _Constant((fn_args.custom_config or {}).get("constant_tasks", ["ctr"]))
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures={"serving_default": module.serve})
