"""File helpers of the Criteo pipeline: the shared ones of :mod:`pipelines.common.files` and :func:`sniff_file`."""

from __future__ import annotations

from pipelines.common.files import (ARCHIVE_SUFFIXES, HEAD_BYTES, OWNED_PATTERNS, absolute, delete_owned,  # noqa: F401
                                    first_line, is_local, join, match, match_inputs, read_head, read_json, relative,
                                    same_file_key, total_bytes, write_bytes, write_json)
from pipelines.criteo.parse import file_format


def sniff_file(path: str, fmt: str = "auto") -> str:
    """The format ``path`` is read in (``kaggle`` or ``x1``): ``fmt`` checked against, or (``auto``) told by, its
    first line (:func:`pipelines.criteo.parse.file_format`).

    Raises:
      InputError: an archive, or a CSV header that does not fit (see :func:`pipelines.common.files.read_head`,
        ``file_format``).
    """
    return file_format(fmt, first_line(path), path)
