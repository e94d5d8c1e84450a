"""tfrec's DCN V2 side by side with DeepCTR's DCN (matrix) and FuxiCTR's DCNv2: same data, same architecture.

One raw file (``tfrec simulate``, Criteo Kaggle format) is split once 7:2:1 by row order into
``raw/{train,valid,test}.csv`` in the criteo_x1 layout (``label,I1..I13,C1..C26`` header). Each library then
prepares those three files its own way (timed: the wall time of that process, imports included) and trains the
BARS DCN V2 (parallel, 3 full-rank cross layers, DNN 500x3, embedding 10, dropout 0.1, batch 4096, Adam 1e-3,
global gradient-norm clip 10, validation AUC each epoch with the learning rate x0.1 on a plateau, the best epoch
kept) for the same epochs and seeds, one process per (library, seed). Measured per run: steady-state training
examples/s (``bench/peers/common.StepClock``: warm-up steps and the first step of each epoch left out, validation
excluded), the process's peak RSS and its process tree's peak PSS, and the test AUC and logloss, computed here from
each library's test predictions with one NumPy function. Where the libraries' feature handling differs is printed
with the table (``FEATURE_NOTES``).

Each peer runs in a virtualenv of its own (never in tfrec's dependencies), made by ``--setup`` under ``--venvs``
(default ``.venv-peers``, git-ignored), i.e.::

    python3.11 -m venv .venv-peers/deepctr
    .venv-peers/deepctr/bin/pip install tensorflow==2.15.1 numpy==1.26.4 pandas==2.2.3 requests h5py
    .venv-peers/deepctr/bin/pip install --no-deps deepctr==0.9.4
    python3.11 -m venv .venv-peers/fuxictr
    .venv-peers/fuxictr/bin/pip install torch==2.13.0
    .venv-peers/fuxictr/bin/pip install fuxictr==2.3.10 'polars<2' torch==2.13.0

DeepCTR 0.9.3 does not import on TensorFlow 2.15 (``from tensorflow.python.keras.layers import LSTM``: that
private module has no LSTM there) and pins h5py 3.7.0, which has no wheel for Python 3.11; 0.9.4 imports
``tensorflow.keras`` (Keras 2.15 beside TF 2.15), hence ``--no-deps`` and 0.9.4. FuxiCTR 2.3.10 calls
``polars.scan_csv(dtypes=...)``, an argument polars 2.0 removed, hence ``polars<2``. A peer whose virtualenv is
missing or whose step fails is reported with the reason, and the others still run.

Usage (from the repository root, in tfrec's virtualenv):
    python bench/bench_peers.py --setup                        # make the peers' virtualenvs, then run
    python bench/bench_peers.py --rows 30000 --epochs 1 --seeds 2020     # a quick look
    python bench/bench_peers.py --rows 500000 --epochs 3 --seeds 2020,2021,2022 --out bench_out/peers
Writes ``results.json`` and ``results.md`` under ``--out``; the work files (data, models, logs) go to ``--work``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import HostLoad  # noqa: E402
from bench.peers.common import ARCH, COLUMNS, raw_files, read_json, write_json  # noqa: E402
from bench.peers.measure import log_tail, run_measured  # noqa: E402
from bench.peers.report import LIBRARIES, markdown, ratios, summarize  # noqa: E402

SETUP = {
    "deepctr": [["tensorflow==2.15.1", "numpy==1.26.4", "pandas==2.2.3", "requests", "h5py"],
                ["--no-deps", "deepctr==0.9.4"]],
    # torch named again in the second install, so that pip keeps the CPU build the first one installed.
    "fuxictr": [["torch==2.13.0"], ["fuxictr==2.3.10", "polars<2", "torch==2.13.0"]],
}
PROBE = {"deepctr": "import deepctr.models, pandas", "fuxictr": "import fuxictr.pytorch, torch, ray, polars"}
#: Variants of a peer: (the peer whose virtualenv and worker they use, the worker's extra training arguments).
VARIANTS = {"deepctr_emb": ("deepctr", ["--numeric", "embedded"])}


def peer_of(library: str) -> str:
    """The peer whose virtualenv and worker script ``library`` runs (itself unless a :data:`VARIANTS` entry)."""
    return VARIANTS.get(library, (library, []))[0]

FEATURE_NOTES = [
    "All three: 13 numeric + 26 categorical Criteo fields, vocabularies fitted on the train split with min count "
    "10, numeric transforms fitted on the train split, the same train/valid/test rows.",
    "tfrec: the TFRecords keep raw values; the model looks categorical strings up (missing value = a token of its "
    "own, rare/unseen = OOV id) and transforms numeric fields as TensorFlow ops (once per split for a train split "
    "held in memory, as here; per batch otherwise): sign(x) log(1+|x|) / s_j clipped to [-1, 1], missing -> 0, "
    "each embedded as v_j e_j (x0 = 39 x 10 = 390).",
    "DeepCTR: no preparation of its own; pandas encodes categorical ids once (same vocabulary rule as tfrec) and "
    "applies tfrec's numeric transform; numeric values enter the cross network and the DNN unembedded "
    "(DenseFeat: x0 = 26 x 10 + 13 = 273).",
    "DeepCTR, numeric embedded (deepctr_emb): the same data, each numeric field a one-id weighted sequence "
    "(VarLenSparseFeat, length 1, weight v_j, sum pooling, no weight normalisation), i.e. v_j e_j: x0 = 390, the "
    "same work per example as tfrec and FuxiCTR.",
    "FuxiCTR: its FeatureProcessor + build_dataset (polars, Ray Data, parquet); missing categorical values share "
    "the OOV id with rare ones; numeric sign(x) log(1+|x|) then its MinMaxScaler ((v - min) / (max - min), not "
    "clipped), embedded as v_j e_j (x0 = 390). Embedding L2 2e-5 in its (lambda/2)||w||^2 form = tfrec's 1e-5.",
    "Test AUC and logloss: one NumPy function over each library's test predictions (exact AUC, ties averaged).",
]


def venv_python(venvs: str, library: str) -> str:
    return os.path.join(venvs, peer_of(library), "bin", "python")


def probe(venvs: str, library: str):
    """None when the peer's virtualenv imports its library, else the reason."""
    py = venv_python(venvs, library)
    if not os.path.exists(py):
        return f"no virtualenv at {os.path.dirname(os.path.dirname(py))} (run with --setup)"
    r = subprocess.run([py, "-c", PROBE[peer_of(library)]], capture_output=True, text=True)
    if r.returncode:
        last = [ln for ln in r.stderr.splitlines() if ln.strip()]
        return f"its import fails: {last[-1] if last else 'exit ' + str(r.returncode)}"
    return None


def setup_commands(venvs: str = ".venv-peers", libraries=("deepctr", "fuxictr"), python: str = "python3.11"):
    """The commands that make the peers' virtualenvs (the module docstring's; the README shows the same list)."""
    out = []
    for lib in libraries:
        target = os.path.join(venvs, lib)
        out.append([python, "-m", "venv", target])
        out += [[os.path.join(target, "bin", "pip"), "install", *args] for args in SETUP[lib]]
    return out


def setup(venvs: str, libraries) -> None:
    """Makes each peer's virtualenv with :func:`setup_commands`; skips one that already imports."""
    for lib in dict.fromkeys(peer_of(x) for x in libraries):
        if lib == "tfrec" or probe(venvs, lib) is None:
            continue
        print(f"setup: {os.path.join(venvs, lib)}", flush=True)
        for argv in setup_commands(venvs, [lib], python=sys.executable):
            subprocess.run(argv, check=True)


def split_raw(train_txt: str, raw_dir: str, ratios_=(0.7, 0.2, 0.1)) -> dict:
    """Splits a Kaggle-format file by row order into the criteo_x1 CSV files (header, 40 comma-separated fields,
    empty = missing). Returns the rows per split."""
    with open(train_txt, "rb") as f:
        lines = f.read().splitlines()
    n = len(lines)
    bounds = [0, int(n * ratios_[0]), int(n * (ratios_[0] + ratios_[1])), n]
    counts = {}
    os.makedirs(raw_dir, exist_ok=True)
    for i, (split, path) in enumerate(raw_files(raw_dir).items()):
        with open(path, "wb") as out:
            out.write((",".join(COLUMNS) + "\n").encode())
            for line in lines[bounds[i]:bounds[i + 1]]:
                fields = line.split(b"\t")
                if len(fields) < len(COLUMNS):
                    fields += [b""] * (len(COLUMNS) - len(fields))
                out.write(b",".join(fields) + b"\n")
        counts[split] = bounds[i + 1] - bounds[i]
    return counts


def tfrec_cli() -> list:
    return [sys.executable, "-m", "tfrec.cli"]


def make_data(args, work: str, log_dir: str) -> dict:
    raw_txt = os.path.join(work, "raw", "train.txt")
    raw_dir = os.path.join(work, "raw")
    if not os.path.exists(os.path.join(raw_dir, "test.csv")):
        r = run_measured(tfrec_cli() + ["simulate", "--out", raw_txt, "--rows", str(args.rows),
                                        "--seed", str(args.data_seed)], os.path.join(log_dir, "simulate.log"),
                         cwd=ROOT)
        if r["rc"]:
            sys.exit(f"tfrec simulate failed:\n{log_tail(r['log'])}")
        split_raw(raw_txt, raw_dir)
    return {s: sum(1 for _ in open(p, "rb")) - 1 for s, p in raw_files(raw_dir).items()}


def prepare_cmd(lib: str, args, raw_dir: str, data_dir: str, result: str) -> list:
    if lib == "tfrec":
        f = raw_files(raw_dir)
        return tfrec_cli() + ["prepare", "--config", os.path.join(ROOT, "configs", "criteo_x1.yaml"),
                              "--format", "x1", "--train", f["train"], "--valid", f["valid"], "--test", f["test"],
                              "--out", data_dir, "--set", f"prepare.num_shards={args.shards}",
                              # The simulator writes raw counts (not x1's normalised floats): the peers' transform.
                              "--set", "prepare.numeric_transform=log_minmax",
                              "--set", f"prepare.min_count={ARCH['min_count']}"]
    return [venv_python(args.venvs, lib), os.path.join(ROOT, "bench", "peers", f"run_{peer_of(lib)}.py"),
            "prepare", "--raw", raw_dir, "--out", data_dir, "--result", result]


def train_cmd(lib: str, args, data_dir: str, model_dir: str, seed: int, result: str) -> list:
    common = ["--data", data_dir, "--model-dir", model_dir, "--seed", str(seed), "--epochs", str(args.epochs),
              "--warmup-steps", str(args.warmup_steps), "--result", result]
    if lib == "tfrec":
        return [sys.executable, os.path.join(ROOT, "bench", "peers", "run_tfrec.py")] + common
    extra = VARIANTS.get(lib, (lib, []))[1]
    return [venv_python(args.venvs, lib), os.path.join(ROOT, "bench", "peers", f"run_{peer_of(lib)}.py"),
            "train"] + common + extra


def versions(args, libraries, work: str) -> dict:
    out = {"python": platform.python_version()}
    r = subprocess.run([sys.executable, "-c", "import tensorflow as tf, tf_keras, tfrec; "
                        "from bench.peers.common import sgemm_gflops; "
                        "print(tf.__version__, tf_keras.__version__, sgemm_gflops('tensorflow'))"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode == 0:
        tf_v, keras_v, gflops = r.stdout.split()[-3:]
        out["tfrec"] = {"tensorflow": tf_v, "tf_keras": keras_v, "sgemm_gflops": float(gflops),
                        "commit": _git("rev-parse", "--short", "HEAD")}
    for lib in dict.fromkeys(peer_of(x) for x in libraries):
        if lib == "tfrec":
            continue
        path = os.path.join(work, f"versions_{lib}.json")
        r = subprocess.run([venv_python(args.venvs, lib), os.path.join(ROOT, "bench", "peers", f"run_{lib}.py"),
                            "versions", "--result", path], capture_output=True, text=True)
        out[lib] = read_json(path) if r.returncode == 0 else None
    return out


def version_notes(v: dict) -> list:
    """One line per library: its versions and the float32 matmul rate of its framework on this host."""
    out = []
    for lib, info in v.items():
        if isinstance(info, dict):
            parts = ", ".join(f"{k} {x:.0f}" if k == "sgemm_gflops" else f"{k} {x}" for k, x in info.items())
            out.append(f"{lib}: {parts.replace('sgemm_gflops', 'sgemm 4096x390x500 GFLOP/s')}")
    return out


def _git(*cmd) -> str:
    r = subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.strip()


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem, 1), "system": platform.platform()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", action="store_true", help="make the peers' virtualenvs first (see the docstring)")
    ap.add_argument("--venvs", default=os.path.join(ROOT, ".venv-peers"), help="folder of the peers' virtualenvs")
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--data-seed", type=int, default=2020, help="seed of the simulated raw file")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="2020,2021,2022")
    ap.add_argument("--warmup-steps", type=int, default=10, help="training steps left out at the start of a run")
    ap.add_argument("--shards", type=int, default=8, help="tfrec prepare: shards per split")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one step may take")
    ap.add_argument("--work", default="/tmp/tfrec_bench/peers")
    ap.add_argument("--out", default="bench_out/peers")
    args = ap.parse_args(argv)
    libraries = [x for x in args.libraries.split(",") if x]
    unknown = sorted(set(libraries) - set(LIBRARIES))
    if unknown:
        ap.error(f"unknown --libraries {unknown}; choose from {list(LIBRARIES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.setup:
        setup(args.venvs, libraries)

    load = HostLoad()
    work = os.path.join(args.work, f"rows{args.rows}_seed{args.data_seed}")
    log_dir = os.path.join(work, "logs")
    errors = {lib: probe(args.venvs, lib) for lib in libraries if lib != "tfrec"}
    for lib, why in errors.items():
        if why:
            print(f"{lib}: not run: {why}", flush=True)
    rows = make_data(args, work, log_dir)
    print(f"data: {rows} rows (train/valid/test) in {os.path.join(work, 'raw')}", flush=True)

    preps, data_dirs = {}, {}
    for lib in libraries:
        if errors.get(lib):
            continue
        data_dirs[lib] = os.path.join(work, lib, "data")
        shutil.rmtree(data_dirs[lib], ignore_errors=True)
        r = run_measured(prepare_cmd(lib, args, os.path.join(work, "raw"), data_dirs[lib],
                                     os.path.join(work, lib, "prepare.json")),
                         os.path.join(log_dir, f"prepare_{lib}.log"), cwd=ROOT, timeout=args.timeout)
        preps[lib] = r
        print(f"prepare {lib}: rc {r['rc']}, {r['wall_seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB",
              flush=True)
        if r["rc"]:
            errors[lib] = f"prepare failed (exit {r['rc']}): {log_tail(r['log'], 1)}"
            print(log_tail(r["log"]), flush=True)

    runs = {lib: [] for lib in libraries}
    for seed in seeds:  # seed-major, so the host's load changes fall on every library alike
        for lib in libraries:
            if errors.get(lib):
                continue
            model_dir = os.path.join(work, lib, f"model_{seed}")
            shutil.rmtree(model_dir, ignore_errors=True)
            result_path = os.path.join(work, lib, f"result_{seed}.json")
            if os.path.exists(result_path):
                os.remove(result_path)
            run_load = HostLoad()
            r = run_measured(train_cmd(lib, args, data_dirs[lib], model_dir, seed, result_path),
                             os.path.join(log_dir, f"train_{lib}_{seed}.log"), cwd=ROOT, timeout=args.timeout)
            r["seed"], r["host"] = seed, run_load.read()
            if r["rc"] == 0 and os.path.exists(result_path):
                r["result"] = read_json(result_path)
                t = r["result"]
                print(f"train {lib} seed {seed}: {t['train']['examples_per_second']:,.0f} examples/s "
                      f"({t['train']['examples_per_cpu_second']:,.0f} per CPU-second), test AUC "
                      f"{t['test']['auc']:.4f}, logloss {t['test']['logloss']:.4f}, peak RSS "
                      f"{r['peak_rss_mb']:.0f} MB, {r['wall_seconds']:.0f} s, load average "
                      f"{r['host']['load_average_start_end'][1][0]:.1f}", flush=True)
            else:
                r["reason"] = f"exit {r['rc']}: {log_tail(r['log'], 1)}"
                print(f"train {lib} seed {seed} failed ({r['reason']}):\n{log_tail(r['log'])}", flush=True)
            runs[lib].append(r)

    table = {lib: summarize(lib, preps.get(lib), runs[lib], errors.get(lib)) for lib in libraries}
    for lib, row in table.items():
        if not row["error"] and not row["seeds"]:
            row["error"] = "every training run failed: " + "; ".join(f["reason"] for f in row["failed_runs"])
    rat = ratios(table)
    md = markdown(table, rat, len(seeds))
    report = {
        "date": datetime.date.today().isoformat(), "rows": rows, "epochs": args.epochs, "seeds": seeds,
        "warmup_steps": args.warmup_steps, "machine": machine(), "host": load.read(),
        "versions": versions(args, libraries, work), "libraries": table, "ratios": rat,
        "feature_notes": FEATURE_NOTES, "prepare": preps, "runs": runs,
    }
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "results.json"), report)
    head = (f"DCN V2 (BARS setting) on {sum(rows.values()):,} simulated Criteo rows ({rows['train']:,} train), "
            f"{args.epochs} epoch(s), seeds {seeds}; {report['date']}; {report['machine']['cpus']} CPUs "
            f"({report['machine']['cpu_model']}); host {json.dumps(report['host'])}\n\n")
    notes = "\n" + "\n".join(f"* {n}" for n in FEATURE_NOTES + version_notes(report["versions"])) + "\n"
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
        f.write(head + md + notes)
    print("\n" + head + md + notes)
    print(f"versions: {json.dumps(report['versions'])}")
    print(f"wrote {os.path.join(args.out, 'results.json')} and results.md")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"bench_peers: {time.perf_counter() - t0:.0f} s")
