"""Serving benchmark: Predict over local gRPC vs the in-process SavedModel call, on one 4096-row CTR batch.

Measured side by side in one run, on the same batch of serialized tf.Examples (Criteo-shaped: 13 dense and 26
categorical raw features) and the same SavedModel (DCN V2 at its default size: embedding 10, 3 full-rank cross
layers, DNN 500-500-500, written by ``export.export_model`` as TF Serving gets it: ``serving_default`` parses the
examples with the dataset's schema, warmup records replayed at load):

1. in-process:  ``loaded.signatures["serving_default"](examples=...)`` -> p50 / p99 latency, requests/s
2. gRPC:        ``PredictionService.Predict`` to ``tfrec serve`` in its own process on 127.0.0.1 -> the same
3. payload only: both paths again on a signature of the same SavedModel that takes the same batch and
                returns zeros of the same size: the serving path's cost without the model's run-to-run noise
4. payload:     the (de)serialisation the gRPC path adds, each step timed alone on the code the client and
                server run: the request's bytes (``serving.wire``), its decode, TensorProto -> ndarray on the
                server, the outputs' TensorProtos, the response's encode and decode, TensorProto -> ndarray on
                the client; beside them the request encoded with the protobuf classes, for comparison
5. transport:   gRPC alone, the same message sizes as raw bytes to a server that answers at once: the grpc.aio
                server ``serving.server`` runs, and the thread-pool ``grpc.server`` side by side
6. fixed cost:  paths 1 and 2 on a one-row and a 64-row batch (~1 KB and ~45 KB requests) at concurrency 1, and
                gRPC alone on the same bytes; the server's own cost is the gRPC path's p50 overhead over the
                in-process call minus gRPC alone. Its breakdown: each stage of the call timed alone
                (``bench/serving_stages.py``: request bytes, parse + validation, the model call through the
                signature's structured binding and through ``serving.loader``'s flat call, response encoding,
                decoding) and the event loop's hand-off to the worker threads (an echo answered through
                ``serving.workers`` vs on the loop)

at concurrency 1 and 8 (threads, each with its own request in flight) for paths 1-3. Target: the server's own
cost <= 1 ms at one row and at 64 rows. The big batch has no latency target: gRPC alone moving its 2.9 MB (path 5)
takes several ms in the Python runtime before the server sees a byte. Usage:
python bench/bench_serving.py [--rows 4096] [--iters 24]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import HostLoad, print_json  # noqa: E402
from bench.serving_stages import cpu_per_call, fixed_cost  # noqa: E402
from export import export_model  # noqa: E402
from export.signatures import PREDICT_METHOD  # noqa: E402
from tfrec.features import CRITEO  # noqa: E402
from tfrec.models import DCNv2  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXED_COST_ROWS = (1, 64)


class _BenchDCN(DCNv2):
    """DCN V2 plus one extra serving signature (``export.signatures``' extension point) for the payload path."""

    def extra_serving_signatures(self):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
        def payload_only(examples):
            # Same request and response sizes as serving_default, no model: isolates the serving path's cost.
            n = tf.shape(examples)[0]
            return {"ctr": tf.zeros([n]), "ctr_logit": tf.zeros([n])}

        return {"payload_only": (payload_only, PREDICT_METHOD)}


def build_savedmodel(base_path: str, vocab_size: int = 1000) -> str:
    """Exports a DCN V2 (default size) with :func:`export.export_model`, the real export path (its four
    signatures, warmup records, version 1) plus ``payload_only``; returns the version directory."""
    rng = np.random.default_rng(0)
    vocab = {c: [f"{i:08x}" for i in range(vocab_size)] for c in CRITEO.categorical}
    transform = {"kind": "log_minmax", "scale": {d: 5.0 for d in CRITEO.dense}, "missing_value": 0.0}
    model = _BenchDCN(CRITEO.dense, CRITEO.categorical, vocab, transform)
    model({**{d: tf.constant(rng.random(2, np.float32)) for d in CRITEO.dense},
           **{c: tf.constant(["00000001", ""]) for c in CRITEO.categorical}})
    return export_model(model, base_path, CRITEO, examples=make_batch(16, vocab_size), model_name="ctr").path


def make_batch(rows: int, vocab_size: int = 1000):
    rng = np.random.default_rng(1)
    out = []
    for _ in range(rows):
        f = {d: tf.train.Feature(float_list=tf.train.FloatList(value=[float(rng.integers(0, 1000))]))
             for d in CRITEO.dense if rng.random() < 0.9}
        f.update({c: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{rng.integers(0, vocab_size * 2):08x}".encode()]))
                  for c in CRITEO.categorical if rng.random() < 0.95})
        out.append(tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString())
    return out


def measure(calls, concurrency: int, iters: int, rounds: int = 4):
    """p50, p99 (ms) and requests/s of each of ``calls`` ({name: fn}) with ``concurrency`` threads.

    The calls take turns in ``rounds`` blocks of ``iters / rounds`` calls per thread, so a change in the load of
    the machine during the run falls on every path alike.
    """
    for fn in calls.values():
        for _ in range(2):
            fn()
    lat = {k: [] for k in calls}
    wall = {k: 0.0 for k in calls}
    lock = threading.Lock()
    per_block = max(1, iters // rounds)
    for _ in range(rounds):
        for name, fn in calls.items():
            def worker():
                mine = []
                for _ in range(per_block):
                    t = time.perf_counter()
                    fn()
                    mine.append(time.perf_counter() - t)
                with lock:
                    lat[name].extend(mine)

            threads = [threading.Thread(target=worker) for _ in range(concurrency)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall[name] += time.perf_counter() - start
    out = {}
    for name in calls:
        ms = np.array(lat[name]) * 1e3
        out[name] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                     "requests_per_s": len(ms) / wall[name], "calls": len(ms)}
    return out


_ECHO_SERVER = """
import asyncio, sys
from concurrent import futures
import grpc
reply = b"x" * int(sys.argv[1])
options = [("grpc.max_receive_message_length", 256 << 20)]
if sys.argv[2] == "aio_workers":  # the answer made on a worker thread, as a served call's is (serving.workers)
    from serving.workers import Workers

    workers = Workers(16)
if sys.argv[2] == "sync":
    server = grpc.server(futures.ThreadPoolExecutor(16), options=options)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(lambda request, context: reply)})])
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    server.wait_for_termination()
else:
    async def answer(request, context):
        if sys.argv[2] == "aio_workers":
            return await workers.run(lambda: reply)
        return reply

    async def main():
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(answer)})])
        print(server.add_insecure_port("127.0.0.1:0"), flush=True)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())
"""


@contextlib.contextmanager
def echo_servers(request_bytes: int, response_bytes: int, kinds=("aio", "sync")):
    """``({"echo_<kind>_server": call()}, {name: server pid})``: gRPC alone, ``request_bytes`` of raw bytes to a
    server in its own process that answers ``response_bytes`` at once (no protobuf, no TF): ``aio`` is the
    grpc.aio server ``serving.server`` runs, ``aio_workers`` the same answering through ``serving.workers``,
    ``sync`` the thread-pool ``grpc.server``."""
    import grpc

    procs, calls, channels = [], {}, []
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    payload = b"y" * request_bytes
    try:
        for kind in kinds:
            proc = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER, str(response_bytes), kind],
                                    stdout=subprocess.PIPE, text=True, env=env)
            procs.append(proc)
            port = int(proc.stdout.readline())
            channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 256 << 20)])
            channels.append(channel)
            call = channel.unary_unary("/bench.Echo/Call")
            calls[f"echo_{kind}_server"] = lambda call=call: call(payload, timeout=60)
        yield calls, {name: proc.pid for name, proc in zip(calls, procs)}
    finally:
        for channel in channels:
            channel.close()
        for proc in procs:
            proc.kill()
            proc.wait()


def transport_floor(request_bytes: int, response_bytes: int, iters: int) -> dict:
    """:func:`echo_servers` ``aio`` and ``sync`` side by side at concurrency 1 and 8."""
    with echo_servers(request_bytes, response_bytes) as (calls, _):
        return {f"c{c}": measure(calls, c, iters) for c in (1, 8)}


def payload_steps(examples, outputs, signature_def):
    """``({step: fn}, reference fn, request bytes, response bytes)``: each (de)serialisation step of one Predict
    round trip on the code the client and the server run, and the request encoded with the protobuf classes."""
    from tensorflow_serving.apis import predict_pb2

    from serving import wire
    from serving.client import request_tensor
    from serving.handlers import tensor_to_array

    header = predict_pb2.PredictRequest()
    header.model_spec.name = "ctr"
    encode = lambda: wire.predict_request(header, {"examples": request_tensor(examples)})  # noqa: E731
    wire_bytes = encode()
    parsed = predict_pb2.PredictRequest.FromString(wire_bytes)
    spec = signature_def.inputs["examples"]
    resp = predict_pb2.PredictResponse()
    for k, v in outputs.items():
        resp.outputs[k].CopyFrom(wire.numeric_tensor(v))
    resp_wire = resp.SerializeToString()

    def with_protobuf_classes():
        req = predict_pb2.PredictRequest()
        req.CopyFrom(header)
        t = req.inputs["examples"]
        t.dtype = tf.string.as_datatype_enum
        t.tensor_shape.dim.add(size=len(examples))
        t.string_val.extend(examples)
        return req.SerializeToString()

    assert predict_pb2.PredictRequest.FromString(with_protobuf_classes()) == parsed
    steps = {
        "client: encode request (serving.wire)": encode,
        "server: decode request (PredictRequest.FromString)": lambda: predict_pb2.PredictRequest.FromString(
            wire_bytes),
        "server: TensorProto -> ndarray (handlers.tensor_to_array)": lambda: tensor_to_array(
            "examples", parsed.inputs["examples"], spec),
        "server: outputs -> TensorProto (serving.wire.numeric_tensor)": lambda: [wire.numeric_tensor(v)
                                                                                for v in outputs.values()],
        "server: encode response": resp.SerializeToString,
        "client: decode response": lambda: predict_pb2.PredictResponse.FromString(resp_wire),
        "client: TensorProto -> ndarray (serving.wire.to_ndarray)": lambda: [wire.to_ndarray(v)
                                                                            for v in resp.outputs.values()],
    }
    return steps, with_protobuf_classes, len(wire_bytes), len(resp_wire)


def payload_cost(steps, reference, iters: int) -> dict:
    """Median ms of each step of :func:`payload_steps`, timed alone, and their sum."""

    def med(fn):
        fn()
        ts = []
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts) * 1e3)

    out = {k: med(fn) for k, fn in steps.items()}
    out["total"] = sum(out.values())
    out["reference: encode request with the protobuf classes (string_val.extend + SerializeToString)"] = med(reference)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--iters", type=int, default=24, help="calls per thread and path")
    ap.add_argument("--baseline", help="another checkout of tfrec (e.g. `git worktree add /tmp/base main`): its "
                                       "`tfrec serve` runs beside this one's, in the same rounds (grpc_baseline)")
    args = ap.parse_args()

    from serving.client import PredictionClient

    host = HostLoad()
    scratch = tempfile.TemporaryDirectory(prefix="tfrec_bench_serving_")  # removed when the bench exits
    work = scratch.name
    base = os.path.join(work, "ctr")
    t = time.perf_counter()
    version_dir = build_savedmodel(base)
    print(f"exported DCN V2 SavedModel (export.export_model) in {time.perf_counter() - t:.1f} s: {version_dir}",
          flush=True)
    examples = make_batch(args.rows)

    loaded = tf.saved_model.load(version_dir)
    fn, empty_fn = loaded.signatures["serving_default"], loaded.signatures["payload_only"]

    def in_process_call(signature, batch):
        """The in-process path: the signature on the batch as one string tensor, outputs as ndarrays."""
        arr = np.array(batch, dtype=object)
        return lambda: {k: v.numpy() for k, v in signature(examples=tf.constant(arr)).items()}

    in_process, in_process_empty = in_process_call(fn, examples), in_process_call(empty_fn, examples)
    outputs = in_process()
    from serving.loader import read_signature_defs

    steps, reference, request_bytes, response_bytes = payload_steps(
        examples, outputs, read_signature_defs(version_dir)["serving_default"])
    serde_round_trip = lambda: [fn() for fn in steps.values()]  # noqa: E731

    # This checkout's `tfrec serve`, and with --baseline another checkout's beside it, in the same rounds.
    trees = {"grpc": ROOT, **({"grpc_baseline": os.path.abspath(args.baseline)} if args.baseline else {})}
    procs, clients = {}, {}
    try:
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="3")
            procs[name] = subprocess.Popen([sys.executable, "-m", "tfrec.cli", "serve", "--model-name", "ctr",
                                            "--base-path", base, "--port", "0", "--poll-seconds", "0"], cwd=tree,
                                           env=env, stdout=subprocess.PIPE, text=True)
            address = procs[name].stdout.readline().split(" on ")[1].strip()
            clients[name] = PredictionClient(address, timeout=120, max_concurrency=8)

        def grpc_paths(batch, signature=None):
            """The whole client path: request bytes from the examples, the call, outputs back to ndarrays."""
            suffix = f"_{signature}" if signature else ""
            return {name + suffix: (lambda c=c: c.predict("ctr", {"examples": batch}, signature))
                    for name, c in clients.items()}

        for call in grpc_paths(examples).values():
            np.testing.assert_allclose(call()["ctr"], outputs["ctr"], rtol=1e-5, atol=1e-7)
        results = {}
        for c in (1, 8):
            r = measure({"in_process": in_process, **grpc_paths(examples)}, c, args.iters)
            # The whole (de)serialisation of a round trip runs in the same rounds, so load changes fall on it too.
            r.update(measure({"in_process_payload_only": in_process_empty, **grpc_paths(examples, "payload_only"),
                              "payload_serde": serde_round_trip}, c, args.iters * 4))
            for k, v in r.items():
                results[f"{k}_c{c}"] = v
            print(f"concurrency {c}: " + ", ".join(f"{k} {v}" for k, v in r.items()), flush=True)
        # The fixed cost of a call: the same paths on batches of 1 and 64 rows (~1 KB and ~45 KB requests), with
        # gRPC alone on the same bytes in the same rounds.
        fixed = {}
        for n in FIXED_COST_ROWS:
            small = make_batch(n)
            _, _, small_request, small_response = payload_steps(small, {k: v[:n] for k, v in outputs.items()},
                                                                read_signature_defs(version_dir)["serving_default"])
            with echo_servers(small_request, small_response, ("aio", "aio_workers")) as (echo, echo_pids):
                paths = {"in_process": in_process_call(fn, small), **grpc_paths(small),
                         "in_process_payload_only": in_process_call(empty_fn, small),
                         **grpc_paths(small, "payload_only"), **echo}
                fixed[n] = measure(paths, 1, args.iters * 8, rounds=8)
                # CPU time per call, of this process and of the server's: what the host's load barely moves.
                pids = {**echo_pids, **{k: procs["grpc_baseline" if k.startswith("grpc_baseline") else "grpc"].pid
                                        for k in paths if k.startswith("grpc")}}
                fixed[n]["cpu_ms_per_call"] = cpu_per_call(paths, pids, args.iters * 2)
            fixed[n].update(request_bytes=small_request, response_bytes=small_response)
            print(f"{n} row(s), concurrency 1: {fixed[n]}", flush=True)
    finally:
        for name, proc in procs.items():
            if name in clients:
                clients[name].close()
            proc.terminate()
            proc.wait(timeout=60)
    serde = payload_cost(steps, reference, args.iters * 2)
    serde.update(request_bytes=request_bytes, response_bytes=response_bytes)
    print_json("payload (de)serialisation, median ms of each step timed alone", serde)
    floor = transport_floor(request_bytes, response_bytes, args.iters * 2)
    print_json("gRPC transport alone (same message sizes, raw bytes, immediate answer)", floor)
    summary = {"rows": args.rows, "cpu_count": os.cpu_count(),
               "payload_steps_timed_alone_ms": serde["total"],
               "transport_floor_p50_ms": {k: {n: r["p50_ms"] for n, r in v.items()} for k, v in floor.items()},
               # The fixed cost of a call: the server's own cost is the overhead that gRPC alone does not explain.
               "fixed_cost_c1": fixed_cost(fixed, version_dir, {n: make_batch(n) for n in fixed}, args.iters)}
    for c in (1, 8):
        # The payload cost: the steps timed alone. The p50 of the whole round trip's serde in the same rounds as
        # the paths is printed beside it: on an oversubscribed host it
        # can exceed the gRPC path that contains it (a long CPU burst loses more to other processes than a path
        # that sleeps on the socket), so it is a load indicator, not the target's basis.
        payload = serde["total"]
        interleaved = results[f"payload_serde_c{c}"]["p50_ms"]
        for name, suffix, ip_key in [(name, suffix, ip_key) for name in trees for suffix, ip_key in (
                ("", "in_process"), ("_payload_only", "in_process_payload_only"))]:
            ip, g = results[f"{ip_key}_c{c}"], results[f"{name}{suffix}_c{c}"]
            overhead = g["p50_ms"] - ip["p50_ms"]
            summary[f"c{c}{suffix}{name[4:]}"] = {
                "in_process_p50_ms": ip["p50_ms"], "grpc_p50_ms": g["p50_ms"], "in_process_p99_ms": ip["p99_ms"],
                "grpc_p99_ms": g["p99_ms"], "in_process_req_per_s": ip["requests_per_s"],
                "grpc_req_per_s": g["requests_per_s"], "grpc_over_in_process_p50": g["p50_ms"] / ip["p50_ms"],
                "p50_overhead_ms": overhead, "payload_ms": payload,
                "overhead_minus_payload_ms": overhead - payload,
                "overhead_minus_payload_and_transport_ms": (overhead - payload
                                                            - floor[f"c{c}"]["echo_aio_server"]["p50_ms"]),
                "payload_serde_in_the_same_rounds_p50_ms": interleaved,
                "transport_floor_p50_ms": floor[f"c{c}"]["echo_aio_server"]["p50_ms"]}
    summary["host"] = host.read()
    print_json("summary", summary)


if __name__ == "__main__":
    main()
