"""BUILD stays accurate: every module of the four packages is in a py_library, every test file has a py_test,
every listed file exists, and `bazel query //...` succeeds when bazel is installed (required under CI and
.ci/run, skipped with the reason elsewhere)."""

import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("tfrec", "pipelines", "export", "serving")


def _read_build():
    """Evaluates BUILD with stand-ins for the native rules it uses; returns {target name: (kind, attrs)}."""
    targets = {}

    def rule(kind):
        def fn(name, **attrs):
            assert name not in targets, f"duplicate target {name}"
            targets[name] = (kind, attrs)
        return fn

    env = {"py_library": rule("py_library"), "py_test": rule("py_test"), "py_binary": rule("py_binary"),
           "filegroup": rule("filegroup"), "package": lambda **kw: None,
           "exports_files": lambda *a, **kw: None, "glob": lambda *a, **kw: pytest.fail("BUILD must not glob"),
           "__builtins__": {}}
    with open(os.path.join(ROOT, "BUILD"), encoding="utf-8") as f:
        exec(compile(f.read(), "BUILD", "exec"), env)  # BUILD's Starlark subset is valid Python
    return targets


def test_every_module_belongs_to_a_library_and_every_file_exists():
    targets = _read_build()
    libs = {n: a for n, (k, a) in targets.items() if k == "py_library"}
    for pkg in PACKAGES:
        assert pkg in libs, f"no py_library named {pkg}"
    listed = {src for a in libs.values() for src in a.get("srcs", [])}
    modules = {os.path.relpath(p, ROOT) for pkg in PACKAGES
               for p in glob.glob(os.path.join(ROOT, pkg, "**", "*.py"), recursive=True)}
    missing = sorted(modules - listed)
    assert not missing, f"modules not in any py_library of BUILD: {missing}"
    for name, (_, attrs) in targets.items():
        for src in list(attrs.get("srcs", [])) + list(attrs.get("data", [])):
            assert os.path.exists(os.path.join(ROOT, src)), f"{name} lists a missing file {src}"


def test_every_test_file_has_a_py_test():
    targets = _read_build()
    tests = {a["srcs"][0] for n, (k, a) in targets.items() if k == "py_test"}
    files = {os.path.relpath(p, ROOT)
             for p in glob.glob(os.path.join(ROOT, "tests", "**", "test_*.py"), recursive=True)}
    assert not sorted(files - tests), f"test files without a py_test: {sorted(files - tests)}"


def _bazel_required() -> bool:
    """Whether a missing bazel is a failure: under CI (``CI`` set, not "0" / "false") and under ``.ci/run``
    (which installs bazel-bootstrap and exports ``TFREC_REQUIRE_BAZEL=1``)."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("TFREC_REQUIRE_BAZEL", "").strip() == "1"


def test_bazel_required_under_ci_and_ci_run(monkeypatch):
    for ci, flag, required in (("", "", False), ("0", "", False), ("false", "", False), ("true", "", True),
                               ("1", "", True), ("", "1", True), ("", "0", False)):
        monkeypatch.setenv("CI", ci)
        monkeypatch.setenv("TFREC_REQUIRE_BAZEL", flag)
        assert _bazel_required() is required, (ci, flag)
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert "export TFREC_REQUIRE_BAZEL=1" in f.read().splitlines()


def test_bazel_query():
    bazel = shutil.which("bazel")
    if bazel is None:
        reason = "bazel is not installed (apt-get install bazel-bootstrap); BUILD was checked by parsing it"
        if _bazel_required():
            pytest.fail(f"{reason}, but CI / .ci/run require bazel (CI={os.environ.get('CI', '')!r}, "
                        f"TFREC_REQUIRE_BAZEL={os.environ.get('TFREC_REQUIRE_BAZEL', '')!r})")
        pytest.skip(reason)
    out = subprocess.run([bazel, "query", "//..."], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    labels = set(out.stdout.split())
    assert {f"//:{p}" for p in PACKAGES} <= labels
    assert "//:test_build" in labels
