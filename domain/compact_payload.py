"""Compressed JSON payloads for the case's local activities.

The SDK's core keeps the input of every local activity a case has run in memory for as long as
the worker caches the case (its state machines last the run's life), so a case's memory grows
with each record and alert it writes. The workflow sends each local activity's input as JSON
compressed with zlib, under the payload encoding `json/zlib` (`compact`); the data converter
reads it back (`inflate`, starter.connection). Local activity inputs are never in a history,
and a local activity runs in the worker that scheduled it, so a running case meets this only
as smaller inputs: nothing recorded changes.

Only the JSON is compressed: what the converter then decodes is exactly what it would have
decoded from `json/plain`. A payload that does not decompress, or that would inflate beyond
`MAX_INFLATED` bytes, is refused with `CompactPayloadError`, without inflating it further.
"""

from __future__ import annotations

import zlib

from temporalio.api.common.v1 import Payload

ENCODING = b"json/zlib"
JSON = b"json/plain"
# Below this, the JSON is sent as it is: what compression saves is small against the core's
# own few KiB per local activity (docs/benchmarks.md).
MIN_SIZE = 256
# More than any case's record (a case with a hundred tasks is about 100 KB of JSON); a
# payload claiming more is refused before it takes the worker's memory.
MAX_INFLATED = 8 * 2**20
_LEVEL = 6  # 3.6 KB of a case's record: about 0.05 ms, to a fifth of its size


class CompactPayloadError(ValueError):
    """A `json/zlib` payload that does not decompress, or inflates beyond `MAX_INFLATED`."""


def compact(payload: Payload) -> Payload:
    """`payload` compressed as `json/zlib` when it is JSON of at least `MIN_SIZE` bytes and
    compression makes it smaller; otherwise `payload` itself."""
    if payload.metadata.get("encoding") != JSON or len(payload.data) < MIN_SIZE:
        return payload
    data = zlib.compress(payload.data, _LEVEL)
    if len(data) >= len(payload.data):
        return payload
    compacted = Payload(metadata=dict(payload.metadata), data=data)
    compacted.metadata["encoding"] = ENCODING
    return compacted


def inflate(payload: Payload) -> Payload:
    """The `json/plain` payload a `json/zlib` one holds."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload.data, MAX_INFLATED + 1)
    except zlib.error as err:
        raise CompactPayloadError(f"json/zlib payload does not decompress: {err}") from None
    if len(data) > MAX_INFLATED or inflater.unconsumed_tail:
        raise CompactPayloadError(f"json/zlib payload inflates beyond {MAX_INFLATED:,} bytes")
    if not inflater.eof:
        raise CompactPayloadError("json/zlib payload is truncated")
    plain = Payload(metadata=dict(payload.metadata), data=data)
    plain.metadata["encoding"] = JSON
    return plain
