"""DeepCTR's worker of ``bench/bench_peers.py``: DCN with ``cross_parameterization='matrix'`` (DCN-M, the full-rank
DCN V2 cross) under ``tf.keras`` (Keras 2.15 beside TensorFlow 2.15).

DeepCTR has no data preparation of its own (its examples use pandas and scikit-learn encoders), so ``prepare``
does what a DeepCTR user writes: pandas reads the three CSV files, categorical values get ids from a train-split
vocabulary (count >= ``min_count``, the missing value a token of its own, id 0 for rare and unseen values), and
numeric values get tfrec's ``log_minmax`` (``sign(x) log(1+|x|) / s_j``, clipped to [-1, 1], ``s_j`` fitted on
train, missing -> 0); the arrays go to ``<out>/{train,valid,test}.npz``. DeepCTR feeds numeric values to the
cross network and the DNN as they are (``DenseFeat``: 13 inputs), where tfrec and FuxiCTR embed each one as
``v_j e_j`` (130 inputs). ``train --numeric embedded`` (the bench's ``deepctr_emb``) gives DeepCTR that input too:
each numeric field is a one-id weighted sequence (``VarLenSparseFeat`` of length 1, weight ``v_j``, sum pooling,
no weight normalisation), whose pooled embedding is ``v_j e_j``: the same x0 (39 x 10 = 390) and the same work per
example as tfrec's (the field's id is 1: DeepCTR masks id 0 of a sequence as padding, so each such table has one
unused row).

Runs in the DeepCTR virtualenv. Usage (the driver calls it):
    python bench/peers/run_deepctr.py prepare --raw DIR --out DIR --result prep.json
    python bench/peers/run_deepctr.py train --data DIR --model-dir DIR --seed 2020 --epochs 3 --result out.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.peers.common import (ARCH, CATEGORICAL, DENSE, LABEL, StepClock, keras_step_clock, raw_files,  # noqa: E402
                                read_json, sgemm_gflops, signed_log, test_report, write_json)

MISSING = "__MISSING__"


def prepare(raw_dir: str, out: str, min_count: int) -> dict:
    import pandas as pd

    frames = {s: pd.read_csv(p, dtype={**{c: str for c in CATEGORICAL}, **{d: np.float64 for d in DENSE}},
                             keep_default_na=False, na_values={d: [""] for d in DENSE})
              for s, p in raw_files(raw_dir).items()}
    train = frames["train"]
    vocab, scale = {}, {}
    for c in CATEGORICAL:
        counts = train[c].replace("", MISSING).value_counts()
        kept = counts[counts >= min_count].index
        vocab[c] = pd.Index(kept)  # id = position + 1; 0 = out of vocabulary
    for d in DENSE:
        s = float(np.max(np.abs(signed_log(train[d].to_numpy()))))
        scale[d] = s if s > 0 else 1.0
    os.makedirs(out, exist_ok=True)
    for split, df in frames.items():
        arrays = {LABEL: df[LABEL].to_numpy(np.float32)}
        for c in CATEGORICAL:
            arrays[c] = (vocab[c].get_indexer(df[c].replace("", MISSING)) + 1).astype(np.int32)
        for d in DENSE:
            arrays[d] = np.clip(signed_log(df[d].to_numpy()) / scale[d], -1.0, 1.0).astype(np.float32)
        np.savez(os.path.join(out, f"{split}.npz"), **arrays)
    meta = {"vocab_sizes": {c: len(vocab[c]) + 1 for c in CATEGORICAL}, "scale": scale,
            "rows": {s: int(len(df)) for s, df in frames.items()}}
    write_json(os.path.join(out, "meta.json"), meta)
    return meta


NUMERIC = ("dense", "embedded")


def _inputs(path: str, numeric: str = "dense"):
    data = np.load(path)
    x = {k: data[k] for k in DENSE + CATEGORICAL}
    if numeric == "embedded":  # id 1 of a one-row table, weighted by the value: v_j e_j (module docstring)
        for d in DENSE:
            x[f"{d}_id"] = np.ones((len(x[d]), 1), np.int32)
            x[d] = x[d].reshape(-1, 1, 1)
    return x, data[LABEL]


def numeric_columns(numeric: str):
    """DeepCTR's columns of the numeric fields: ``DenseFeat`` (fed as they are) or embedded as ``v_j e_j``."""
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat

    if numeric == "dense":
        return [DenseFeat(d, 1) for d in DENSE]
    return [VarLenSparseFeat(SparseFeat(f"{d}_id", 2, embedding_dim=ARCH["embedding_dim"]), maxlen=1,
                             combiner="sum", weight_name=d, weight_norm=False) for d in DENSE]


def train(data_dir: str, model_dir: str, seed: int, epochs: int, warmup_steps: int, numeric: str = "dense") -> dict:
    start = time.perf_counter()
    import tensorflow as tf
    from deepctr.feature_column import SparseFeat
    from deepctr.models import DCN

    keras = tf.keras
    meta = read_json(os.path.join(data_dir, "meta.json"))
    keras.utils.set_random_seed(seed)
    columns = ([SparseFeat(c, meta["vocab_sizes"][c], embedding_dim=ARCH["embedding_dim"]) for c in CATEGORICAL]
               + numeric_columns(numeric))
    # No linear (wide) part: DCN V2 has none. L2 on the embeddings only, as tfrec's config.
    model = DCN([], columns, cross_num=ARCH["num_cross_layers"], cross_parameterization="matrix",
                dnn_hidden_units=tuple(ARCH["dnn_hidden_units"]), l2_reg_embedding=ARCH["embedding_l2"] / 2,
                l2_reg_cross=0.0, l2_reg_dnn=0.0, dnn_dropout=ARCH["dropout"], seed=seed, task="binary")
    model.compile(keras.optimizers.Adam(ARCH["learning_rate"], global_clipnorm=ARCH["clip_norm"]),
                  "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    x_train, y_train = _inputs(os.path.join(data_dir, "train.npz"), numeric)
    x_valid, y_valid = _inputs(os.path.join(data_dir, "valid.npz"), numeric)
    batch = ARCH["batch_size"]
    clock = StepClock(warmup_steps)
    best = os.path.join(model_dir, "best.weights.h5")
    os.makedirs(model_dir, exist_ok=True)
    # The same protocol as tfrec's and FuxiCTR's fit: validation AUC each epoch, learning rate x0.1 when it does
    # not improve, the best epoch's weights kept.
    callbacks = [keras_step_clock(keras, clock, batch, train_rows=len(y_train)),
                 keras.callbacks.ReduceLROnPlateau("val_auc", factor=0.1, patience=1, mode="max", min_delta=0.0),
                 keras.callbacks.ModelCheckpoint(best, "val_auc", save_best_only=True, save_weights_only=True,
                                                 mode="max")]
    history = model.fit(x_train, y_train, batch_size=batch, epochs=epochs, shuffle=True, verbose=0,
                        validation_data=(x_valid, y_valid), validation_batch_size=16384, callbacks=callbacks)
    model.load_weights(best)
    trained = time.perf_counter()
    x_test, y_test = _inputs(os.path.join(data_dir, "test.npz"), numeric)
    probs = model.predict(x_test, batch_size=16384, verbose=0).reshape(-1)
    return {"library": "deepctr" if numeric == "dense" else "deepctr_emb", "seed": seed, "epochs": epochs,
            "train": clock.summary(),
            "test": test_report(y_test, probs),
            "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
            "seconds": {"setup_and_train": trained - start, "predict_test": time.perf_counter() - trained}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["prepare", "train", "versions"])
    ap.add_argument("--raw")
    ap.add_argument("--out")
    ap.add_argument("--data")
    ap.add_argument("--model-dir")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--numeric", choices=NUMERIC, default="dense",
                    help="numeric fields fed as they are (DeepCTR's DenseFeat) or embedded as v_j e_j")
    ap.add_argument("--result", required=True)
    args = ap.parse_args(argv)
    if args.command == "versions":
        import deepctr
        import tensorflow as tf

        write_json(args.result, {"deepctr": deepctr.__version__, "tensorflow": tf.__version__,
                                 "keras (tf.keras)": __import__("keras").__version__,
                                 "sgemm_gflops": sgemm_gflops("tensorflow"),
                                 "python": sys.version.split()[0]})
    elif args.command == "prepare":
        start = time.perf_counter()
        meta = prepare(args.raw, args.out, ARCH["min_count"])
        write_json(args.result, {**meta, "seconds": time.perf_counter() - start})
    else:
        write_json(args.result, train(args.data, args.model_dir, args.seed, args.epochs, args.warmup_steps,
                                      args.numeric))


if __name__ == "__main__":
    main()
