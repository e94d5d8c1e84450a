"""The shard sink of the pipelines: batches of records -> GZIP TFRecord (or JSON-lines) files, without grouping records.

Why not ``fileio.WriteToFiles`` or ``beam.io.WriteToTFRecord``: both group the records by shard (a GroupByKey of
every record, or every batch of records, before the write). A distributed runner spills that shuffle to disk, but
the local runners (the DirectRunner's FnApiRunner, the portable job service) hold a GroupByKey's whole input in
memory: ~4 KB per row, 180 GB for Criteo Kaggle's 45.8M rows. Here nothing but file names is grouped:

1. :class:`_WriteParts` (a ``ParDo`` right after the parser, fused with it by every runner) appends each batch
   ``(destination, [record, ...])`` to a temporary *part* file of its destination, one GZIP member per part, opened
   on the first batch of a bundle and closed at the bundle's end (or earlier, when more than
   :data:`MAX_OPEN_PARTS` are open). It counts the records it framed and emits ``(destination, Part)`` per part.
   A bundle that fails and is retried leaves its parts behind unnamed: only the parts of committed bundles are
   emitted, and the temporary directory is removed at the end of the run.
2. A ``GroupByKey`` of the parts (a few per destination and bundle) and :class:`_CommitShards`: the final file of
   a destination is its one part renamed into place, or its parts concatenated byte for byte (a GZIP file may hold
   several members; ``tf.data``, ``beam.io.ReadFromTFRecord`` and ``gzip`` read them as one stream). A destination
   with no part gets an empty file (an empty GZIP member, a valid empty TFRecord file).
3. Each final file comes out as a :class:`ShardResult` with the records its parts hold: what the sink wrote, the
   number the row accounting checks (``pipelines.common.accounting``).

Writers run in parallel wherever the runner runs bundles (one set of parts per bundle), so the number of shards
only sets the number of output files and of commits (byte copies), not the parallelism of the compression.

TFRecord framing of one record (https://www.tensorflow.org/tutorials/load_data/tfrecord#tfrecords_format_details)::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

    masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8  (mod 2**32), crc = CRC-32C (Castagnoli) of x

A whole batch is framed in one pass (~1.5 us per ~700-byte record, nearly all of it the CRC) and compressed in one
call.
The bytes decompress to what ``tf.io.TFRecordWriter`` writes for the same records.
"""

from __future__ import annotations

import collections
import importlib
import itertools
import logging
import struct
import uuid
import zlib
from typing import Callable, Dict, Iterable, List, NamedTuple, Sequence, Tuple

import apache_beam as beam
import crcmod.predefined
import numpy as np
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

# CRC-32C: crcmod's C extension (a table-driven loop; ~1.5 us for a 500-byte record, ~0.2 us for the 8-byte length)
# is the fastest CRC-32C among the installed packages: ``google_crc32c`` and ``python-snappy`` are not installed,
# zlib only has CRC-32 (another polynomial) and TensorFlow does not expose its CRC-32C to Python. tfrec declares
# crcmod (Beam dropped it in 2.65). Without its C extension crcmod falls back to pure Python (~100x slower; logged).
_crc32c = crcmod.predefined.mkPredefinedCrcFun("crc-32c")
# crcmod's function is ``xor_out ^ fun(data, xor_out ^ init, table)``; :func:`frame_records` calls ``fun`` itself.
_CRC_INIT, _CRC_TABLE, _CRC_FUN = _crc32c.__defaults__
_CRC_XOR = 0xFFFFFFFF  # CRC-32C's final xor (and initial value)
_CRC_START = _CRC_XOR ^ _CRC_INIT
if not getattr(importlib.import_module("crcmod.crcmod"), "_usingExtension", True):
    logging.getLogger(__name__).warning("crcmod has no C extension: TFRecord checksums will be slow")

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_pack_u32 = struct.Struct("<I").pack
_pack_u64 = struct.Struct("<Q").pack

#: record length -> its 12-byte header (length, masked CRC of the length); serialized examples come in a few hundred
#: distinct lengths, so this saves a CRC and two packs per record.
_HEADERS: Dict[int, bytes] = {}

#: A TFRecord file's name suffix (GZIP compressed).
SUFFIX = ".tfrecord.gz"
#: Record formats of :class:`WriteShards`: GZIP TFRecord, or plain lines (each record is a line without its ``\n``).
TFRECORD, LINES = "tfrecord", "lines"
#: GZIP level of the TFRecord files (zlib's default, as ``tf.io.TFRecordWriter`` and Beam's writers use). It is the
#: largest single cost per row (~12-15 us of CPU per Criteo row); level 1 would take a third of that but write 35%
#: more bytes (``bench/bench_pipeline.py`` prints both), so the default stays.
GZIP_LEVEL = 6
#: Part files a bundle keeps open at once (each holds a zlib stream, ~0.3 MB); the least recently written is closed
#: first, and a destination written again later gets a new part.
MAX_OPEN_PARTS = 64
#: Bytes copied at a time when parts are concatenated.
COPY_BYTES = 8 << 20


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C of ``data``, rotated right by 15 bits plus ``0xa282ead8`` (mod 2**32)."""
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def _header(length: int) -> bytes:
    header = _HEADERS.get(length)
    if header is None:
        n = _pack_u64(length)
        header = _HEADERS[length] = n + _pack_u32(masked_crc32c(n))
    return header


class _Headers(dict):
    """:data:`_HEADERS` read by ``map``: a missing length gets its header on first use."""

    def __missing__(self, length: int) -> bytes:
        return _header(length)


_HEADER_OF = _Headers()


def frame_records(records: Iterable[bytes]) -> bytes:
    """The TFRecord framing of ``records``, concatenated (what a TFRecord writer writes, before compression).

    The CRCs come from crcmod's table function mapped over the records (no Python frame per record), are masked as
    one NumPy array, and the pieces are joined in one ``bytes.join``."""
    records = records if type(records) is list else list(records)
    if not records:
        return b""
    raw = np.fromiter(map(_CRC_FUN, records, itertools.repeat(_CRC_START), itertools.repeat(_CRC_TABLE)),
                      dtype=np.uint64, count=len(records))
    crc = raw ^ np.uint64(_CRC_XOR)
    masked = ((((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(_U32)) + np.uint64(_MASK_DELTA)) \
        & np.uint64(_U32)
    footers = np.frombuffer(masked.astype("<u4").tobytes(), dtype="V4").tolist()
    headers = map(_HEADER_OF.__getitem__, map(len, records))
    return b"".join(itertools.chain.from_iterable(zip(headers, records, footers)))


def frame_lines(records: Iterable[bytes]) -> bytes:
    """``records`` as lines (each followed by ``\\n``)."""
    return b"".join(r + b"\n" for r in records)


def empty_file(fmt: str) -> bytes:
    """The bytes of a file with no record: one empty GZIP member (TFRecord), nothing (lines)."""
    if fmt == TFRECORD:
        c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        return c.compress(b"") + c.flush()
    return b""


class Part(NamedTuple):
    """A temporary part of a shard file: its path and the records framed into it."""

    path: str
    records: int


class ShardResult(NamedTuple):
    """A written shard file: ``destination``, ``file_name`` (relative to the output directory), ``records``."""

    destination: tuple
    file_name: str
    records: int


class _OpenPart:
    __slots__ = ("path", "fh", "zlib", "records")

    def __init__(self, path: str, fmt: str):
        self.path = path
        self.fh = FileSystems.create(path, mime_type="application/octet-stream",
                                     compression_type=CompressionTypes.UNCOMPRESSED)
        self.zlib = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if fmt == TFRECORD else None
        self.records = 0

    def write(self, data: bytes, records: int) -> None:
        self.fh.write(self.zlib.compress(data) if self.zlib is not None else data)
        self.records += records

    def close(self) -> Part:
        if self.zlib is not None:
            self.fh.write(self.zlib.flush())
        self.fh.close()
        return Part(self.path, self.records)


class _WriteParts(beam.DoFn):
    """Batches ``(destination, [record, ...])`` -> ``(destination, Part)`` per part written by the bundle."""

    def __init__(self, temp_dir: str, fmt: str):
        self.temp_dir = temp_dir
        self.fmt = fmt

    def setup(self):
        self.frame = frame_records if self.fmt == TFRECORD else frame_lines

    def start_bundle(self):
        self.open: "collections.OrderedDict[tuple, _OpenPart]" = collections.OrderedDict()
        self.closed: List[Tuple[tuple, Part]] = []

    def process(self, element):
        destination, records = element
        if not records:  # no empty GZIP member: tf.data stops reading a file at one
            return ()
        part = self.open.get(destination)
        if part is None:
            if len(self.open) >= MAX_OPEN_PARTS:
                old, oldest = self.open.popitem(last=False)
                self.closed.append((old, oldest.close()))
            part = self.open[destination] = _OpenPart(
                FileSystems.join(self.temp_dir, f"part-{uuid.uuid4().hex}"), self.fmt)
        else:
            self.open.move_to_end(destination)
        part.write(self.frame(records), len(records))
        return ()  # the parts come out at the end of the bundle

    def finish_bundle(self):
        for destination, part in self.open.items():
            self.closed.append((destination, part.close()))
        for destination, part in self.closed:
            yield WindowedValue((destination, part), GlobalWindow().max_timestamp(), [GlobalWindow()])
        self.open, self.closed = collections.OrderedDict(), []


class _CommitShards(beam.DoFn):
    """``(destination, [Part or None, ...])`` -> the final file (its part renamed, or the parts concatenated, or an
    empty file) and one :class:`ShardResult`."""

    def __init__(self, out: str, naming: Callable[[tuple], str], fmt: str):
        self.out = out
        self.naming = naming
        self.fmt = fmt

    def process(self, element):
        destination, parts = element
        parts = sorted(p for p in parts if p is not None and p.records)
        name = self.naming(destination)
        final = FileSystems.join(self.out, *name.split("/"))
        records = sum(p.records for p in parts)
        if len(parts) == 1:
            _rename_into_place(parts[0].path, final)
        elif parts and not (FileSystems.exists(final) and not any(FileSystems.exists(p.path) for p in parts)):
            # (A retried commit whose parts are gone already wrote the final file.)
            with FileSystems.create(final, mime_type="application/octet-stream",
                                    compression_type=CompressionTypes.UNCOMPRESSED) as f:
                for part in parts:
                    with FileSystems.open(part.path, compression_type=CompressionTypes.UNCOMPRESSED) as src:
                        while True:
                            block = src.read(COPY_BYTES)
                            if not block:
                                break
                            f.write(block)
            FileSystems.delete([p.path for p in parts])
        elif not parts:
            with FileSystems.create(final, mime_type="application/octet-stream",
                                    compression_type=CompressionTypes.UNCOMPRESSED) as f:
                f.write(empty_file(self.fmt))
        yield ShardResult(tuple(destination), name, records)


def _rename_into_place(part: str, final: str) -> None:
    if FileSystems.exists(final):
        if not FileSystems.exists(part):
            return  # a retried commit: already renamed
        FileSystems.delete([final])
    parent = final.rsplit("/", 1)[0]
    try:
        FileSystems.mkdirs(parent)
    except (BeamIOError, OSError):
        pass  # exists (or the file system has no directories)
    FileSystems.rename([part], [final])


class WriteShards(beam.PTransform):
    """Batches ``(destination, [record bytes, ...])`` -> one file per destination under ``out``; outputs a
    :class:`ShardResult` per file.

    Args:
      out: the output directory.
      naming: destination -> the file's name relative to ``out`` (``/`` separates directories).
      destinations: every destination that must get a file (an empty one when no record went there).
      temp_dir: where the parts go (a directory of the same file system as ``out``; removed by the caller at the
        end of the run, see :func:`remove_temp_dir`).
      fmt: :data:`TFRECORD` (GZIP TFRecord files) or :data:`LINES` (plain text, one record per line).
    """

    def __init__(self, out: str, naming: Callable[[tuple], str], destinations: Sequence[tuple], temp_dir: str,
                 fmt: str = TFRECORD):
        super().__init__()
        if fmt not in (TFRECORD, LINES):
            raise ValueError(f"`fmt` must be {TFRECORD!r} or {LINES!r}. Received: fmt={fmt!r}")
        self.out, self.naming, self.fmt = out, naming, fmt
        self.destinations = [tuple(d) for d in destinations]
        self.temp_dir = temp_dir

    def expand(self, batches):
        p = batches.pipeline
        parts = batches | "WriteParts" >> beam.ParDo(_WriteParts(self.temp_dir, self.fmt))
        every = p | "Destinations" >> beam.Create([(d, None) for d in self.destinations])
        return ((parts, every) | "WithEveryDestination" >> beam.Flatten()
                | "GroupParts" >> beam.GroupByKey()
                | "Commit" >> beam.ParDo(_CommitShards(self.out, self.naming, self.fmt)))


def remove_temp_dir(temp_dir: str) -> None:
    """Removes the parts' temporary directory (parts of failed bundles included), if it exists."""
    try:
        if FileSystems.exists(temp_dir):
            FileSystems.delete([temp_dir])
    except BeamIOError:
        pass  # already gone (a retried step)


def temp_dir_under(base: str) -> str:
    """A new temporary directory name under ``base`` for one run's parts."""
    return FileSystems.join(base, f".temp-tfrec-{uuid.uuid4().hex}")


class ShardNaming:
    """Destination ``(split, shard)`` -> ``<split>-SSSSS-of-NNNNN<suffix>`` (``prefix/`` before it when given)."""

    def __init__(self, num_shards: int, suffix: str = SUFFIX, prefix: str = ""):
        self.num_shards = num_shards
        self.suffix = suffix
        self.prefix = prefix

    def __call__(self, destination: tuple) -> str:
        split, shard = destination
        return f"{self.prefix}{split}-{shard:05d}-of-{self.num_shards:05d}{self.suffix}"


def records_by_split(results: Iterable[ShardResult]) -> Tuple[Dict[str, int], Dict[str, List[str]]]:
    """``({split: records written}, {split: sorted file names})`` of the shard results ``(split, shard)``."""
    counts: Dict[str, int] = collections.Counter()
    names: Dict[str, List[str]] = collections.defaultdict(list)
    for r in results:
        counts[r.destination[0]] += r.records
        names[r.destination[0]].append(r.file_name)
    return dict(counts), {s: sorted(n) for s, n in names.items()}

