"""Where a tfrec DCN V2 training step's time goes, per part, on one prepared dataset (one process, 1 replica).

Rates in wall time and in this process's CPU time (all its threads), batch 4096. Parts 1 to 5: best of
``--rounds`` rounds of ``--steps`` steps, each part inside its own ``tf.function``, batches already parsed and in
memory unless said otherwise:

1. reader: tf.data from the GZIP TFRecords (interleave, shuffle, batch, ``parse_example``), no model; 1m: the
   in-memory reader (``tfrec.data_memory``: the split parsed once, batches gathered at a permutation's indices);
2. preprocessing: the model's vocabulary lookups and numeric transforms only;
3. forward: the model in training mode (lookups, embeddings, cross network, DNN, head);
4. forward + backward: the loss and its gradients;
5. train step: Keras' ``train_step`` (gradients, global-norm clip, Adam), as ``fit`` runs it;
6. to 8. Keras ``fit`` (no strategy, no callbacks but the step clock) on the in-memory batches, then on tfrec's
   streamed reader without and with the config's shuffle buffer: what parsing and shuffling add to a step; 8m: on
   the in-memory reader (``data.in_memory_max_mb``, the split parsed once, shuffled by index each epoch) with raw
   features; 8e: the same with the split encoded once (ids and transformed values, ``tfrec.data_memory.encoded``,
   what ``tfrec.train`` does); 8m and 8e alternate ``--ab-rounds`` times and their median ratio is printed;
9. ``tfrec.train.train`` itself (the reader it picks, the distribution strategy, tfrec's callbacks).
Steps 6 to 9 run ``--fit-steps`` steps each and are timed by ``StepClock`` (its first 10 steps left out).

Usage: python bench/peers/profile_tfrec.py --data DIR [--steps 10] [--rounds 3] [--fit-steps 60]
(``DIR``: a ``tfrec prepare`` output, e.g. ``<work>/tfrec/data`` of ``bench/bench_peers.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def best_rate(fn, steps: int, rounds: int, batch: int):
    """(examples/s, examples per CPU-second of this process), each the best of ``rounds``."""
    fn()  # trace
    best, best_cpu = 0.0, 0.0
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            out = fn()
        float(out)
        best = max(best, steps * batch / (time.perf_counter() - start))
        best_cpu = max(best_cpu, steps * batch / max(time.process_time() - cpu, 1e-9))
    return best, best_cpu


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fit-steps", type=int, default=60, help="steps of each fit run (0 skips them)")
    ap.add_argument("--ab-rounds", type=int, default=3, help="alternations of 8m and 8e")
    args = ap.parse_args(argv)

    from tfrec.devices import configure_cpu_replicas

    configure_cpu_replicas(1)
    import tensorflow as tf
    import tf_keras as keras

    from bench.common import in_memory
    from bench.peers.common import StepClock, keras_step_clock
    from tfrec import data as data_lib
    from tfrec import losses
    from tfrec.config import load_config
    from tfrec.train import build_model, train

    cfg = load_config(os.path.join(ROOT, "configs", "criteo_x1.yaml"), [f"data.dir={args.data}"])
    batch = cfg.data.batch_size
    schema = data_lib.load_schema(args.data)
    files = data_lib.split_files(args.data, "train")
    rates = {}

    reader = iter(data_lib.make_dataset(files, schema, batch, training=True, shuffle_buffer=cfg.data.shuffle_buffer,
                                        cycle_length=cfg.data.cycle_length, seed=1, repeat=True))

    def read():
        f, y, _ = next(reader)
        return y[0]

    rates["1 reader (tf.data, parse)"] = best_rate(read, args.steps, args.rounds, batch)
    train_rows = int(data_lib.load_stats(args.data).get("rows_written", {}).get("train", 0))

    def memory_ds(encode=None):
        return data_lib.make_dataset(files, schema, batch, training=True, shuffle_buffer=cfg.data.shuffle_buffer,
                                     seed=1, repeat=True, in_memory_max_bytes=cfg.data.in_memory_max_mb << 20,
                                     rows=train_rows, encode=encode)

    memory_reader = iter(memory_ds())

    def read_memory():
        f, y, _ = next(memory_reader)
        return y[0]

    rates["1m reader (in memory, by index)"] = best_rate(read_memory, args.steps, args.rounds, batch)
    del memory_reader

    batches = list(data_lib.make_dataset(files, schema, batch, training=True, repeat=True).take(4))
    model = build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss=losses.get("weighted_bce"))
    model(batches[0][0], training=False)
    model.optimizer.build(model.trainable_variables)
    mem = iter(in_memory(batches))
    loss_fn = losses.get("weighted_bce")

    @tf.function
    def preprocess(features):
        emb = model.embedding
        return tf.reduce_sum(tf.cast(emb.categorical_ids(features), tf.float32)) + tf.reduce_sum(
            emb.dense_values(features))

    @tf.function
    def forward(features):
        return tf.reduce_sum(model(features, training=True)["logit"])

    @tf.function
    def forward_backward(features, y, w):
        with tf.GradientTape() as tape:
            out = model(features, training=True)
            loss = loss_fn(y, out, w) + tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        return loss + tf.add_n([tf.reduce_sum(g) if not isinstance(g, tf.IndexedSlices)
                                else tf.reduce_sum(g.values) for g in grads])

    def on_memory(fn):
        def run():
            f, y, w = next(mem)
            return fn(f) if fn is not forward_backward else fn(f, y, w)
        return run

    rates["2 preprocessing (lookups, transforms)"] = best_rate(on_memory(preprocess), args.steps, args.rounds, batch)
    rates["3 forward (training mode)"] = best_rate(on_memory(forward), args.steps, args.rounds, batch)
    rates["4 forward + backward"] = best_rate(on_memory(forward_backward), args.steps, args.rounds, batch)
    step = model.make_train_function()
    rates["5 train step (clip, Adam)"] = best_rate(lambda: step(mem)["loss"], args.steps, args.rounds, batch)

    def fit_rates(fit):
        clock = StepClock(10)
        fit(keras_step_clock(keras, clock, batch))
        summary = clock.summary()
        return summary["examples_per_second"], summary["examples_per_cpu_second"]

    def plain_fit(dataset):
        """``dataset``: a dataset, or a function of the built model that makes one."""
        def fit(callback):
            m = build_model(cfg)
            m.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0), loss=losses.get("weighted_bce"))
            m(batches[0][0], training=False)
            ds = dataset(m) if callable(dataset) else dataset
            m.fit(ds, steps_per_epoch=args.fit_steps, epochs=1, verbose=0, callbacks=[callback])
        return fit

    if args.fit_steps:
        def reader_ds(shuffle):
            return data_lib.make_dataset(files, schema, batch, training=True, shuffle_buffer=shuffle,
                                         cycle_length=cfg.data.cycle_length, seed=1, repeat=True)

        rates["6 Keras fit, in-memory batches"] = fit_rates(plain_fit(in_memory(batches)))
        rates["7 Keras fit, tfrec reader, no shuffle"] = fit_rates(plain_fit(reader_ds(0)))
        rates[f"8 Keras fit, tfrec reader, shuffle {cfg.data.shuffle_buffer}"] = fit_rates(
            plain_fit(reader_ds(cfg.data.shuffle_buffer)))
        ab = {"8m": [], "8e": []}
        for _ in range(max(1, args.ab_rounds)):  # alternated, so both see the same host
            ab["8m"].append(fit_rates(plain_fit(lambda m: memory_ds())))
            ab["8e"].append(fit_rates(plain_fit(lambda m: memory_ds(encode=m.embedding.encode))))
        median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        rates["8m Keras fit, in-memory reader, raw features"] = tuple(median([r[i] for r in ab["8m"]]) for i in (0, 1))
        rates["8e Keras fit, in-memory reader, encoded once"] = tuple(median([r[i] for r in ab["8e"]]) for i in (0, 1))
        ratios = [e[0] / m[0] for m, e in zip(ab["8m"], ab["8e"])]
        cpu_ratios = [e[1] / m[1] for m, e in zip(ab["8m"], ab["8e"])]
        print(f"8e / 8m examples/s per round: {', '.join(f'{r:.3f}' for r in ratios)} (median {median(ratios):.3f}); "
              f"per CPU-second: {', '.join(f'{r:.3f}' for r in cpu_ratios)} (median {median(cpu_ratios):.3f})")
        with tempfile.TemporaryDirectory() as tmp:
            run_cfg = load_config(os.path.join(ROOT, "configs", "criteo_x1.yaml"), [
                f"data.dir={args.data}", f"train.model_dir={tmp}", "train.epochs=1",
                f"train.steps_per_epoch={args.fit_steps}", "train.log_every_seconds=0"])
            rates["9 tfrec.train (strategy, callbacks)"] = fit_rates(
                lambda callback: train(run_cfg, printer=lambda _: None, extra_callbacks=[callback]))

    print(f"{'':48s} {'examples/s':>10s} {'ms/step':>8s} {'per CPU-s':>10s} {'CPU ms/step':>11s}")
    for name, (rate, cpu_rate) in rates.items():
        print(f"{name:48s} {rate:10,.0f} {1000 * batch / rate:8.1f} {cpu_rate:10,.0f} {1000 * batch / cpu_rate:11.1f}")


if __name__ == "__main__":
    main()
