"""The chunked line reader, now shared by every pipeline: see :mod:`pipelines.common.read` (re-exported here)."""

from pipelines.common.read import (BOM, CHUNK_BYTES, SPLIT_BYTES, ReadLineChunks, ReadLines)  # noqa: F401
