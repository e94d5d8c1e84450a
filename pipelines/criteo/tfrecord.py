"""The TFRecord framing and shard naming, now shared by every pipeline: see :mod:`pipelines.common.sink`."""

from pipelines.common.sink import SUFFIX, ShardNaming, frame_records, masked_crc32c  # noqa: F401
