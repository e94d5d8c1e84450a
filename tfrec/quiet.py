"""A quiet start for the ``tfrec`` command: the import-time noise of TensorFlow and Apache Beam, and nothing else.

Two libraries print lines at import that say nothing about the command being run:

* ``import tensorflow`` (2.15): its CUDA plugins log three C++ error-level lines ("Unable to register cuDNN /
  cuFFT / cuBLAS factory: Attempting to register factory for plugin ... when one has already been registered"),
  on machines with and without a GPU. ``TF_CPP_MIN_LOG_LEVEL=2`` keeps them (they are E-level); 3 would hide every
  real error-level line too.
* ``import apache_beam`` (recent 2.x releases): "WARNING:root:apitools not found, and bigquery client libraries
  are not available ...", through Python's ``logging``.

Why a redirect of file descriptor 2, and why only around the imports: TensorFlow's C++ logging writes straight to
fd 2, below Python, so neither ``sys.stderr`` nor a ``logging`` filter can see those lines. :func:`import_quietly`
points fd 2 at a temporary file while the modules import, puts fd 2 back, then writes every captured line that is
not known noise (:data:`NOISE`) to the real stderr. So an unexpected message at import (a missing library, a real
error) still shows, and nothing printed after the imports (the command's own errors, TensorFlow's runtime errors,
child processes) passes through any filter. The command imports the noisy modules it uses first
(:func:`noisy_modules`), through this function (``tfrec.cli.main``); ``--verbose`` imports them without it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from typing import Iterable, List

#: Import-time lines that carry no information for a ``tfrec`` user (see the module docstring).
NOISE = (
    re.compile(rb"Unable to register (cuDNN|cuFFT|cuBLAS) factory: Attempting to register factory for plugin"),
    re.compile(rb"apitools not found, and bigquery client libraries are not available"),
)


#: Commands that import Apache Beam (every command imports TensorFlow: even ``predict`` reads TensorFlow's protos
#: through it).
_BEAM_COMMANDS = frozenset({"prepare", "prepare-hybrid", "prepare-taobao", "demo", "pipeline", "experiment"})


def noisy_modules(command: str) -> List[str]:
    """The noisy modules the ``tfrec`` command ``command`` uses, for :func:`import_quietly` to import first."""
    return ["tensorflow"] + (["apache_beam"] if command in _BEAM_COMMANDS else [])


def is_noise(line: bytes) -> bool:
    """True for a line of known import-time noise (:data:`NOISE`)."""
    return any(p.search(line) for p in NOISE)


def import_quietly(modules: Iterable[str], verbose: bool = False) -> None:
    """Imports ``modules``; unless ``verbose``, the :data:`NOISE` lines they print at import are dropped and every
    other line they print on stderr is written to stderr after the imports.

    Args:
      modules: module names, imported in order (an already imported one costs nothing).
      verbose: import them as they are, with every line they print.

    Raises:
      ImportError (or whatever the import raises), after stderr is restored and the captured lines are written.
    """
    pending: List[str] = [m for m in modules if m not in sys.modules]
    if not pending:
        return
    if verbose:
        for name in pending:
            importlib.import_module(name)
        return
    _flush_stderr()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                for name in pending:
                    importlib.import_module(name)
            finally:
                _flush_stderr()  # Python-level writes (logging) reach fd 2 through sys.stderr's buffer
                os.dup2(saved, 2)
                capture.seek(0)
                kept = [line for line in capture.read().splitlines(keepends=True) if not is_noise(line)]
                data = b"".join(kept)
                while data:
                    data = data[os.write(2, data):]
    finally:
        os.close(saved)


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # a replaced or closed stderr
        pass
