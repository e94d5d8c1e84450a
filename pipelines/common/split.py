"""The deterministic split and shard of a row (or request): a keyed BLAKE2b of its bytes."""

from __future__ import annotations

import hashlib
from typing import Sequence

SPLITS = ("train", "valid", "test")


class HashSplitter:
    """Deterministic split and shard of a raw row from a keyed BLAKE2b (key from ``salt``) of its bytes.

    The 64-bit hash ``h`` picks the split by magnitude (``h < ratios[0] * 2**64`` is train, ...) and the shard as
    ``h % num_shards`` (its low bits, uniform within every split's range).
    """

    def __init__(self, ratios: Sequence[float], salt: str, num_shards: int = 1):
        self.key = hashlib.blake2b(salt.encode("utf-8"), digest_size=32).digest()
        self.t_train = int(ratios[0] * 2.0 ** 64)
        self.t_valid = int((ratios[0] + ratios[1]) * 2.0 ** 64)
        self.num_shards = num_shards

    def hash(self, raw: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(raw, digest_size=8, key=self.key).digest(), "little")

    def split_of(self, h: int) -> str:
        return "train" if h < self.t_train else ("valid" if h < self.t_valid else "test")

    def __call__(self, raw: bytes) -> str:
        return self.split_of(self.hash(raw))

    def shard_of(self, h: int) -> int:
        return h % self.num_shards
