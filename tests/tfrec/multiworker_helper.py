"""Test helper (not a test): one SGD step of a 4-parameter model under tfrec.devices.make_strategy.

Usage: multiworker_helper.py OUT.npz. With TF_CONFIG naming several workers the strategy is
MultiWorkerMirroredStrategy; each worker reads its shard of the global batch. The weights after the step are
saved to ``tfrec.devices.worker_dir(OUT.npz)``: OUT.npz on the chief, a temporary directory on the others.
"""

import os
import sys

import numpy as np

from tfrec import devices

GLOBAL_BATCH = 8


def main(out):
    strategy = devices.make_strategy(1)  # first TensorFlow work of the process, as MWMS requires
    import tensorflow as tf
    import tf_keras as keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH, 3)).astype(np.float32)
    y = rng.normal(size=(GLOBAL_BATCH,)).astype(np.float32)
    with strategy.scope():
        model = keras.Sequential([keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(0.3),
                                                     bias_initializer=keras.initializers.Constant(-0.1))])
        model.build((None, 3))
        optimizer = keras.optimizers.SGD(0.5)

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(GLOBAL_BATCH)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(per_replica)

    batches = iter(strategy.distribute_datasets_from_function(dataset_fn))

    @tf.function
    def step():
        def replica_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(tf.square(model(xb)[:, 0] - yb), global_batch_size=GLOBAL_BATCH)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        strategy.run(replica_step, args=next(batches))

    step()
    path = devices.worker_dir(out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, kernel=model.weights[0].numpy(), bias=model.weights[1].numpy(),
             replicas=strategy.num_replicas_in_sync,
             multi_worker=isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy))


if __name__ == "__main__":
    main(sys.argv[1])
