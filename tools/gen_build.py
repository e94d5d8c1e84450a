"""Writes BUILD from the tree: one py_library per package, a testonly library of the test helpers, one py_test
per test file (tests/**/test_*.py). Run from anywhere: ``python tools/gen_build.py``; tests/test_build.py checks the
result."""

import glob
import os
import re

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
# The tests' packages (every folder of tests/ is one), conftest.py and helpers: every .py under tests/ but the tests.
out.append('''py_library(
    name = "test_support",
    testonly = True,
    srcs = %s,
    imports = ["."],
    deps = [":tfrec"],
)
''' % lst(sorted(p for p in files("tests") if not os.path.basename(p).startswith("test_"))))
# The peers benchmark's helpers, for the tests of its own logic (bench/ runs from the repository root).
out.append('py_library(\n    name = "bench_peers",\n    testonly = True,\n    srcs = %s,\n    imports = ["."],\n'
           '    deps = [":tfrec", ":pipelines"],\n)\n'
           % lst(["bench/bench_peers.py", "bench/common.py"] + files("bench/peers")))
# One py_test per test file (basenames are unique across tests/), named after it; its srcs carry the test files it
# imports helpers from (``from tests.export.test_export import ...``).
MAIN = "tests/support/pytest_main.py"
for t in files("tests"):
    if not os.path.basename(t).startswith("test_"):
        continue
    name = os.path.basename(t)[:-3]
    extra_deps = [":test_support", ":tfrec", ":pipelines", ":export", ":serving"]
    if name == "test_bench_peers":
        extra_deps.append(":bench_peers")
    size = "large" if name in LARGE else "medium"
    with open(t, encoding="utf-8") as f:
        imported = sorted({m.replace(".", "/") + ".py"
                           for m in re.findall(r"^\s*from (tests(?:\.\w+)*\.test_\w+) import", f.read(), re.M)})
    s = (f'py_test(\n    name = "{name}",\n    size = "{size}",\n    srcs = [\n        "{t}",\n'
         + "".join(f'        "{h}",\n' for h in imported) +
         f'        "{MAIN}",\n    ],\n    args = ["{t}"],\n    main = "{MAIN}",\n')
    if name == "test_build":
        s += '    data = ["BUILD"],\n'
    if name == "test_results_docs":  # the documents and the run records it checks
        s += f'    data = {lst(sorted(glob.glob("docs/results/**/*.*", recursive=True)))},\n'
    s += f'    deps = {lst(extra_deps)},\n)\n'
    out.append(s)
open("BUILD", "w").write("\n".join(out))
