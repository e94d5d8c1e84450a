"""The Beam pipelines at scale: CPU cost per row against a plain loop and the floor, and peak memory against rows.

``cost`` (the default): on ``--rows`` simulated Criteo rows (500k by default), in alternating rounds, side by side:

* Beam: ``pipelines.criteo.run`` on the DirectRunner (its default, in-process worker): validation, hash split, GZIP
  TFRecord shards, dead letter, vocabularies, transform, stats; everything the pipeline does, start to finish;
* plain loop: ``parse_line`` + ``to_example`` per line, one ``tf.io.TFRecordWriter(path, "GZIP")`` (no split, no
  statistics, no side files);
* the floor components of the same output: a pyarrow CSV read of the file, the column encoding of every row
  (``pipelines.criteo.fast_encode.encode_examples``, byte-identical to ``to_example``), TFRecord framing + CRC-32C, GZIP
  level 6 (and 1) of the framed bytes, with the bytes per row each level writes (beside the Beam output's).

With ``--baseline DIR`` (another checkout of tfrec, e.g. ``git worktree add /tmp/tfrec_base main`` made before a
change), DIR's pipeline runs beside this one's in the same alternating rounds (``beam_baseline``), the report gives
the ratio of their CPU per row, and the two outputs are compared: the records of each split as multisets (a digest
of their sorted digests) and the side files byte for byte.

Each Beam and plain-loop round runs in a fresh subprocess that reports its own CPU time (``time.process_time()``
around the work, imports excluded), so the rounds do not share a heap. CPU time, not wall time: the machine is
shared. The report gives microseconds of CPU per row, the ratio to the plain loop and to the floor, the projected
time of Criteo Kaggle's 45.8M rows on one core, and the host's load average.

``memory``: peak RSS (``ru_maxrss`` of the child, from ``os.wait4``) of ``tfrec prepare`` (and ``tfrec
prepare-hybrid``) as a user runs it, on the default local runner, for each pipeline at each size: ``--sizes`` rows
for Criteo and multi-task, and a fiftieth of them as requests for the hybrid samples (a request is a list of up to
a few hundred items). Inputs are simulated once into ``--cache``.

Usage:
  python bench/bench_pipeline.py cost [--rows 500000] [--rounds 2] [--input train.txt] [--baseline DIR]
  python bench/bench_pipeline.py memory [--sizes 500000,2000000,5000000] [--pipelines criteo,multitask,hybrid]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BETA_POS = 0.5
KAGGLE_ROWS = 45_840_617
TARGET_US = 40.0
FLAT_RATIO = 1.3
HYBRID_PER_ROW = 50  # hybrid requests = rows / HYBRID_PER_ROW


# ----------------------------------------------------------------------------------------------- children


def _child(what: str, path: str, out: str, root: str = "") -> None:
    """Runs one measured piece in this (fresh) process and prints ``{"cpu_s", "wall_s", "rows", "tree"}``; with
    ``root``, the pipeline is that checkout's (``tree``: where ``pipelines`` was imported from)."""
    if root:
        sys.path.insert(0, root)
    import tensorflow as tf

    import pipelines

    from pipelines.criteo import Row, parse_line, run, to_example
    from pipelines.criteo.parse import KAGGLE
    from tfrec.config import PrepareConfig

    wall, cpu = time.perf_counter(), time.process_time()
    if what == "beam":
        stats = run(PrepareConfig(inputs=[path], output=out, beta_pos=BETA_POS))
        n = sum(stats["rows_written"].values())
    else:
        n = 0
        with open(path, "rb") as f, tf.io.TFRecordWriter(out, options="GZIP") as w:
            for line in f:
                r = parse_line(line, KAGGLE)
                if type(r) is Row:
                    w.write(to_example(r, BETA_POS))
                    n += 1
    print(json.dumps({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "rows": n,
                      "tree": os.path.dirname(os.path.dirname(os.path.abspath(pipelines.__file__)))}))


def _run_child(args, env=None):
    """Runs ``args`` as a child; returns (its last stdout line, peak RSS in MiB, CPU seconds of the child)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out_lines = []
    for line in proc.stdout:
        out_lines.append(line.decode(errors="replace"))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {''.join(out_lines[-5:])}")
    return (out_lines[-1] if out_lines else ""), usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------------------------------------- cost


def floor_components(path: str) -> dict:
    """Microseconds of CPU per row of each floor component on ``path`` (a Kaggle TSV)."""
    import zlib

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from pipelines.common.sink import frame_records
    from pipelines.criteo.fast_encode import encode_examples, key_order
    from pipelines.criteo.fast_parse import parse_columns, split_chunk

    key_order()  # (imports TensorFlow's protos once, outside the timing)

    def cpu(fn):
        start = time.process_time()
        out = fn()
        return out, time.process_time() - start

    names = [f"f{i}" for i in range(40)]
    opts = pacsv.ParseOptions(delimiter="\t", quote_char=False)
    conv = pacsv.ConvertOptions(column_types={n: pa.binary() for n in names})
    table, t_read = cpu(lambda: pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names,
                                                                                    use_threads=False),
                                               parse_options=opts, convert_options=conv))
    rows = table.num_rows
    with open(path, "rb") as f:
        raws = f.read().split(b"\n")
    raws = [r for r in raws if r]
    chunks = [raws[i:i + 4096] for i in range(0, len(raws), 4096)]
    parsed = [parse_columns(split_chunk(c)[0])[0] for c in chunks]
    records, t_encode = cpu(lambda: [r for cols in parsed for r in encode_examples(cols, BETA_POS)])
    framed, t_frame = cpu(lambda: [frame_records(records[i:i + 4096]) for i in range(0, len(records), 4096)])
    blob = b"".join(framed)
    out = {"pyarrow_csv_read": t_read, "column_encoding": t_encode, "framing_crc": t_frame}
    sizes = {}
    for level in (6, 1):
        def gz(level=level):
            c = zlib.compressobj(level, zlib.DEFLATED, 31)
            return c.compress(blob) + c.flush()
        compressed, out[f"gzip_{level}"] = cpu(gz)
        sizes[f"gzip_{level}_bytes_per_row"] = len(compressed) / rows
    us = {k: v / rows * 1e6 for k, v in out.items()}
    us["floor"] = us["pyarrow_csv_read"] + us["column_encoding"] + us["framing_crc"] + us["gzip_6"]
    return {**us, "framed_bytes_per_row": len(blob) / rows, **sizes}


def _records(path: str) -> List[bytes]:
    """The records of a GZIP TFRecord file (its framing read back; the CRCs are not checked)."""
    import gzip

    data = gzip.open(path, "rb").read()
    out, i = [], 0
    while i < len(data):
        (length,) = struct.unpack_from("<Q", data, i)
        out.append(data[i + 12:i + 12 + length])
        i += 16 + length
    return out


def output_digest(out: str) -> Tuple[Dict[str, str], int]:
    """``({split or side file: digest}, bytes of the TFRecord files)`` of a prepared directory: per split, a digest of
    the sorted digests of its records (records as a multiset, whatever the shard order); per side file, its bytes'
    digest (``stats.json`` without the fields that name the run's paths)."""
    digests: Dict[str, list] = {}
    size = 0
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if name.endswith(".tfrecord.gz"):
            size += os.path.getsize(path)
            digests.setdefault(name.split("-")[0], []).extend(
                hashlib.blake2b(r, digest_size=16).digest() for r in _records(path))
    result = {split: hashlib.blake2b(b"".join(sorted(ds))).hexdigest() for split, ds in digests.items()}
    for sub in ("vocab", "deadletter"):
        for name in sorted(os.listdir(os.path.join(out, sub))):
            with open(os.path.join(out, sub, name), "rb") as f:
                result[f"{sub}/{name}"] = hashlib.blake2b(f.read()).hexdigest()
    for name in ("transform.json", "schema.json", "stats.json"):
        with open(os.path.join(out, name), "rb") as f:
            obj = json.load(f)
        if name == "stats.json":
            obj = {k: v for k, v in obj.items() if k not in ("files", "deadletter_files", "inputs", "input_formats")}
        result[name] = hashlib.blake2b(json.dumps(obj, sort_keys=True).encode()).hexdigest()
    return result, size


def cost(args) -> None:
    from bench.common import HostLoad

    tmp = tempfile.mkdtemp(prefix="bench_pipeline_")
    load = HostLoad()
    trees = {"beam": ""}
    if args.baseline:
        trees["beam_baseline"] = os.path.abspath(args.baseline)
        if not os.path.isfile(os.path.join(trees["beam_baseline"], "pipelines", "criteo", "pipeline.py")):
            raise SystemExit(f"--baseline {args.baseline}: not a checkout of tfrec (no pipelines/criteo/pipeline.py)")
    names = [*trees, "plain"]
    try:
        path = args.input or _simulated("criteo", args.rows, args.cache)
        with open(path, "rb") as f:
            rows = sum(1 for _ in f)
        times: Dict[str, list] = {name: [] for name in names}
        outputs: Dict[str, Tuple[dict, int]] = {}
        for i in range(args.rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:  # each goes first in turn
                out = os.path.join(tmp, name if name != "plain" else "plain.tfrecord.gz")
                argv = [sys.executable, os.path.abspath(__file__), "_child", "beam" if name != "plain" else "plain",
                        path, out, trees.get(name, "")]
                env = dict(os.environ, PYTHONPATH=trees[name]) if trees.get(name) else None
                line, rss, _ = _run_child(argv, env)
                got = json.loads(line)
                if name in trees and os.path.realpath(got["tree"]) != os.path.realpath(trees[name] or ROOT):
                    raise SystemExit(f"{name} ran the pipeline of {got['tree']}, not {trees[name] or ROOT}")
                times[name].append(got["cpu_s"])
                print(f"round {i + 1} {name:13s}: {got['cpu_s'] / rows * 1e6:6.1f} us CPU/row ({got['cpu_s']:6.1f} s "
                      f"CPU, {got['wall_s']:6.1f} s wall), peak RSS {rss:,.0f} MiB, {got['rows']:,} rows written",
                      flush=True)
                if name == "plain":
                    os.remove(out)
                else:
                    if name not in outputs:
                        outputs[name] = output_digest(out)
                    shutil.rmtree(out, ignore_errors=True)
        floor = floor_components(path)
        us = {name: statistics.median(ts) / rows * 1e6 for name, ts in times.items()}
        beam_us, plain_us = us["beam"], us["plain"]
        print(f"\n{rows:,} rows, {args.rounds} rounds (median), {os.cpu_count()} CPUs, host {load.read()}")
        print(f"Beam (criteo pipeline, DirectRunner): {beam_us:6.1f} us CPU/row = {1e6 / beam_us:,.0f} rows/s/core; "
              f"target <= {TARGET_US:.0f}: {'met' if beam_us <= TARGET_US else 'NOT met'}")
        if "beam_baseline" in us:
            base = us["beam_baseline"]
            now, before = outputs["beam"][0], outputs["beam_baseline"][0]
            differ = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
            print(f"Beam of --baseline {trees['beam_baseline']}: {base:6.1f} us CPU/row; this tree / baseline: "
                  f"{beam_us / base:.2f}x; outputs identical (records per split as multisets, side files): "
                  f"{'NO, ' + ', '.join(differ) if differ else 'yes'}")
        print(f"plain loop:                          {plain_us:6.1f} us CPU/row (Beam / plain: {beam_us / plain_us:.2f}x)")
        cpu_keys = ("pyarrow_csv_read", "column_encoding", "framing_crc", "gzip_6", "gzip_1", "floor")
        print("floor components (us CPU/row): " + ", ".join(f"{k} {floor[k]:.1f}" for k in cpu_keys)
              + f"; Beam / floor: {beam_us / floor['floor']:.2f}x")
        print(f"bytes per row: framed {floor['framed_bytes_per_row']:.1f}, GZIP level 6 "
              f"{floor['gzip_6_bytes_per_row']:.1f}, level 1 {floor['gzip_1_bytes_per_row']:.1f} "
              f"(+{100 * (floor['gzip_1_bytes_per_row'] / floor['gzip_6_bytes_per_row'] - 1):.0f}%); "
              f"Beam's TFRecord files {outputs['beam'][1] / rows:.1f}")
        hours = KAGGLE_ROWS * beam_us / 1e6 / 3600
        print(f"projected for Criteo Kaggle ({KAGGLE_ROWS:,} rows) on one core of this machine: {hours:.2f} h "
              f"({hours * 60:.0f} min)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- memory


def _simulated(kind: str, rows: int, cache: str) -> str:
    """A simulated input of ``rows`` rows (requests for ``hybrid``) under ``cache``, made once."""
    base = os.path.join(cache, f"{kind}_{rows}")
    path = {"criteo": "train.txt", "multitask": "funnel.csv", "hybrid": "requests.jsonl"}[kind]
    path = os.path.join(base, path)
    if os.path.exists(path + ".done"):
        return path
    os.makedirs(base, exist_ok=True)
    if kind == "criteo":
        cmd = ["simulate", "--out", path, "--rows", str(rows)]
    elif kind == "multitask":
        cmd = ["simulate", "--kind", "funnel", "--out", path, "--rows", str(rows)]
    else:
        cmd = ["simulate-cascade", "--out", base, "--set", f"cascade.requests={rows}"]
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "tfrec"), *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    open(path + ".done", "w").close()
    return path


def memory(args) -> None:
    from bench.common import HostLoad

    load = HostLoad()
    tfrec = os.path.join(os.path.dirname(sys.executable), "tfrec")
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for kind in args.pipelines.split(","):
        for rows in sizes:
            n = rows // HYBRID_PER_ROW if kind == "hybrid" else rows
            path = _simulated(kind, n, args.cache)
            out = tempfile.mkdtemp(prefix=f"bench_memory_{kind}_")
            try:
                if kind == "hybrid":
                    cmd = [tfrec, "prepare-hybrid", "--input", path, "--items",
                           os.path.join(os.path.dirname(path), "items.jsonl"), "--out", out]
                else:
                    cmd = [tfrec, "prepare", "--input", path, "--out", out, "--progress-every", "600"]
                    if kind == "multitask":
                        cmd += ["--format", "aliexpress"]
                start = time.perf_counter()
                _, rss, cpu_s = _run_child(cmd)
                results.setdefault(kind, []).append((n, rss))
                print(f"{kind:9s} {n:>9,} {'requests' if kind == 'hybrid' else 'rows':8s}: peak RSS {rss:7,.0f} MiB, "
                      f"{cpu_s:7.1f} s CPU ({cpu_s / n * 1e6:6.1f} us/{'request' if kind == 'hybrid' else 'row'}), "
                      f"{time.perf_counter() - start:7.1f} s wall", flush=True)
            finally:
                shutil.rmtree(out, ignore_errors=True)
    print(f"\nhost {load.read()}")
    for kind, rs in results.items():
        ratio = rs[-1][1] / rs[0][1]
        print(f"{kind:9s}: peak RSS {' / '.join(f'{r:,.0f}' for _, r in rs)} MiB at {' / '.join(f'{n:,}' for n, _ in rs)}; "
              f"largest / smallest {ratio:.2f} (flat: <= {FLAT_RATIO}: {'met' if ratio <= FLAT_RATIO else 'NOT met'})")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        _child(*argv[1:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", default="cost", choices=("cost", "memory"))
    ap.add_argument("--rows", type=int, default=500_000, help="cost: rows to simulate (ignored with --input)")
    ap.add_argument("--rounds", type=int, default=2, help="cost: alternating rounds of each")
    ap.add_argument("--baseline", default="", help="cost: another checkout of tfrec (e.g. `git worktree add "
                                                   "/tmp/tfrec_base main`) whose pipeline runs beside this one's")
    ap.add_argument("--input", default="", help="cost: an existing Kaggle-format train.txt instead of simulated rows")
    ap.add_argument("--sizes", default="500000,2000000,5000000", help="memory: rows per run (comma-separated)")
    ap.add_argument("--pipelines", default="criteo,multitask,hybrid", help="memory: pipelines (comma-separated)")
    ap.add_argument("--cache", default=os.environ.get("TFREC_BENCH_DIR", "/tmp/tfrec_bench") + "/pipeline_inputs",
                    help="where simulated inputs are kept between runs")
    args = ap.parse_args(argv)
    (cost if args.mode == "cost" else memory)(args)


if __name__ == "__main__":
    main()
