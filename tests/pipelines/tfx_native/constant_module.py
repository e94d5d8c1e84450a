"""A Trainer module for the TFX tests (not a test): run_fn exports a SavedModel that scores every example 0.5
(AUC 0.5), a model worse than any trained one.

For a point-wise or multi-task model its ``serving_default`` takes serialized ``tf.Example`` records and returns
``<task>`` and ``<task>_logit`` for each task of ``custom_config["constant_tasks"]`` (default ``["ctr"]``, the
point-wise export's; ``["ctr", "cvr"]`` stands in for a multi-task model). For a model of a list-wise family
(``custom_config["model"]["name"]``, e.g. ``three_tower``, decided by :func:`tfrec.families.family_of_model_name`)
it has the pre-ranking export's ``score_candidates`` instead: serialized ``ExampleListWithContext`` records in,
``[B, L]`` scores per task (default: the family's tasks with a label) and the lists' ``example_mask`` out."""

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


class _ConstantLists(tf.Module):
    def __init__(self, tasks):
        super().__init__()
        self.tasks = list(tasks)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lists")])
    def score_candidates(self, lists):
        import tensorflow_ranking as tfr

        parsed = tfr.data.parse_from_example_list(
            lists, list_size=None, mask_feature_name="mask",
            example_feature_spec={"sample_type": tf.io.FixedLenFeature([], tf.int64, default_value=-1)})
        mask = parsed["mask"]
        out = {task: tf.fill(tf.shape(mask), 0.5) for task in self.tasks}
        out["example_mask"] = mask
        return out


def run_fn(fn_args):
    from tfrec.families import EXAMPLE_LIST, family_of_model_name

    custom = fn_args.custom_config or {}
    name = (custom.get("model") or {}).get("name")
    fam = family_of_model_name(name) if name else None
    if fam is not None and fam.records == EXAMPLE_LIST:
        module = _ConstantLists(custom.get("constant_tasks", list(fam.task_labels)))
        signatures = {"score_candidates": module.score_candidates}
    else:
        module = _Constant(custom.get("constant_tasks", ["ctr"]))
        signatures = {"serving_default": module.serve}
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures=signatures)
