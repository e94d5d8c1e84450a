"""A local PredictionService and ModelService over gRPC, on TF Serving's protos and base-path layout.

Serves the SavedModel versions a :class:`serving.manager.ModelManager` holds: Predict (any signature),
Classify and Regress (signatures of those methods), GetModelMetadata (``signature_def``) and
ModelService.GetModelStatus, with TF Serving's status codes (see ``serving.handlers``). Messages past the size
limit get RESOURCE_EXHAUSTED from gRPC itself. It binds 127.0.0.1 unless told otherwise, and on SIGTERM stops
accepting calls, lets the calls in flight finish (up to ``grace`` seconds) and exits.

The gRPC server is ``grpc.aio``'s, on an event loop in its own thread; each call's bytes go to a worker thread
(``max_workers`` of them, ``serving.workers``) that parses the request, runs the model and serializes the answer,
so calls run in parallel. A request may claim at most ``max_batch_rows`` rows (see ``serving.limits``).

Example::

    server = ModelServer([ModelSource("ctr", "exports/ctr")], port=0).start()
    print(server.address)        # 127.0.0.1:<free port>
    ...
    server.stop()
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Callable, List, Optional, Sequence

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2,
                                     regression_pb2)

from serving import handlers
from serving.errors import ServingError, from_exception, invalid
from serving.limits import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_ELEMENTS, check_rows, request_examples
from serving.manager import ModelManager, ModelSource, read_model_config
from serving.workers import Workers

log = logging.getLogger("tfrec.serving")
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
_STATES = get_model_status_pb2.ModelVersionStatus.State


def _answer(fn: Callable, parse: Callable, raw: bytes):
    """``fn(parse(raw))`` serialized, or the ``ServingError`` it failed with (never raises)."""
    try:
        try:
            request = parse(raw)
        except DecodeError:
            raise invalid("the request does not parse as the method's request message") from None
        return fn(request).SerializeToString()
    except Exception as e:  # noqa: BLE001 - every failure is a status code, and the server keeps serving
        err = from_exception(e)
        if err.code == grpc.StatusCode.INTERNAL:
            log.exception("request failed")
        code, message = err.code, err.message
        # The error's traceback holds this frame, which holds ``err``: a cycle that keeps the request the frames
        # below hold (MBs for a big refused request) until the cyclic collector runs. Dropping the name ends it.
        del err
    return ServingError(code, message)


class _CountedRequest:
    """Stands in for a Classify / Regress request class: its ``FromString`` first counts the examples on the wire,
    and more than ``max_rows`` is refused before the message is parsed (``serving.limits.request_examples``)."""

    def __init__(self, request_class, max_rows: int):
        self.request_class, self.max_rows = request_class, max_rows

    def FromString(self, raw: bytes):  # noqa: N802 - protobuf's name
        check_rows(request_examples(raw, self.max_rows), self.max_rows, "examples")
        return self.request_class.FromString(raw)


class _Methods:
    """The methods served: ``{service: {method: (request class, handler(request) -> response)}}``.

    PredictionService: Predict, Classify, Regress, GetModelMetadata (MultiInference answers UNIMPLEMENTED);
    ModelService: GetModelStatus (HandleReloadConfigRequest answers UNIMPLEMENTED).
    """

    def __init__(self, manager: ModelManager, max_elements: int = DEFAULT_MAX_ELEMENTS,
                 max_rows: int = DEFAULT_MAX_BATCH_ROWS):
        self.manager = manager
        get = manager.get
        self.table = {
            "tensorflow.serving.PredictionService": {
                "Predict": (predict_pb2.PredictRequest, lambda r: handlers.predict(r, get, max_elements, max_rows)),
                "Classify": (_CountedRequest(classification_pb2.ClassificationRequest, max_rows),
                             lambda r: handlers.classify(r, get, max_rows)),
                "Regress": (_CountedRequest(regression_pb2.RegressionRequest, max_rows),
                            lambda r: handlers.regress(r, get, max_rows)),
                "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                                     lambda r: handlers.metadata(r, get)),
            },
            "tensorflow.serving.ModelService": {
                "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest, self.status),
            },
        }

    def status(self, request):
        if not request.HasField("model_spec"):  # TF Serving's get_model_status_impl.cc: "Missing ModelSpec"
            raise invalid("the GetModelStatusRequest has no model_spec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        response = get_model_status_pb2.GetModelStatusResponse()
        for v, st in self.manager.status(spec.name, version):
            entry = response.model_version_status.add(version=v, state=_STATES.Value(st.state))
            if st.error is not None:
                entry.status.error_code = st.error.code.value[0]
                entry.status.error_message = st.error.message
        return response

    def generic_handlers(self, pool: Workers):
        """gRPC handlers on raw bytes: the event loop only moves bytes; parsing, the model run and the answer's
        serialization run in ``pool`` (TensorFlow releases the GIL, so calls run in parallel)."""

        def method(request_class, fn):
            parse = request_class.FromString

            async def handle(raw, context):
                out = await pool.run(_answer, fn, parse, raw)
                if isinstance(out, ServingError):
                    await context.abort(out.code, out.message)
                return out

            return grpc.unary_unary_rpc_method_handler(handle)

        return [grpc.method_handlers_generic_handler(service, {name: method(*m) for name, m in methods.items()})
                for service, methods in self.table.items()]


def _host_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class ModelServer:
    """A gRPC server of PredictionService and ModelService for the given models.

    Args:
      sources: the models (see :class:`serving.manager.ModelSource` and :func:`sources_from_args`).
      host: interface to bind (``127.0.0.1`` by default; ``0.0.0.0`` to accept remote clients).
      port: port to bind; 0 picks a free one (read it back from :attr:`port`).
      poll_seconds: how often base paths are scanned for new versions.
      max_message_bytes: the largest request and response message accepted.
      max_workers: threads answering calls (TensorFlow runs in them).
      max_elements: the largest element count one request tensor may claim.
      max_batch_rows: the most rows one request may claim (Predict: an input's first dimension; Classify /
        Regress: examples; example lists: candidates); more is INVALID_ARGUMENT, before anything is expanded.
    """

    def __init__(self, sources: Sequence[ModelSource], host: str = "127.0.0.1", port: int = 8500,
                 poll_seconds: float = 1.0, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_workers: int = 16, max_elements: int = DEFAULT_MAX_ELEMENTS,
                 max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS):
        if not sources:
            raise ValueError("no model to serve")
        if max_message_bytes < 1:
            raise ValueError(f"`max_message_bytes` must be >= 1. Received: max_message_bytes={max_message_bytes}")
        if max_batch_rows < 1 or max_workers < 1:
            raise ValueError(f"`max_batch_rows` and `max_workers` must be >= 1. Received: "
                             f"max_batch_rows={max_batch_rows}, max_workers={max_workers}")
        if not 0 <= port < 65536:
            raise ValueError(f"`port` must be in [0, 65535]. Received: port={port}")
        self.manager = ModelManager(sources, poll_seconds, warmup=handlers.replay_warmup)
        self.host, self._port = host, int(port)
        self.max_message_bytes = int(max_message_bytes)
        self.max_workers, self.max_elements = int(max_workers), int(max_elements)
        self.max_batch_rows = int(max_batch_rows)
        self.port: Optional[int] = None
        self._server: Optional[grpc.aio.Server] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._pool: Optional[Workers] = None

    @property
    def address(self) -> str:
        """``host:port`` a client connects to (after :meth:`start`)."""
        return _host_port(self.host, self.port)

    def start(self) -> "ModelServer":
        """Loads the models (blocking, warmup included), binds and starts answering.

        Raises:
          RuntimeError: the port cannot be bound.
        """
        self.manager.start()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="tfrec-serving-grpc", daemon=True)
        thread.start()
        pool = Workers(self.max_workers)
        try:
            server, port, reason = asyncio.run_coroutine_threadsafe(self._bind(pool), loop).result()
        except BaseException:
            self._close(loop, thread, pool)
            self.manager.stop()
            raise
        if not port:
            self._close(loop, thread, pool)
            self.manager.stop()
            raise RuntimeError(f"cannot bind {_host_port(self.host, self._port)}: {reason}")
        self.port = port
        self._server, self._loop, self._thread, self._pool = server, loop, thread, pool
        return self

    async def _bind(self, pool: Workers):
        # grpc.aio rather than grpc.server: the sync server hands each call from its polling thread to a worker
        # before it reads the request, which for a 2.9 MB batch costs ~2-3 ms over loopback (bench_serving.py).
        options = [("grpc.max_receive_message_length", self.max_message_bytes),
                   ("grpc.max_send_message_length", self.max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        server = grpc.aio.server(options=options)
        methods = _Methods(self.manager, self.max_elements, self.max_batch_rows)
        server.add_generic_rpc_handlers(methods.generic_handlers(pool))
        try:
            port = server.add_insecure_port(_host_port(self.host, self._port))
        except RuntimeError as e:
            port, reason = 0, str(e)
        else:
            reason = "address in use or not available"
        if port:
            await server.start()
        else:
            await server.stop(None)
        return server, port, reason

    @staticmethod
    def _close(loop: asyncio.AbstractEventLoop, thread: threading.Thread, pool: Workers) -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=60)
        pool.shutdown()
        loop.close()

    def stop(self, grace: float = 5.0) -> None:
        """Stops accepting calls, waits up to ``grace`` seconds for the ones in flight, stops polling."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop).result()
            self._close(self._loop, self._thread, self._pool)
            self._server = None
        self.manager.stop()

    def __enter__(self) -> "ModelServer":
        return self.start() if self._server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def sources_from_args(model_name: Optional[str] = None, base_path: Optional[str] = None,
                      model_config_file: Optional[str] = None) -> List[ModelSource]:
    """The models named by TF Serving's flags: ``--model_name/--model_base_path`` or ``--model_config_file``.

    Raises:
      ValueError: neither or both ways are given.
      FileNotFoundError: the config file or the base path does not exist.
    """
    import os

    if model_config_file and (model_name or base_path):
        raise ValueError("give either --model-config-file or --model-name/--base-path, not both")
    if model_config_file:
        return read_model_config(model_config_file)
    if not base_path:
        raise ValueError("no model given: --base-path DIR (and --model-name) or --model-config-file FILE")
    if not os.path.isdir(base_path):
        raise FileNotFoundError(f"model base path not found: {base_path}")
    return [ModelSource(name=model_name or "default", base_path=os.path.abspath(base_path))]


def serve_until_signal(server: ModelServer, grace: float = 5.0,
                       printer: Callable[[str], None] = print) -> None:
    """Starts ``server``, prints its address, and stops it gracefully on SIGTERM or SIGINT."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        names = ", ".join(f"{n} (versions {server.manager.available(n)})" for n in server.manager.sources)
        printer(f"serving {names} on {server.address}")
        while not stop.wait(0.5):
            pass
        printer("stopping: finishing the calls in flight")
        server.stop(grace)
        printer("stopped")
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
