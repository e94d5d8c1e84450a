"""The tfrec command: bad command lines and configs exit non-zero with one line naming the problem."""

import os
import subprocess
import sys

import pytest

from tfrec.cli import main
from tests.support import ROOT



def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv, code, needle", [
    (["train", "--set", "train.epochz=3", "--data", "x", "--model-dir", "y"], 2, "unknown config key `train.epochz`"),
    (["train", "--set", "train.epochs=-1"], 2, "`train.epochs` must be > 0"),
    (["train", "--set", "model.loss.name=nope"], 2, "unknown loss 'nope'"),
    (["train", "--config", "/nonexistent/c.yaml"], 2, "config file not found: /nonexistent/c.yaml"),
    (["train", "--data", "/nonexistent/data", "--model-dir", "/tmp/m"], 2,
     "prepared dataset directory not found: /nonexistent/data"),
    (["evaluate", "--data", "/nonexistent/data", "--model-dir", "/nonexistent/model"], 2, "/nonexistent/"),
    (["prepare", "--input", "/nonexistent/train.txt", "--out", "/tmp/tfrec_cli_out"], 2, "/nonexistent/train.txt"),
    (["prepare", "--input", "a.txt"], 2, "no output directory given"),
    (["simulate", "--rows", "10"], 2, "no output path given"),
])
def test_bad_input_is_one_line(capsys, argv, code, needle):
    got, err = _run(capsys, argv)
    assert got == code, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tfrec {argv[0]}: error:") and needle in lines[0], lines[0]


@pytest.mark.parametrize("argv, needle", [
    ([], "the following arguments are required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["train", "--epochs", "many"], "invalid int value: 'many'"),
    (["evaluate", "--split", "dev"], "invalid choice: 'dev'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_command_lines_are_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_console_script_help_and_exit_code(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    ok = subprocess.run([sys.executable, "-m", "tfrec.cli", "--help"], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=120)
    assert ok.returncode == 0 and "demo" in ok.stdout and "prepare" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "tfrec.cli", "train", "--data", str(tmp_path / "none"),
                          "--model-dir", str(tmp_path / "m")], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and str(tmp_path / "none") in bad.stderr


@pytest.mark.parametrize("argv, config", [
    (["train", "--help"], "tfrec.config.RunConfig"),
    (["evaluate", "--help"], "tfrec.config.RunConfig"),
    (["prepare-hybrid", "--help"], "tfrec.config.RunConfig"),
    (["pipeline", "run", "--help"], "pipelines.tfx.config.PipelineConfig"),
])
def test_help_names_every_config_section(capsys, argv, config):
    import dataclasses
    import importlib
    import re

    module, name = config.rsplit(".", 1)
    sections = [f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name))]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    listed = re.search(r"\(sections: ([a-z_, ]+)[;)]", text)
    assert listed is not None, text
    assert listed.group(1).split(", ") == sections


def test_pipeline_run_engine_tfx_without_tfx_names_the_extra(capsys):
    """`tfrec pipeline run --engine tfx` on an install without the tfx extra: exit 2 with the install command."""
    import importlib.util

    if importlib.util.find_spec("tfx") is not None:
        pytest.skip("TFX is installed here; tests/pipelines/tfx_native runs the tfx engine")
    config = os.path.join(ROOT, "configs", "pipeline_criteo.yaml")
    code, err = _run(capsys, ["pipeline", "run", "--engine", "tfx", "--config", config])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--engine tfx needs the tfx extra" in err and "--ignore-requires-python" in err, err
    code, err = _run(capsys, ["pipeline", "run", "--engine", "tfx", "--resume", "--config", config])
    assert code == 2 and "--resume belongs to the local engine" in err, err


def test_flags_bind_to_config_fields_with_their_types(monkeypatch):
    """A command's flags reach the config as the values argparse typed (``tfrec.cli.common.flag_values``), not as
    YAML text parsed again: nothing is parsed without --set, a string stays a string, a list a list, a nested
    key goes to its subsection, an unset flag sets nothing; --set comes after the flags."""
    import argparse

    from tfrec.cli.common import flag_values, load
    from tfrec.config import run as config_run

    mapping = {"out": "simulation.output", "rows": "simulation.rows", "share": "simulation.funnel.noisy_click_share",
               "seed": "simulation.seed", "inputs": "prepare.inputs"}
    args = argparse.Namespace(out="2024", rows=12, share=0.25, seed=None, inputs=["a.txt", "yes"], config=None,
                              overrides=[])
    assert flag_values(args, mapping) == {"simulation": {"output": "2024", "rows": 12,
                                                         "funnel": {"noisy_click_share": 0.25}},
                                          "prepare": {"inputs": ["a.txt", "yes"]}}

    def no_parse(text):
        raise AssertionError(f"a flag was parsed as an override: {text}")

    with monkeypatch.context() as m:
        m.setattr(config_run, "parse_override", no_parse)
        cfg = load(args, mapping)
    assert (cfg.simulation.output, cfg.simulation.rows, cfg.simulation.funnel.noisy_click_share) == ("2024", 12, 0.25)
    assert cfg.prepare.inputs == ["a.txt", "yes"]
    assert cfg.simulation.seed == load(argparse.Namespace(config=None, overrides=[]), {}).simulation.seed
    args.overrides = ["simulation.rows=7"]
    assert load(args, mapping).simulation.rows == 7
