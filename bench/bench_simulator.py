"""How much of the simulator's signal a linear model and DCN V2 recover: truth vs logistic regression vs DCN V2.

For each seed: simulate ``--rows`` rows (``tfrec.simulation.simulate``), split them 70/30 by row index, and
report, side by side, ROC AUCs on the same held-out rows:

* ``truth``: the simulator's true click probability (the Bayes-optimal ranking);
* ``LR``: scikit-learn ``LogisticRegression`` on one-hot categoricals (values seen fewer than ``--min-count``
  times on the train part share one "rare" column), signed-log numerics ``sign(x) log(1 + |x|)`` and missing
  indicators; ``C`` is picked on the validation rows from a small grid;
* ``LR+bins``: the same plus one-hot deciles of each numeric field (a first-order model that also fits
  non-monotone numeric effects, so ``DCN - LR+bins`` isolates what the interactions are worth);
* ``DCN V2``: ``tfrec``'s own path: ``pipelines.criteo.run`` prepares the three parts (train / valid / test
  files, so the split is by row index, not by the pipeline's hash), ``tfrec.train.train`` trains DCN V2 with the
  default model (3 cross layers, DNN [500, 500, 500], embedding dim 10, embeddings initialised N(0, 1e-4^2))
  and the demo's settings (Adam 1e-3, 3 epochs, best epoch by validation AUC) on one replica, at each batch size
  of ``--batch`` (default: the demo's 1024 and the paper's 4096), and ``tfrec.evaluate.evaluate`` scores the
  test part. ``--beta-pos`` (default 1.0, so the weighted and plain AUCs agree; the demo uses 0.5) down-weights
  positives in training as the demo does.

The 30% held out is cut in two by row index: its first third is the validation split (DCN V2's best-epoch
choice, LR's ``C``), the other two thirds the test rows on which every AUC is measured. Usage::

    python bench/bench_simulator.py [--rows 150000] [--seeds 2020 7] [--batch 1024 4096] [--epochs 3]

On 2 CPU cores and 150k rows, a seed takes about 40 s of LR fits, 20 s of Beam and 30-60 s per DCN V2 run
(``--no-dcn`` skips DCN V2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfrec.devices import configure_cpu_replicas  # noqa: E402

configure_cpu_replicas(1)  # before any other TensorFlow work

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

DEFAULT_DIR = os.path.join(os.environ.get("TFREC_BENCH_DIR", "/tmp/tfrec_bench"), "simulator")
TRAIN_SHARE = 0.7
VALID_SHARE_OF_HELD_OUT = 1.0 / 3.0


def split_points(rows: int):
    """Row indices where train ends and where validation ends (the rest is test)."""
    n_train = int(round(rows * TRAIN_SHARE))
    n_valid = n_train + int(round((rows - n_train) * VALID_SHARE_OF_HELD_OUT))
    return n_train, n_valid


def read_table(path: str):
    """Labels ``[n]``, numeric strings ``[n, 13]`` and categorical strings ``[n, 26]`` of a Kaggle train.txt."""
    with open(path, "r", encoding="ascii") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    table = np.array([r + [""] * (40 - len(r)) for r in rows], dtype=object)
    return table[:, 0].astype(np.int64), table[:, 1:14], table[:, 14:]


def lr_features(dense, cat, n_train: int, min_count: int, bins: bool):
    """Sparse design matrix: one-hot categoricals (rare -> one column), signed logs, missing flags[, deciles]."""
    from sklearn.preprocessing import OneHotEncoder

    missing = dense == ""
    x = np.where(missing, "0", dense).astype(np.float64)
    signed_log = np.sign(x) * np.log1p(np.abs(x))
    mean, std = signed_log[:n_train].mean(axis=0), signed_log[:n_train].std(axis=0) + 1e-9
    blocks = [sp.csr_matrix(np.hstack([(signed_log - mean) / std, missing.astype(np.float64)]))]
    enc = OneHotEncoder(min_frequency=min_count, handle_unknown="infrequent_if_exist").fit(cat[:n_train])
    blocks.append(enc.transform(cat))
    if bins:
        codes = np.empty(x.shape, dtype=np.int64)
        for j in range(x.shape[1]):
            present = ~missing[:n_train, j]
            edges = np.unique(np.quantile(signed_log[:n_train, j][present], np.linspace(0.1, 0.9, 9)))
            codes[:, j] = np.searchsorted(edges, signed_log[:, j], side="right")
        codes[missing] = -1  # the missing flag already covers it
        blocks.append(OneHotEncoder(handle_unknown="ignore").fit(codes[:n_train]).transform(codes))
    return sp.hstack(blocks).tocsr()


def fit_lr(features, y, n_train: int, n_valid: int, grid=(0.01, 0.03, 0.1, 0.3, 1.0)):
    """Fits LR for each C of ``grid`` on the train rows; returns (best C, test AUC of the C best on valid)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    best = None
    for c in grid:
        lr = LogisticRegression(C=c, solver="lbfgs", max_iter=2000).fit(features[:n_train], y[:n_train])
        valid_auc = roc_auc_score(y[n_train:n_valid], lr.predict_proba(features[n_train:n_valid])[:, 1])
        if best is None or valid_auc > best[0]:
            test_auc = roc_auc_score(y[n_valid:], lr.predict_proba(features[n_valid:])[:, 1])
            best = (valid_auc, c, test_auc)
    return best[1], best[2]


def prepare_parts(raw: str, work: str, rows: int, beta_pos: float, min_count: int) -> str:
    """Writes train / valid / test part files by row index and prepares them with the Beam pipeline."""
    from pipelines.criteo import run as prepare
    from tfrec.config import PrepareConfig

    n_train, n_valid = split_points(rows)
    with open(raw, "r", encoding="ascii") as f:
        lines = f.readlines()
    parts = {}
    for split, (lo, hi) in {"train": (0, n_train), "valid": (n_train, n_valid), "test": (n_valid, rows)}.items():
        parts[split] = os.path.join(work, "parts", f"{split}.txt")
        os.makedirs(os.path.dirname(parts[split]), exist_ok=True)
        with open(parts[split], "w", encoding="ascii") as f:
            f.writelines(lines[lo:hi])
    data_dir = os.path.join(work, "data")
    stats = prepare(PrepareConfig(train=[parts["train"]], valid=[parts["valid"]], test=[parts["test"]],
                                  input_format="kaggle", output=data_dir, beta_pos=beta_pos, min_count=min_count,
                                  num_shards=4))
    written = stats["rows_written"]
    assert (written.get("train"), written.get("valid"), written.get("test")) == (
        n_train, n_valid - n_train, rows - n_valid), written
    return data_dir


def run_dcn(data_dir: str, model_dir: str, batch: int, epochs: int, lr: float, seed: int, overrides):
    """Trains DCN V2 with tfrec (one replica) and returns (test AUC, per-epoch validation AUCs, seconds)."""
    from tfrec.config import load_config
    from tfrec.evaluate import evaluate
    from tfrec.train import train

    shutil.rmtree(model_dir, ignore_errors=True)
    cfg = load_config(None, [f"data.dir={data_dir}", f"train.model_dir={model_dir}", f"data.batch_size={batch}",
                             "data.shuffle_buffer=50000", f"train.epochs={epochs}", f"train.learning_rate={lr}",
                             f"train.seed={seed}", "train.replicas=1", "train.log_every_seconds=0",
                             "train.monitor=val_auc", *overrides])
    start = time.perf_counter()
    result = train(cfg, printer=lambda _: None)
    report = evaluate(cfg, split="test", model=result.model)
    return report["auc"], result.history.get("val_auc", []), time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=150_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2020])
    ap.add_argument("--batch", type=int, nargs="+", default=[1024, 4096], help="DCN V2 batch size(s)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--positive-rate", type=float, default=0.256)
    ap.add_argument("--interaction-strength", type=float, default=1.0)
    ap.add_argument("--vocab-scale", type=float, default=1.0)
    ap.add_argument("--beta-pos", type=float, default=1.0)
    ap.add_argument("--min-count", type=int, default=10)
    ap.add_argument("--lr-c", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 1.0],
                    help="inverse regularisation strengths tried for LR (the best on the validation rows is kept)")
    ap.add_argument("--no-dcn", action="store_true", help="skip DCN V2 (truth and LR only)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="extra tfrec config override for DCN V2 (section.key=value), repeatable")
    ap.add_argument("--dir", default=DEFAULT_DIR, help="work directory (overwritten)")
    args = ap.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from tfrec.config import SimulationConfig
    from tfrec.simulation import simulate

    results = []
    for seed in args.seeds:
        work = os.path.join(args.dir, f"seed{seed}")
        raw = os.path.join(work, "raw", "train.txt")
        start = time.perf_counter()
        sim = simulate(SimulationConfig(rows=args.rows, seed=seed, positive_rate=args.positive_rate,
                                        vocab_scale=args.vocab_scale,
                                        interaction_strength=args.interaction_strength, output=raw))
        sim_s = time.perf_counter() - start
        y, dense, cat = read_table(raw)
        p = np.loadtxt(sim.truth_path)
        n_train, n_valid = split_points(args.rows)
        row = {"seed": seed, "rows": args.rows, "test_rows": args.rows - n_valid,
               "positive_rate": sim.positive_rate, "truth_auc_all": sim.truth_auc,
               "truth": roc_auc_score(y[n_valid:], p[n_valid:]), "simulate_s": sim_s}
        start = time.perf_counter()
        row["lr_C"], row["lr"] = fit_lr(lr_features(dense, cat, n_train, args.min_count, False), y, n_train, n_valid,
                                        args.lr_c)
        row["lr_bins_C"], row["lr_bins"] = fit_lr(lr_features(dense, cat, n_train, args.min_count, True), y,
                                                  n_train, n_valid, args.lr_c)
        row["lr_s"] = time.perf_counter() - start
        print(f"seed {seed}: simulated {args.rows:,} rows in {sim_s:.0f}s (positive rate {sim.positive_rate:.4f}); "
              f"truth {row['truth']:.4f}  LR {row['lr']:.4f} (C={row['lr_C']})  "
              f"LR+bins {row['lr_bins']:.4f} (C={row['lr_bins_C']})  [{row['lr_s']:.0f}s]", flush=True)
        if not args.no_dcn:
            data_dir = prepare_parts(raw, work, args.rows, args.beta_pos, args.min_count)
            for batch in args.batch:
                auc, val, secs = run_dcn(data_dir, os.path.join(work, f"model_b{batch}"), batch, args.epochs,
                                         args.lr, seed, args.overrides)
                row[f"dcn_b{batch}"], row[f"dcn_b{batch}_val"] = auc, val
                print(f"seed {seed}: DCN V2 batch {batch}: test AUC {auc:.4f}  (val AUC by epoch "
                      f"{', '.join(f'{v:.4f}' for v in val)})  [{secs:.0f}s]", flush=True)
        results.append(row)

    print()
    dcn_cols = [] if args.no_dcn else [f"dcn_b{b}" for b in args.batch]
    header = ["seed", "truth", "LR", "LR+bins"] + [f"DCN b{b}" for b in args.batch if not args.no_dcn]
    header += [f"DCN b{b} - LR" for b in args.batch if not args.no_dcn]
    header += [f"DCN b{b} - LR+bins" for b in args.batch if not args.no_dcn]
    header += ["truth - LR"] + [f"(DCN b{b} - LR) / (truth - LR)" for b in args.batch if not args.no_dcn]
    print("  ".join(header))
    for r in results:
        vals = [str(r["seed"]), f"{r['truth']:.4f}", f"{r['lr']:.4f}", f"{r['lr_bins']:.4f}"]
        vals += [f"{r[c]:.4f}" for c in dcn_cols]
        vals += [f"{r[c] - r['lr']:+.4f}" for c in dcn_cols]
        vals += [f"{r[c] - r['lr_bins']:+.4f}" for c in dcn_cols]
        vals += [f"{r['truth'] - r['lr']:.4f}"]
        vals += [f"{(r[c] - r['lr']) / (r['truth'] - r['lr']):.2f}" for c in dcn_cols]
        print("  ".join(f"{v:>{len(h)}}" for v, h in zip(vals, header)))
    print("json: " + json.dumps(results, default=float))


if __name__ == "__main__":
    main()
