"""Writes BUILD from the tree: one py_library per package, a testonly library of the test helpers, one py_test
per tests/test_*.py. Run from anywhere: ``python tools/gen_build.py``; tests/test_build.py checks the result."""

import glob
import os

os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LARGE = ("test_train", "test_demo", "test_pipeline_criteo", "test_losses_fit", "test_train_multitask", "test_experiments",
         "test_experiments_hccp", "test_tfx_criteo")


def files(pkg):
    return sorted(os.path.relpath(p) for p in glob.glob(f"{pkg}/**/*.py", recursive=True))
def lst(items, indent=8):
    pad = " " * indent
    return "[\n" + "".join(f'{pad}"{i}",\n' for i in items) + " " * (indent - 4) + "]"
out = ['''# Bazel targets of tfrec: one py_library per package, one py_test per test file.
# `bazel query //...` checks this file offline; tests/test_build.py checks that every module and test file is
# listed. Third-party packages (tensorflow, tf-keras, apache-beam, ...) come from the Python environment
# (pip install -c constraints.txt -e .); map them to your pip repository rules where you build hermetically.

package(default_visibility = ["//visibility:public"])
''']
deps = {"tfrec": [], "pipelines": [":tfrec"], "export": [":tfrec"], "serving": [":tfrec", ":export", ":pipelines"]}
data = {"tfrec": sorted(glob.glob("tfrec/configs/*.yaml"))}
for pkg in ("tfrec", "pipelines", "export", "serving"):
    s = f'py_library(\n    name = "{pkg}",\n    srcs = {lst(files(pkg))},\n'
    if data.get(pkg):
        s += f'    data = {lst(data[pkg])},\n'
    s += '    imports = ["."],\n'
    if deps[pkg]:
        s += f'    deps = {lst(deps[pkg])},\n'
    s += ")\n"
    out.append(s)
out.append('''py_library(
    name = "test_support",
    testonly = True,
    srcs = %s,
    imports = ["."],
    deps = [":tfrec"],
)
''' % lst(sorted(p for p in glob.glob("tests/*.py") if not os.path.basename(p).startswith("test_"))))
# The peers benchmark's helpers, for the tests of its own logic (bench/ runs from the repository root).
out.append('py_library(\n    name = "bench_peers",\n    testonly = True,\n    srcs = %s,\n    imports = ["."],\n'
           '    deps = [":tfrec", ":pipelines"],\n)\n'
           % lst(["bench/bench_peers.py", "bench/common.py"] + files("bench/peers")))
# Test files in subdirectories of tests/ (tests/tfx_native: the tfx extra's tests) carry their directory's
# helpers in their srcs.
for t in sorted(glob.glob("tests/test_*.py")) + sorted(glob.glob("tests/*/**/test_*.py", recursive=True)):
    name = os.path.basename(t)[:-3]
    extra_deps = [":test_support", ":tfrec", ":pipelines", ":export", ":serving"]
    if name == "test_bench_peers":
        extra_deps.append(":bench_peers")
    size = "large" if name in LARGE else "medium"
    helpers = [] if os.path.dirname(t) == "tests" else sorted(
        p for p in glob.glob(os.path.join(os.path.dirname(t), "*.py")) if not os.path.basename(p).startswith("test_"))
    s = (f'py_test(\n    name = "{name}",\n    size = "{size}",\n    srcs = [\n        "{t}",\n'
         + "".join(f'        "{h}",\n' for h in helpers) +
         f'        "tests/pytest_main.py",\n    ],\n    args = ["{t}"],\n    main = "tests/pytest_main.py",\n')
    if name == "test_build":
        s += '    data = ["BUILD"],\n'
    if name == "test_results_docs":  # the documents and the run records it checks
        s += f'    data = {lst(sorted(glob.glob("docs/results/**/*.*", recursive=True)))},\n'
    s += f'    deps = {lst(extra_deps)},\n)\n'
    out.append(s)
open("BUILD", "w").write("\n".join(out))
