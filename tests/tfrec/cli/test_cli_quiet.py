"""The tfrec command starts quietly: the libraries' import-time noise is hidden unless --verbose, real errors are
not; --version prints the package version."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import version

import pytest

from tfrec.cli import build_parser
from tfrec.quiet import NOISE, is_noise
from tests.support import ROOT

TF_LINE = (b"2026-12-02 11:28:39.462812: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] Unable to "
           b"register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been "
           b"registered")
BEAM_LINE = (b"WARNING:root:apitools not found, and bigquery client libraries are not available despite the import "
             b"not raising an ImportError.")


def _tfrec(args, cwd):
    """Runs the installed ``tfrec`` console script (``python -m tfrec.cli`` where there is none) as a user would,
    with the environment as it is (no TF_CPP_MIN_LOG_LEVEL of the test's own)."""
    script = os.path.join(os.path.dirname(sys.executable), "tfrec")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "tfrec.cli"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFREC_DEBUG")}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _noise_lines(text: str):
    return [line for line in text.splitlines() if is_noise(line.encode("utf-8"))]


def test_prepare_starts_quietly_and_verbose_shows_the_noise(tmp_path):
    # A real subcommand that imports TensorFlow and Beam, then stops on a missing input (exit 2, one line).
    args = ["prepare", "--input", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "out")]
    quiet = _tfrec(args, tmp_path)
    assert quiet.returncode == 2, quiet.stderr
    assert _noise_lines(quiet.stderr) == [], quiet.stderr
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfrec prepare: error:") and "missing.txt" in lines[0], lines

    verbose = _tfrec(["--verbose"] + args, tmp_path)
    assert verbose.returncode == 2, verbose.stderr
    assert "missing.txt" in verbose.stderr.splitlines()[-1]
    shown = _noise_lines(verbose.stderr)
    if not shown:
        pytest.skip("neither TensorFlow nor Beam prints its start-up noise on this machine, so --verbose has "
                    "nothing to show (the quiet run above passed)")
    assert any("Unable to register" in line for line in shown), shown  # TensorFlow 2.15's CUDA plugin lines


def test_predict_starts_quietly(tmp_path):
    # predict reads TensorFlow's protos (it imports TensorFlow), then fails to reach a server that is not there.
    rows = tmp_path / "rows.tsv"
    rows.write_text("0\t1\t2\n")
    run = _tfrec(["predict", "--server", "127.0.0.1:1", "--model", "ctr", "--input", str(rows)], tmp_path)
    assert run.returncode != 0
    assert _noise_lines(run.stderr) == [], run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfrec predict: error:"), lines


def test_verbose_is_accepted_before_and_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--verbose", "prepare"]).verbose is True
    assert parser.parse_args(["prepare", "--verbose"]).verbose is True
    assert getattr(parser.parse_args(["prepare"]), "verbose", False) is False


def test_version_prints_the_package_version(tmp_path):
    got = _tfrec(["--version"], tmp_path)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == f"tfrec {version('tfrec')}"
    assert _noise_lines(got.stderr) == []


def _import_in_fresh_process(tmp_path, name: str, body: str, verbose: bool = False, after: bytes = b""):
    """Writes module ``name`` with ``body`` to ``tmp_path``, imports it through ``import_quietly`` in a fresh Python
    (where sys.stderr writes to fd 2, as in the command), then writes ``after`` to fd 2; returns the process."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    code = textwrap.dedent(f"""
        import os, sys
        from tfrec.quiet import import_quietly
        try:
            import_quietly([{name!r}], verbose={verbose!r})
        except ImportError as e:
            print("ImportError:", e)
        os.write(2, {after!r})
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=tmp_path, env=env, timeout=60)


NOISY_BODY = f"""
    import os, sys
    os.write(2, {TF_LINE!r} + b"\\n")                 # C++-level: straight to fd 2
    sys.stderr.write({BEAM_LINE.decode()!r} + "\\n")  # Python-level: logging's default handler
    os.write(2, b"E real error while importing\\n")
    sys.stderr.write("a real Python warning\\n")
"""


def test_import_quietly_drops_only_the_noise_and_only_during_the_import(tmp_path):
    got = _import_in_fresh_process(tmp_path, "tfrec_fake_noisy", NOISY_BODY,
                                   after=TF_LINE + b" (printed after the import)\n")
    assert got.returncode == 0, got.stderr
    # The noise of the import is gone, its other lines kept in order; a line written after it passes untouched,
    # even one that looks like noise.
    assert got.stderr.decode().splitlines() == ["E real error while importing", "a real Python warning",
                                                TF_LINE.decode() + " (printed after the import)"]


def test_import_quietly_verbose_shows_everything(tmp_path):
    got = _import_in_fresh_process(tmp_path, "tfrec_fake_noisy", NOISY_BODY, verbose=True)
    assert got.stderr.decode().splitlines() == [TF_LINE.decode(), BEAM_LINE.decode(), "E real error while importing",
                                                "a real Python warning"]


def test_import_quietly_failed_import_keeps_its_message(tmp_path):
    got = _import_in_fresh_process(tmp_path, "tfrec_fake_broken", f"""
        import os
        os.write(2, {TF_LINE!r} + b"\\n")
        os.write(2, b"libfoo.so: cannot open shared object file\\n")
        raise ImportError("No module named 'crcmod'")
    """, after=b"stderr is back\n")
    assert got.stdout.decode().strip() == "ImportError: No module named 'crcmod'"
    assert got.stderr.decode().splitlines() == ["libfoo.so: cannot open shared object file", "stderr is back"]


def test_noise_patterns_match_the_real_lines():
    assert is_noise(TF_LINE) and is_noise(BEAM_LINE)
    for fft in (b"cuFFT", b"cuBLAS"):
        assert is_noise(TF_LINE.replace(b"cuDNN", fft))
    assert not is_noise(b"E tensorflow/core/framework/op_kernel.cc:1827] OP_REQUIRES failed: Unable to register")
    assert len(NOISE) == 2
