"""`tfrec serve` in its own process: prints the bound port, answers, and stops gracefully on SIGTERM."""

import os
import signal
import threading

import grpc
import numpy as np
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.client import PredictionClient
from tests.support.serving_models import example, predict_request, save_model, start_serve


def test_serve_prints_its_port_and_stops_gracefully_on_sigterm(tmp_path):
    base = str(tmp_path / "ctr")
    save_model(os.path.join(base, "1"), 2.0)
    proc, line = start_serve(base, "--grace", "10")
    try:
        assert line.startswith("serving ctr (versions [1]) on 127.0.0.1:"), line + proc.stderr.read()
        address = line.split(" on ")[1].strip()
        with PredictionClient(address) as client:
            np.testing.assert_allclose(client.predict_examples("ctr", [example(1.0, "a")])["ctr_logit"], [3.0])
        # A stream of large requests is in flight when SIGTERM arrives: each one is answered or refused
        # (UNAVAILABLE: the server no longer accepts calls), never cut off half way.
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))
        big = predict_request(examples=[example(float(i), "a") for i in range(20000)])
        calls = [stub.Predict.future(big, timeout=60) for _ in range(4)]
        threading.Event().wait(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopping: finishing the calls in flight" in out and out.strip().endswith("stopped"), out
        answered = 0
        for f in calls:
            try:
                assert len(f.result().outputs["ctr"].float_val or f.result().outputs["ctr"].tensor_content) > 0
                answered += 1
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
        assert answered >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_bad_arguments_are_one_line(tmp_path, capsys):
    from tfrec.cli import main

    assert main(["serve", "--base-path", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == f"tfrec serve: error: model base path not found: {tmp_path / 'none'}"
    assert main(["serve", "--model-name", "m"]) == 2
    assert "no model given" in capsys.readouterr().err
    (tmp_path / "models.config").write_text("model_config_list { config { name: 'a' } }")
    assert main(["serve", "--model-config-file", str(tmp_path / "models.config")]) == 2
    assert capsys.readouterr().err.strip() == "tfrec serve: error: model 'a' has no base_path"
