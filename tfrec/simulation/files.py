"""The simulators' file writes: every output file of a run appears complete, or not at all."""

from __future__ import annotations

import contextlib
import os
from typing import IO, Iterator, List, Optional, Sequence


@contextlib.contextmanager
def atomic_writes(paths: Sequence[str], mode: str = "w", encoding: Optional[str] = None) -> Iterator[List[IO]]:
    """Opens ``<path>.tmp`` for each of ``paths``; on success closes them and renames each onto its path.

    A killed or failed run leaves the previous files (or none) in place, never a partial one: on an exception the
    temporaries are removed and the exception propagates. The renames run in the order of ``paths``.

    Args:
      paths: the final file paths (their directories must exist).
      mode: the ``open`` mode of every temporary (``"w"`` or ``"wb"``).
      encoding: the text encoding (``None`` for binary modes).

    Yields:
      The open temporary files, in the order of ``paths``.
    """
    tmps = [path + ".tmp" for path in paths]
    try:
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(open(tmp, mode, encoding=encoding)) for tmp in tmps]
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
