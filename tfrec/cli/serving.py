"""The PredictionService commands: ``serve`` (a local server of SavedModel versions) and ``predict`` (its client)."""

from __future__ import annotations

import os
import sys

from tfrec.cli.common import UsageError


def _cmd_serve(args) -> int:
    from serving.server import ModelServer, serve_until_signal, sources_from_args

    try:
        sources = sources_from_args(args.model_name, args.base_path, args.model_config_file)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if args.max_batch_rows < 1:
        raise UsageError(f"--max-batch-rows must be >= 1. Received: {args.max_batch_rows}")
    server = ModelServer(sources, host=args.host, port=args.port, poll_seconds=args.poll_seconds,
                         max_message_bytes=int(args.max_message_mb * (1 << 20)), max_batch_rows=args.max_batch_rows)
    serve_until_signal(server, grace=args.grace, printer=lambda s: print(s, flush=True))
    return 0


def _cmd_predict(args) -> int:
    from serving.client import PredictionClient
    from serving.predict_input import InputError, read_examples

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1. Received: --limit={args.limit}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1. Received: --batch-size={args.batch_size}")
    if not os.path.exists(args.input):
        raise UsageError(f"input file not found: {args.input}")
    sent, names = 0, None
    with PredictionClient(args.server, timeout=args.timeout) as client:
        raw = client.metadata(args.model).get("predict_raw")
        try:
            # Streamed: each batch is read, sent and printed before the next one is read.
            for batch in read_examples(args.input, raw, batch_size=args.batch_size, limit=args.limit):
                outputs = client.predict_examples(args.model, batch, signature=args.signature)
                if names is None:
                    names = sorted(k for k, v in outputs.items() if v.ndim == 1)
                    print("\t".join(["row"] + names))
                for i in range(len(batch)):
                    print("\t".join([str(sent + i)] + [f"{float(outputs[k][i]):.6f}" for k in names]))
                sys.stdout.flush()
                sent += len(batch)
        except (InputError, IsADirectoryError) as e:
            raise UsageError(str(e)) from None
    if not sent:
        raise UsageError(f"no examples in {args.input}")
    return 0


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve SavedModel versions over gRPC (TF Serving's PredictionService)")
    p.add_argument("--model-name", dest="model_name", help="model name clients ask for (default 'default')")
    p.add_argument("--base-path", dest="base_path", help="directory of integer version directories")
    p.add_argument("--model-config-file", dest="model_config_file", help="TF Serving models.config instead")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 picks a free one)")
    p.add_argument("--poll-seconds", dest="poll_seconds", type=float, default=1.0,
                   help="how often to look for new versions (default 1)")
    p.add_argument("--max-message-mb", dest="max_message_mb", type=float, default=64.0,
                   help="largest request or response in MiB (default 64)")
    p.add_argument("--max-batch-rows", dest="max_batch_rows", type=int, default=65536,
                   help="most rows (examples, candidates) one request may hold; more is INVALID_ARGUMENT "
                        "(default 65536)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds calls in flight get on SIGTERM (default 5)")
    p.set_defaults(fn=_cmd_serve)


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predictions from a PredictionService (tfrec serve or TF Serving)")
    p.add_argument("--server", default="127.0.0.1:8500", help="host:port (default 127.0.0.1:8500)")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--input", required=True,
                   help="rows.tsv (header = feature names), raw Criteo Kaggle rows (train.txt: no header, as "
                        "prepare reads them), either one gzipped, or a TFRecord of tf.Example (.tfrecord, "
                        ".tfrecord.gz); read as a stream")
    p.add_argument("--signature", help="signature name (default: read from the model's metadata)")
    p.add_argument("--limit", type=int, default=None, help="read and send at most this many rows")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=1024,
                   help="rows per request (default 1024)")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline of each call in seconds (default 10)")
    p.set_defaults(fn=_cmd_predict)
