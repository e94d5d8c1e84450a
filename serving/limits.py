"""Request size limits, checked on what a request claims before anything is expanded.

A request's rows are what the model runs on: the first dimension of each Predict input (the largest one), the
number of examples of a Classify / Regress input, and for an input of serialized ``ExampleListWithContext`` values
(tfrec's ``score_candidates`` takes them as ``lists``) the candidates of all its lists. Past ``max_batch_rows``
the request fails with INVALID_ARGUMENT before a tensor is built, the answer TF Serving's batching gives a request
larger than its largest batch ("Task size N is larger than maximum input batch size M",
tensorflow/core/kernels/batching_util/shared_batch_scheduler.h). A tensor may also not claim more than
``max_elements`` elements: a TensorProto with fewer values than its shape repeats its last value, so a few bytes
can claim gigabytes.

What parsing a Predict request costs is bounded by the message size limit (``--max-message-mb``), as in TF
Serving: a message of empty values is the densest (about 25 bytes of memory per byte of message), so lower the
limit on a small host. Classify and Regress requests have their examples counted on the wire before they are
parsed (:func:`request_examples`).
"""

from __future__ import annotations

from typing import Iterable

from google.protobuf.internal.decoder import _DecodeVarint as _varint  # protobuf's own varint reader

from serving.errors import ServingError, invalid

DEFAULT_MAX_BATCH_ROWS = 65536
DEFAULT_MAX_ELEMENTS = 1 << 24  # elements one request tensor may claim (a splatted value can claim any number)
# Inputs whose values are serialized ExampleListWithContext (one request, many candidates each): tfrec's
# score_candidates contract (export.preranking, tfrec.models.preranking.serving.LISTS).
EXAMPLE_LIST_INPUTS = frozenset({"lists"})
_EXAMPLES_FIELD = 1  # ExampleListWithContext.examples (ExampleList.examples too)


def too_many_rows(rows: int, max_rows: int, what: str = "rows") -> ServingError:
    """The INVALID_ARGUMENT error of a request that claims ``rows`` > ``max_rows``."""
    return invalid(f"the request claims {rows:,} {what}, more than this server's limit of {max_rows:,} per request "
                   f"(--max-batch-rows); split it into smaller requests")


def check_rows(rows: int, max_rows: int, what: str = "rows") -> None:
    """Raises :func:`too_many_rows` when ``rows`` > ``max_rows``."""
    if rows > max_rows:
        raise too_many_rows(rows, max_rows, what)


def count_field(buf: bytes, field: int, stop: int) -> int:
    """Occurrences of ``field`` (any wire type) among the top-level fields of the serialized message ``buf``.

    Walks the tags and lengths only (nothing is decoded) and returns as soon as the count passes ``stop``.

    Raises:
      ValueError: ``buf`` is not a well-formed message.
    """
    pos, end, count = 0, len(buf), 0
    try:
        while pos < end:
            key, pos = _varint(buf, pos)
            wire_type = key & 7
            if wire_type == 0:
                _, pos = _varint(buf, pos)
            elif wire_type == 2:
                size, pos = _varint(buf, pos)
                pos += size
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            else:
                raise ValueError(f"wire type {wire_type}")
            if key >> 3 == field:
                count += 1
                if count > stop:
                    return count
    except IndexError:
        raise ValueError("truncated message") from None
    if pos != end:
        raise ValueError("truncated message")
    return count


def _fields(buf, wanted):
    """The payloads (memoryviews) of the length-delimited top-level fields numbered in ``wanted`` of ``buf``."""
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    try:
        while pos < end:
            key, pos = _varint(buf, pos)
            wire_type = key & 7
            if wire_type == 2:
                size, pos = _varint(buf, pos)
                if key >> 3 in wanted:
                    yield buf[pos:pos + size]
                pos += size
            elif wire_type == 0:
                _, pos = _varint(buf, pos)
            elif wire_type in (1, 5):
                pos += 8 if wire_type == 1 else 4
            else:
                raise ValueError(f"wire type {wire_type}")
    except IndexError:
        raise ValueError("truncated message") from None


def request_examples(raw: bytes, max_rows: int) -> int:
    """The examples of a serialized ClassificationRequest or RegressionRequest, counted on its bytes before it
    is parsed (parsing 70,000 empty examples takes ~4 MB), up to ``max_rows + 1``.

    Both messages hold ``Input input = 2``; an Input holds ``ExampleList example_list = 1`` or
    ``ExampleListWithContext example_list_with_context = 2``, each with ``repeated Example examples = 1``. An
    example takes at least 2 bytes, so a message of at most ``2 * max_rows`` bytes is not walked (the count is then
    that bound), nor is one that is not well formed (the parser says why).
    """
    bound = len(raw) // 2
    if bound <= max_rows:
        return bound
    total = 0
    try:
        for inp in _fields(raw, (2,)):
            for examples in _fields(inp, (1, 2)):
                total += count_field(examples, _EXAMPLES_FIELD, max_rows - total)
                if total > max_rows:
                    return total
    except ValueError:
        return 0
    return total


def example_list_rows(values: Iterable[bytes], max_rows: int) -> int:
    """The candidates of serialized ``ExampleListWithContext`` values, counted up to ``max_rows + 1``.

    A candidate takes at least 2 bytes (a tag and a length), so values of at most ``2 * max_rows`` bytes in all
    cannot be over the limit and are not walked (a 1000-candidate list is ~50 KB): the count is then that bound.

    Raises:
      ServingError: INVALID_ARGUMENT when a value is not a serialized message.
    """
    values = list(values)
    bound = sum(len(v) for v in values) // 2
    if bound <= max_rows:
        return bound
    total = 0
    for i, v in enumerate(values):
        try:
            total += count_field(v, _EXAMPLES_FIELD, max_rows - total)
        except ValueError as e:
            raise invalid(f"value {i} of an example-list input is not a serialized ExampleListWithContext ({e})")
        if total > max_rows:
            break
    return total
