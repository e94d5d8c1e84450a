"""Every third-party module the four packages import is declared in setup.py.

A fresh ``pip install -e .`` (no constraints) installs only what setup.py declares; a module imported but not
declared installs by luck (through another package) until that package drops it, as apache-beam 2.65 dropped
crcmod. This test reads every ``import`` statement of tfrec/, pipelines/, export/ and serving/ (module level and
inside functions), maps each third-party top-level name to the distributions that provide it
(``importlib.metadata.packages_distributions``) and checks one of them is a declared requirement.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST_PARTY = ("tfrec", "pipelines", "export", "serving")

#: Modules that belong to an optional extra: {package-relative path prefix: extra name}. Their imports must be
#: declared in that extra (or in install_requires). Where the extra is not installed (the pinned suite has no TFX),
#: an import no installed distribution provides passes when its top-level name is a distribution the extra declares
#: (``tfx``, ``ml_metadata``, ``tensorflow_data_validation``, ``tensorflow_metadata``).
EXTRA_MODULES: dict = {"pipelines/tfx_native/": "TFX_REQUIRES"}


def _setup_requirements():
    """install_requires and extras_require of setup.py, read from its source (no install needed)."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    install = names["INSTALL_REQUIRES"]
    extras = {k: v for k, v in names.items() if k.endswith("_REQUIRES") and k != "INSTALL_REQUIRES"}
    return install, extras


def _dist_name(requirement: str) -> str:
    return _normalise(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0])


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: str):
    """(dotted module name, line) of every absolute import in a file, skipping those guarded by ImportError."""
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            for inner in node.body:
                for sub in ast.walk(inner):
                    guarded.add(id(sub))
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def _source_files():
    for package in FIRST_PARTY:
        for dirpath, _, files in os.walk(os.path.join(ROOT, package)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, f), ROOT)


def _providers(module: str, top_level) -> set:
    """Distributions that provide ``module``; for namespace packages (``google``), the one holding the module."""
    top = module.split(".")[0]
    dists = set(top_level.get(top, ()))
    if len(dists) > 1 and "." in module:
        # A namespace package shared by several distributions: find the one whose files hold the submodule.
        prefix = "/".join(module.split(".")[:2])
        held = set()
        for name in dists:
            files = md.distribution(name).files or ()
            if any(str(f).startswith(prefix + "/") or str(f) == prefix + ".py" for f in files):
                held.add(name)
        dists = held or dists
    return {_normalise(d) for d in dists}


def test_every_third_party_import_is_a_declared_requirement():
    install, extras = _setup_requirements()
    declared = {_dist_name(r) for r in install}
    extra_declared = {k: declared | {_dist_name(r) for r in v} for k, v in extras.items()}
    top_level = md.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing = []
    checked = set()
    for rel in _source_files():
        allowed = declared
        for prefix, extra in EXTRA_MODULES.items():
            if rel.startswith(prefix):
                allowed = extra_declared[extra]
        for module, line in _imports(os.path.join(ROOT, rel)):
            top = module.split(".")[0]
            if top in stdlib or top in FIRST_PARTY or top == "__future__":
                continue
            providers = _providers(module, top_level)
            if not providers and allowed is not declared:
                providers = {_normalise(top)}  # an extra that is not installed here: import name = distribution
            checked.add(top)
            if not providers:
                missing.append(f"{rel}:{line} imports {module}, which no installed distribution provides")
            elif not providers & allowed:
                missing.append(f"{rel}:{line} imports {module} (from {sorted(providers)}), not declared in setup.py")
    assert not missing, "\n".join(missing)
    # The walk saw the stack's imports (a walk that found nothing would pass vacuously).
    assert {"tensorflow", "tf_keras", "apache_beam", "crcmod", "grpc", "google", "tensorflow_serving"} <= checked


def _imported_distributions(top_level) -> set:
    """Distributions that provide some module imported by tfrec/, pipelines/, export/ or serving/."""
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for rel in _source_files():
        for module, _ in _imports(os.path.join(ROOT, rel)):
            top = module.split(".")[0]
            if top in stdlib or top in FIRST_PARTY or top == "__future__":
                continue
            found |= _providers(module, top_level)
    return found


def test_every_declared_requirement_is_imported():
    """The converse of the test above: every install_requires entry is imported by the four packages, so a
    dependency nothing uses (tensorflow-recommenders was one) fails here instead of being installed for nothing."""
    install, _ = _setup_requirements()
    declared = {_dist_name(r) for r in install}
    unused = sorted(declared - _imported_distributions(md.packages_distributions()))
    assert not unused, f"declared in setup.py install_requires but imported by no module: {unused}"


def test_the_converse_walk_flags_an_unused_requirement():
    """A requirement no module imports is reported: the walk's distributions hold the stack and not pytest."""
    found = _imported_distributions(md.packages_distributions())
    assert {"tensorflow", "tf-keras", "apache-beam", "protobuf", "grpcio", "pydantic"} <= found
    assert "pytest" not in found
    assert "tensorflow-recommenders" not in found


def test_the_walk_flags_an_undeclared_import(tmp_path, monkeypatch):
    """The check fails on a module that imports a package setup.py does not declare (here: pytest)."""
    pkg = tmp_path / "tfrec"
    pkg.mkdir()
    (pkg / "bad.py").write_text("def f():\n    import pytest\n    return pytest\n")
    imports = list(_imports(str(pkg / "bad.py")))
    assert imports == [("pytest", 2)]
    install, _ = _setup_requirements()
    declared = {_dist_name(r) for r in install}
    assert not _providers("pytest", md.packages_distributions()) & declared


@pytest.mark.parametrize("requirement,name", [
    ("tensorflow>=2.15.0,<2.16", "tensorflow"), ("tf-keras>=2.15.0,<2.16", "tf-keras"),
    ("PyYAML>=5.4", "pyyaml"), ("crcmod>=1.7,<2", "crcmod"), ("tensorflow_ranking==0.5.5", "tensorflow-ranking"),
])
def test_requirement_names_are_normalised(requirement, name):
    assert _dist_name(requirement) == name


def test_no_test_directory_shadows_a_first_party_package():
    """tests/ mirrors the packages (tests/pipelines/, tests/serving/, ...). Every folder of tests/ is a package, so
    pytest imports ``tests.<path>`` from the repository root and never puts tests/ itself on sys.path, where
    ``tests/pipelines/`` would be found as a namespace package before the editable install's finder and
    ``import pipelines`` (say) would get the test directory instead of the package."""
    tests_dir = os.path.join(ROOT, "tests")
    missing = sorted(os.path.relpath(d, ROOT) for d, _, files in os.walk(tests_dir)
                     if "__pycache__" not in d and any(f.endswith(".py") for f in files) and "__init__.py" not in files)
    assert not missing, f"tests/ folders without an __init__.py (pytest would put them on sys.path): {missing}"
    assert tests_dir not in {os.path.abspath(p or os.curdir) for p in sys.path}, "tests/ is on sys.path"
    for name in FIRST_PARTY:
        module = importlib.import_module(name)
        where = getattr(module, "__file__", None)
        assert where and not os.path.abspath(where).startswith(tests_dir + os.sep), f"{name} imports as {module!r}"
