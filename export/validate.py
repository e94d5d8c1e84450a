"""Post-export validation: the export answers like the Keras model, in a process that has never seen tfrec.

:func:`validate` checks one version directory:

1. ``saved_model_cli show --all`` lists the four stock signatures (and the model's extra ones: a pre-ranking
   model's ``user_embedding``, ``item_embedding``, ``score_candidates``) with their TF Serving method names, and
   its op list is parsed (step 3 checks it);
2. the warmup file parses, has 1 to 1000 PredictionLog records, and every request tensor has exactly the dtype
   of its signature's input;
3. a fresh interpreter (``python -I``: no ``PYTHONPATH``, no tfrec imported, checked) reloads the SavedModel,
   replays every warmup record (Classify / Regress also in a TF1 session, as TF Serving runs them), and checks
   every op of the graph and its function library (and of the ``saved_model_cli`` list) against TensorFlow's op
   registry (:mod:`export.fresh_check`);
4. its outputs equal the in-process Keras model's on the same rows within ``tolerance`` (absolute on
   probabilities and scores, relative to ``max(1, |logit|)`` on logits), and the Classify classes are "0", "1".
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

import export.signatures as sig
import export.warmup as warmup
from tfrec.families.registry import family_of_model
from tfrec.features import PointwiseSchema

FRESH_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fresh_check.py")


@dataclasses.dataclass
class ValidationReport:
    """The outcome of :func:`validate`: ``checks`` is a list of ``(name, passed, detail)``."""

    export_dir: str
    checks: List[Tuple[str, bool, str]] = dataclasses.field(default_factory=list)
    max_abs_diff: float = 0.0
    fresh: Optional["FreshCheck"] = dataclasses.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, bool(passed), detail))

    def format(self) -> str:
        lines = [f"validation of {self.export_dir}: {'PASSED' if self.ok else 'FAILED'}"]
        width = max(len(n) for n, _, _ in self.checks) if self.checks else 0
        for name, passed, detail in self.checks:
            lines.append(f"  {'ok  ' if passed else 'FAIL'}  {name:<{width}}  {detail}")
        return "\n".join(lines)


def saved_model_cli_command() -> List[str]:
    """``saved_model_cli`` of the running interpreter's environment (the script beside it, else the module)."""
    script = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def parse_saved_model_cli(text: str) -> Tuple[Dict[str, str], List[str]]:
    """``saved_model_cli show --all`` output -> (signature -> method name, ops of the serve meta graph)."""
    methods, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^signature_def\['(.+)'\]:$", line.strip())
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^Method name is: ?(.*)$", line.strip())
        if m and current is not None:
            methods[current] = m.group(1).strip()
            current = None
    ops: List[str] = []
    m = re.search(r"contains the following ops: (\{.*?\}|set\(\))", text)
    if m and m.group(1) != "set()":
        ops = sorted(ast.literal_eval(m.group(1)))
    return methods, ops


def _keras_outputs(signature_set: sig.SignatureSet, log) -> Dict[str, np.ndarray]:
    """What the in-process Keras model answers to one warmup record (same keys as the signature)."""
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        name = request.model_spec.signature_name or sig.SERVING_DEFAULT
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        if name == sig.SERVING_DEFAULT:
            features = signature_set.parse(tf.constant(inputs[sig.EXAMPLES_KEY].tolist(), tf.string))
        elif name != sig.PREDICT_RAW and hasattr(signature_set, "keras_outputs"):  # a model's extra signature
            return signature_set.keras_outputs(name, inputs)
        else:
            features = {k: tf.constant(v.tolist() if v.dtype == object else v, signature_set.raw_spec[k].dtype)
                        for k, v in inputs.items()}
        return {k: v.numpy() for k, v in signature_set.predict(features).items()}
    request = getattr(log, kind).request
    serialized = tf.constant([e.SerializeToString() for e in request.input.example_list.examples], tf.string)
    p = signature_set.first_probability(serialized).numpy()
    if kind == "classify_log":
        return {sig.SCORES_KEY: np.stack([1.0 - p, p], axis=1)}
    return {sig.OUTPUTS_KEY: p}


def _extra_signatures(model) -> Dict[str, tuple]:
    extra = getattr(model, "extra_serving_signatures", None)
    return dict(extra()) if callable(extra) else {}


def _check_warmup_dtypes(signature_set: sig.SignatureSet, records) -> List[str]:
    problems = []
    raw = {k: s.dtype.as_datatype_enum for k, s in signature_set.raw_spec.items()}
    extra = {name: {spec.name: spec.dtype.as_datatype_enum for spec in tf.nest.flatten(fn.input_signature)}
             for name, (fn, _) in _extra_signatures(signature_set.model).items()}
    for i, log in enumerate(records):
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        name = request.model_spec.signature_name or sig.SERVING_DEFAULT
        expected = ({sig.EXAMPLES_KEY: tf.string.as_datatype_enum} if name == sig.SERVING_DEFAULT
                    else raw if name == sig.PREDICT_RAW else extra.get(name))
        if expected is None:
            continue
        got = {k: v.dtype for k, v in request.inputs.items()}
        if got != expected:
            problems.append(f"record {i} ({name})")
    return problems


def _close(key: str, got: np.ndarray, want: np.ndarray, tolerance: float) -> Tuple[bool, float]:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return False, float("inf")
    diff = np.abs(got - want)
    if key.endswith("_logit"):
        diff = diff / np.maximum(1.0, np.abs(want))
    worst = float(diff.max()) if diff.size else 0.0
    return bool(worst <= tolerance), worst


@dataclasses.dataclass
class FreshCheck:
    """What the fresh interpreter and ``saved_model_cli`` reported about one export (reusable across models)."""

    cli_returncode: int
    cli_stderr: str
    methods: Dict[str, str]
    cli_ops: List[str]
    fresh_returncode: int
    fresh_stderr: str
    report: Optional[dict]
    arrays: Dict[str, np.ndarray]


def run_fresh_check(export_dir: str, timeout: float = 600.0) -> FreshCheck:
    """Runs ``saved_model_cli show --all`` and :mod:`export.fresh_check` (side by side) on ``export_dir``."""
    with tempfile.TemporaryDirectory(prefix="tfrec-validate-") as tmp:
        cli = subprocess.Popen(saved_model_cli_command() + ["show", "--all", "--dir", export_dir],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        fresh = subprocess.Popen([sys.executable, "-I", FRESH_CHECK, export_dir, tmp], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_env())
        try:
            cli_out, cli_err = cli.communicate(timeout=timeout)
            _, fresh_err = fresh.communicate(timeout=timeout)
        finally:
            for proc in (cli, fresh):
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        methods, cli_ops = parse_saved_model_cli(cli_out)
        report_path, arrays, fresh_report = os.path.join(tmp, "report.json"), {}, None
        if fresh.returncode == 0 and os.path.exists(report_path):
            with open(report_path, encoding="utf-8") as f:
                fresh_report = json.load(f)
            with np.load(os.path.join(tmp, "outputs.npz")) as npz:
                arrays = {k: npz[k] for k in npz.files}
    return FreshCheck(cli.returncode, cli_err, methods, cli_ops, fresh.returncode, fresh_err, fresh_report, arrays)


def _tail(text: str, words: int = 40) -> str:
    return " ".join(text.split()[-words:])


def validate(export_dir: str, model, schema: Optional[PointwiseSchema] = None, tolerance: float = 1e-6,
             timeout: float = 600.0, fresh: Optional[FreshCheck] = None) -> ValidationReport:
    """Validates the export at ``export_dir`` against the Keras ``model`` (see the module docstring).

    Args:
      export_dir: a version directory written by :func:`export.export_model`.
      model: the Keras model that was exported.
      schema: the dataset's schema (default: read off the model).
      tolerance: the largest allowed difference between the reloaded export and the Keras model.
      timeout: seconds for each subprocess.
      fresh: a :class:`FreshCheck` of this export from an earlier call (``report.fresh``), to compare another
        model without running the subprocesses again.

    Returns:
      A :class:`ValidationReport`; ``report.ok`` is False when any check failed (never raises for a failed
      check).
    """
    report = ValidationReport(export_dir)
    signature_set = family_of_model(model).signature_set(model, schema)
    expected_methods = {sig.SERVING_DEFAULT: sig.PREDICT_METHOD, sig.PREDICT_RAW: sig.PREDICT_METHOD,
                        sig.CLASSIFICATION: sig.CLASSIFY_METHOD, sig.REGRESSION: sig.REGRESS_METHOD,
                        **{name: method for name, (_, method) in _extra_signatures(model).items()}}
    fresh = fresh if fresh is not None else run_fresh_check(export_dir, timeout)
    report.fresh = fresh

    wrong = {k: fresh.methods.get(k) for k, v in expected_methods.items() if fresh.methods.get(k) != v}
    if fresh.cli_returncode != 0:
        detail = _tail(fresh.cli_stderr)
    elif wrong:
        detail = f"wrong or missing method names {wrong}"
    else:
        detail = f"{len(fresh.methods) - 1} signatures, {len(fresh.cli_ops)} ops listed"
    report.add("saved_model_cli signatures", fresh.cli_returncode == 0 and not wrong and bool(fresh.cli_ops),
               detail)

    try:
        records = warmup.read_records(warmup.warmup_path(export_dir))
        bad = _check_warmup_dtypes(signature_set, records)
        passed = 0 < len(records) <= warmup.MAX_WARMUP_RECORDS and not bad
        report.add("warmup records", passed, f"{len(records)} PredictionLog records"
                   + (f"; dtypes differ in {bad}" if bad else ""))
    except (tf.errors.OpError, OSError, ValueError) as e:
        records = []
        report.add("warmup records", False, f"unreadable: {' '.join(str(e).split())}")

    fresh_report = fresh.report
    if fresh_report is None:
        report.add("reload in a fresh process", False, _tail(fresh.fresh_stderr))
        return report
    session = fresh_report.get("session_outputs_compared", 0)
    needs_session = any(r.WhichOneof("log_type") in ("classify_log", "regress_log") for r in records)
    if fresh_report["tfrec_imported"]:
        detail = "tfrec was imported"
    elif fresh_report["errors"]:
        detail = "; ".join(fresh_report["errors"])
    elif needs_session and not session:
        detail = "the Classify / Regress records were not replayed in a TF1 session"
    else:
        detail = (f"{len(fresh_report['records'])} warmup records replayed; {session} Classify / Regress outputs "
                  "equal in a TF1 session (as TF Serving runs them)")
    report.add("reload in a fresh process", not fresh_report["tfrec_imported"] and not fresh_report["errors"]
               and (session > 0 or not needs_session), detail)
    non_stock = fresh_report["non_stock_ops"]
    # saved_model_cli lists the ops reachable from the graph, functions included; each must be one the fresh
    # process checked against the registry.
    unlisted = sorted(set(fresh.cli_ops) - set(fresh_report["functions"]) - set(fresh_report["ops"]))
    if non_stock:
        detail = f"not in TensorFlow's op registry: {non_stock}"
    elif unlisted:
        detail = f"saved_model_cli lists ops the graph check did not see: {unlisted}"
    else:
        detail = f"{len(fresh_report['ops'])} distinct ops, all registered by TensorFlow"
    report.add("stock TensorFlow ops only", not non_stock and not unlisted, detail)

    worst, mismatches, compared = 0.0, [], 0
    arrays = fresh.arrays
    for summary in fresh_report["records"]:
        i = summary["record"]
        if i >= len(records):
            mismatches.append(f"record {i}: not readable in this process")
            continue
        want = _keras_outputs(signature_set, records[i])
        for key, value in want.items():
            got = arrays.get(f"r{i}/{key}")
            if got is None:
                mismatches.append(f"record {i}: no output {key!r}")
                continue
            ok, diff = _close(key, got, value, tolerance)
            worst = max(worst, diff)
            compared += 1
            if not ok:
                mismatches.append(f"record {i} {summary['signature']}/{key}: max diff {diff:.3g}")
        classes = summary["outputs"].get(sig.CLASSES_KEY)
        if classes is not None and classes.get("values") != sorted(sig.CLASS_LABELS):
            mismatches.append(f"record {i}: classes {classes.get('values')} != {list(sig.CLASS_LABELS)}")
    report.max_abs_diff = worst
    report.add("predictions equal the Keras model", compared > 0 and not mismatches,
               "; ".join(mismatches[:5]) if mismatches
               else f"{compared} outputs compared, max difference {worst:.2e} (tolerance {tolerance:g})")
    return report
