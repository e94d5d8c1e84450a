"""tests/ mirrors the packages: a test of ``pipelines/criteo/`` sits in ``tests/pipelines/criteo/``, one of
``tfrec/losses/`` in ``tests/tfrec/losses/``; directly under tests/ sit only the tests of the project as a whole
(BUILD, dependencies, the README's commands, this layout). Helpers shared by several folders sit in tests/support/."""

from __future__ import annotations

import os
import re

from tests.support import ROOT

#: The tests of the project as a whole, the only test files directly under tests/.
PROJECT_TESTS = frozenset({"test_architecture.py", "test_build.py", "test_dependencies.py", "test_layout.py",
                           "test_readme_benchmarks.py", "test_readme_commands.py"})
#: tests/ folders that mirror no package: the shared helpers (which hold no test).
HELPER_FOLDERS = frozenset({"support"})


def _test_files(root: str):
    """(folder relative to tests/, file name) of every test file under ``root``/tests."""
    tests = os.path.join(root, "tests")
    for dirpath, dirnames, files in os.walk(tests):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in files:
            if f.startswith("test_") and f.endswith(".py"):
                yield os.path.relpath(dirpath, tests), f


def layout_problems(root: str) -> list:
    """What breaks the mirror under ``root``: a project-level name missing from :data:`PROJECT_TESTS` at the top, a
    test in a folder that names no directory of Python modules of the repository (or in a helper folder), two test
    files with one name (Bazel's py_test targets are named after the file)."""
    problems, seen = [], {}
    for folder, name in _test_files(root):
        path = os.path.join("tests", folder, name) if folder != os.curdir else os.path.join("tests", name)
        if folder == os.curdir:
            if name not in PROJECT_TESTS:
                problems.append(f"{path}: move it to the tests/ folder of the package it tests")
        elif folder.split(os.sep)[0] in HELPER_FOLDERS:
            problems.append(f"{path}: tests/{folder} holds helpers, not tests")
        else:
            mirrored = os.path.join(root, folder)
            if not (os.path.isdir(mirrored) and any(f.endswith(".py") for f in os.listdir(mirrored))):
                problems.append(f"{path}: tests/{folder} mirrors no package ({folder}/ has no Python modules)")
        if name in seen:
            problems.append(f"{path}: same name as {seen[name]}")
        seen.setdefault(name, path)
    return problems


def test_every_test_file_sits_in_the_folder_of_a_package():
    assert sum(1 for _ in _test_files(ROOT)) > 50  # the walk found the suite
    problems = layout_problems(ROOT)
    assert not problems, "\n".join(problems)


def test_the_layout_check_flags_a_stray_test(tmp_path):
    for rel in ("tfrec/__init__.py", "tfrec/losses/x.py", "tests/tfrec/losses/test_a.py", "tests/test_build.py",
                "tests/test_b.py", "tests/nowhere/test_c.py", "tests/support/test_d.py", "tests/tfrec/test_a.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    problems = layout_problems(str(tmp_path))
    assert len(problems) == 4, problems
    for stray in ("tests/test_b.py: move it", "tests/nowhere/test_c.py: tests/nowhere mirrors no package",
                  "tests/support/test_d.py: tests/support holds helpers"):
        assert any(p.startswith(stray) for p in problems), (stray, problems)
    assert any("test_a.py: same name as tests/tfrec/" in p for p in problems), problems


#: Text files that may name test files: code, docs, the CI script.
_TEXT = (".py", ".md", ".txt", ".yaml", ".cfg")
_NAMED = re.compile(r"(?<![\w/$.-])tests/(?:[\w-]+/)*[\w-]+(?:\.py)?\b")


def stale_test_paths(root: str) -> list:
    """``file:line: tests/...`` for every path under tests/ (a test file, a helper, a folder) named in a text file of
    the repository that does not exist (moved or renamed without the text that names it). Hidden folders but ``.ci``
    are skipped."""
    stale = []
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if (d == ".ci" or not d.startswith(".")) and d != "__pycache__"
                             and not d.endswith(".egg-info"))
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            if not (f.endswith(_TEXT) or os.path.relpath(path, root) == os.path.join(".ci", "run")):
                continue
            if os.path.abspath(path) == os.path.abspath(__file__):
                continue  # this file names made-up paths on purpose
            with open(path, encoding="utf-8", errors="replace") as fh:
                for number, line in enumerate(fh, 1):
                    for named in _NAMED.findall(line):
                        if not os.path.exists(os.path.join(root, named)):
                            stale.append(f"{os.path.relpath(path, root)}:{number}: {named}")
    return stale


def test_every_test_path_named_in_the_repository_exists():
    stale = stale_test_paths(ROOT)
    assert not stale, "paths under tests/ that do not exist:\n" + "\n".join(stale)


def test_the_path_check_flags_a_moved_test(tmp_path):
    (tmp_path / "tests" / "tfrec").mkdir(parents=True)
    (tmp_path / "tests" / "tfrec" / "test_a.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text("run `pytest tests/tfrec/test_a.py` and tests/test_a.py::test_b\n"
                                            "or all of tests/tfrec/ but not tests/tfx_native\n")
    assert stale_test_paths(str(tmp_path)) == ["docs/x.md:1: tests/test_a.py", "docs/x.md:2: tests/tfx_native"]
