"""The stages of one Predict call through ``tfrec serve``, each timed alone on the code the client and server run.

Used by ``bench/bench_serving.py`` to break the server's fixed cost per call down: the client's request bytes, the
server's parse and validation, the model call (the signature's structured call that the in-process path and
``fn(**feeds)`` make, beside the call ``serving.loader`` makes: flat, on the single-threaded executor for a small
batch; both also after the idle gap a server's calls have between them), the response's encoding, the whole
server handler, and the client's decoding. The event loop's hand-off to the worker threads is timed by the
transport benchmark (an echo answered on the loop vs through ``serving.workers``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, Sequence

import numpy as np


def interleaved_medians(calls: Dict[str, Callable], iters: int, warmup: int = 5) -> Dict[str, float]:
    """Median ms of each of ``calls``, the calls taking turns (a change of the host's load falls on all alike).
    A call that returns a float (:func:`after_idle`) reports its own time."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in calls}
    for _ in range(iters):
        for k, fn in calls.items():
            t = time.perf_counter()
            out = fn()
            times[k].append(out if isinstance(out, float) else time.perf_counter() - t)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def after_idle(fn: Callable, idle_s: float) -> Callable[[], float]:
    """``fn`` timed after ``idle_s`` seconds of sleep (untimed): a served model's call comes after the rest of the
    previous round trip, when TensorFlow's threads are asleep and other processes have had the CPU's caches."""

    def timed() -> float:
        time.sleep(idle_s)
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return timed


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_call(calls: Dict[str, Callable], pids: Dict[str, int], n: int, rounds: int = 4) -> Dict[str, dict]:
    """``{name: {"client": ms, "server": ms}}``: CPU time per call of this process (``time.process_time``: all its
    threads, gRPC's included) and of the server process ``pids[name]`` (absent for an in-process path), over
    ``rounds`` blocks of ``n`` calls per path taking turns. Unlike latency, CPU time hardly moves with the host's
    load; the kernel counts it in ticks (10 ms), hence many calls."""
    spent = {k: [0.0, 0.0, 0] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            pid = pids.get(k)
            c0, s0 = time.process_time(), _process_cpu(pid) if pid else 0.0
            for _ in range(n):
                fn()
            spent[k][0] += time.process_time() - c0
            spent[k][1] += (_process_cpu(pid) - s0) if pid else 0.0
            spent[k][2] += n
    return {k: {"client": c / m * 1e3, "server": s / m * 1e3} for k, (c, s, m) in spent.items()}


def stage_costs(version_dir: str, batch: Sequence[bytes], iters: int, idle_s: float) -> Dict[str, float]:
    """Median ms of each stage of a Predict call on ``batch`` (serialized tf.Examples) to ``serving_default``; the
    model calls also after ``idle_s`` of idleness (the gap between a server's calls)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from serving import handlers, wire
    from serving.client import request_tensor
    from serving.loader import LoadedModel
    from serving.server import _answer

    model = LoadedModel("ctr", 1, version_dir)
    structured = model._obj.signatures["serving_default"]  # the call the in-process path makes
    header = predict_pb2.PredictRequest()
    header.model_spec.name = "ctr"
    raw = wire.predict_request(header, {"examples": request_tensor(list(batch))})
    request = predict_pb2.PredictRequest.FromString(raw)
    sig = model.signature("")
    arrays = handlers.check_inputs(sig, request.inputs)
    feeds = {"examples": tf.convert_to_tensor(arrays["examples"], tf.string)}
    outputs = model.run(sig, arrays)
    resolve = lambda spec: model  # noqa: E731
    handler = lambda r: handlers.predict(r, resolve)  # noqa: E731
    response = handler(request).SerializeToString()

    def encode():
        resp = predict_pb2.PredictResponse(model_spec=handlers._spec_out(model, sig.name))
        for k, v in outputs.items():
            resp.outputs[k].CopyFrom(wire.numeric_tensor(v))
        return resp.SerializeToString()

    before = lambda: {k: v.numpy() for k, v in structured(**feeds).items()}  # noqa: E731
    now = lambda: {k: v.numpy() for k, v in sig.call(feeds, len(batch)).items()}  # noqa: E731
    return interleaved_medians({
        "client: request bytes (serving.wire)": lambda: wire.predict_request(
            header, {"examples": request_tensor(list(batch))}),
        "server: parse + validate (FromString, signature, check_inputs)": lambda: handlers.check_inputs(
            model.signature(""), predict_pb2.PredictRequest.FromString(raw).inputs),
        "server: model call, structured fn(**feeds) (in-process path, server before)": before,
        "server: model call, flat, single-threaded executor (serving.loader, server now)": now,
        f"  the same after {idle_s * 1e3:.1f} ms idle: structured": after_idle(before, idle_s),
        f"  the same after {idle_s * 1e3:.1f} ms idle: server now": after_idle(now, idle_s),
        "server: response encode": encode,
        "server: whole handler (serving.server._answer)": lambda: _answer(
            handler, predict_pb2.PredictRequest.FromString, raw),
        "client: response decode + ndarrays (serving.wire.to_ndarray)": lambda: {
            k: wire.to_ndarray(v) for k, v in predict_pb2.PredictResponse.FromString(response).outputs.items()},
    }, iters)


def fixed_cost(fixed: dict, version_dir: str, batches: dict, iters: int) -> dict:
    """Per batch size of ``fixed`` ({rows: bench_serving.measure() of the paths and the echo servers}; ``batches``:
    {rows: the batch}): the gRPC path's p50 overhead, gRPC alone on the same bytes, the server's own cost (their
    difference) against the 1 ms target, and its breakdown (the hand-off to the worker threads; the stages)."""
    out = {}
    for n, r in fixed.items():
        alone = r["echo_aio_server"]["p50_ms"]
        entry = {"request_bytes": r["request_bytes"], "response_bytes": r["response_bytes"],
                 "transport_alone_p50_ms": alone,
                 "cpu_ms_per_call_in_process": r["cpu_ms_per_call"]["in_process"]["client"],
                 "cpu_ms_per_call_transport_alone": sum(r["cpu_ms_per_call"]["echo_aio_server"].values()),
                 "hand_off_to_workers_ms": r["echo_aio_workers_server"]["p50_ms"] - alone}
        for sig, ip, g in [(sig + server[4:], ip, server + suffix) for server in ("grpc", "grpc_baseline")
                           for sig, ip, suffix in (("serving_default", "in_process", ""),
                                                   ("payload_only", "in_process_payload_only", "_payload_only"))
                           if server + suffix in r]:
            overhead = r[g]["p50_ms"] - r[ip]["p50_ms"]
            cpu = r["cpu_ms_per_call"]
            own_cpu = (sum(cpu[g].values()) - sum(cpu[ip].values()) - sum(cpu["echo_aio_server"].values()))
            entry[sig] = {"in_process_p50_ms": r[ip]["p50_ms"], "grpc_p50_ms": r[g]["p50_ms"],
                          "p50_overhead_ms": overhead, "own_cost_ms": overhead - alone,
                          "own_cost_at_most_1ms": overhead - alone <= 1.0,
                          # The same difference in CPU time: the gRPC path's (client + server) minus the
                          # in-process call's minus gRPC alone's.
                          "cpu_ms_per_call_client_server": [cpu[g]["client"], cpu[g]["server"]],
                          "own_cpu_ms": own_cpu}
        idle = max(entry["serving_default"]["p50_overhead_ms"], 0.0) / 1e3  # the server's gap between calls
        entry["stages_timed_alone_ms"] = stage_costs(version_dir, batches[n], iters * 8, idle)
        print(f"fixed cost, {n} row(s): " + json.dumps(entry, indent=2), flush=True)
        out[f"{n}_rows"] = entry
    return out
