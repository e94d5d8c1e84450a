"""Losses under MirroredStrategy: a 2-replica step equals the 1-device step with the same global batch.

Point-wise losses get this from the model's 1/replicas scaling; in-batch losses get it with ``pairing="global"``
(all-gather across replicas). ``pairing="replica"`` pairs within each replica's slice, which is a different loss:
checked to differ, so the global mode is shown to matter. Every registered point-wise / pairwise / list-wise loss
is covered (the test fails when a new loss is registered without a spec in ``tests/tfrec/losses/loss_probe.py``).
"""

import inspect

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfrec import losses
from tfrec import devices
from tfrec.devices import make_strategy
from tfrec.losses import base as losses_base
from tfrec.losses import distributed

from tests.tfrec.losses.loss_probe import SPECS, PointProbe

# Per-request (list-per-row) losses: their fit and 2-replica tests are in test_losses_listmle / test_losses_infonce
# (the COPR and Rethink losses: test_losses_cascade_baselines).
PRERANKING = {"list_mle", "info_nce", "margin_info_nce", "copr_pairwise", "rethink_listwise", "ranker_distillation"}


def _takes_pairing(name):
    return "pairing" in inspect.signature(losses_base._lookup(name).__init__).parameters


def _step(name, params, batch, replicas, init):
    strategy = make_strategy(replicas)
    assert strategy.num_replicas_in_sync == replicas
    with strategy.scope():
        model = PointProbe()
        model(batch[0])
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=losses.get(name, **params))
    ds = tf.data.Dataset.from_tensors(tuple(tf.constant(t) if not isinstance(t, dict) else
                                            {k: tf.constant(v) for k, v in t.items()} for t in batch))
    hist = model.fit(strategy.experimental_distribute_dataset(ds), epochs=1, steps_per_epoch=1, verbose=0)
    return model.get_weights(), hist.history["loss"][0]


def test_every_registered_loss_has_a_spec():
    missing = sorted(set(losses.names()) - set(SPECS) - PRERANKING)
    assert not missing, f"add these losses to tests/tfrec/losses/loss_probe.py SPECS: {missing}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_two_replicas_equal_one_device(name):
    params, make_batch = SPECS[name]
    params = dict(params)
    if _takes_pairing(name):
        params["pairing"] = "global"
    batch = make_batch(64, seed=3)
    probe = PointProbe()
    probe(batch[0])
    init = probe.get_weights()
    one, loss_one = _step(name, params, batch, 1, init)
    two, loss_two = _step(name, params, batch, 2, init)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(one, init))
    assert moved > 1e-5, "the step did not change the weights"
    assert loss_two == pytest.approx(loss_one, rel=1e-5, abs=1e-6)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["rank_net", "list_net", "supervised_contrastive"])
def test_replica_pairing_is_a_different_loss(name):
    params, make_batch = SPECS[name]
    batch = make_batch(64, seed=3)
    probe = PointProbe()
    probe(batch[0])
    init = probe.get_weights()
    one, _ = _step(name, {**params, "pairing": "replica"}, batch, 1, init)
    two, _ = _step(name, {**params, "pairing": "replica"}, batch, 2, init)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(one, two)) > 1e-6


def test_gather_outside_a_strategy_is_the_identity_and_pairing_is_validated():
    t = tf.constant([1.0, 2.0])
    (g,) = distributed.gather([t], "global")
    np.testing.assert_array_equal(g.numpy(), t.numpy())
    assert distributed.gather([None, t], "replica")[0] is None
    with pytest.raises(ValueError, match="pairing"):
        distributed.check_pairing("batch")


def test_gather_concatenates_replica_slices_in_order():
    strategy = make_strategy(2)
    data = tf.data.Dataset.from_tensors(tf.range(6, dtype=tf.float32))

    @tf.function
    def run(x):
        return strategy.run(lambda v: distributed.gather([v], "global")[0], args=(x,))

    out = run(next(iter(strategy.experimental_distribute_dataset(data))))
    assert strategy.num_replicas_in_sync == 2
    parts = strategy.experimental_local_results(out)
    assert len(parts) == 2  # each replica holds the whole batch, its slice [0, 1, 2] or [3, 4, 5] in place
    for part in parts:
        np.testing.assert_array_equal(part.numpy(), np.arange(6, dtype=np.float32))


def test_strategies_in_one_process_keep_their_collectives_apart():
    # With collective cross-device ops (the default on GPUs), a second strategy without a key base of its own
    # reuses the first one's collective instance for another op: TensorFlow aborts with "Collective instance 100
    # expected type 0 ... but got type 2".
    names = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    for op in ("all_reduce", "gather", "all_reduce", "gather"):
        strategy = devices._mirrored(names, None)
        assert strategy.num_replicas_in_sync == 2
        data = tf.data.Dataset.from_tensors(tf.range(4, dtype=tf.float32))

        def step(v, op=op):
            if op == "gather":
                return distributed.gather([v], "global")[0]
            return tf.distribute.get_replica_context().all_reduce("sum", v)

        @tf.function
        def run(x):
            return strategy.run(step, args=(x,))

        out = run(next(iter(strategy.experimental_distribute_dataset(data))))
        expected = np.arange(4) if op == "gather" else np.array([2.0, 4.0])
        np.testing.assert_array_equal(strategy.experimental_local_results(out)[1].numpy(), expected)
