"""A case's pinned definition as it is recorded (`encode_pin`), read back from the recorded
payload (`decode_pin`), and one copy per process of each (`shared_definition`). The workflow
imports this, not `domain.case_definition`, which needs the bank holiday tables.

The pin is recorded in the case's history and held in memory by the worker for every cached
case, so it is recorded compressed: the definition's JSON (`model_dump_json()`, every field,
defaults included) compressed with zlib, behind a one-byte format number. A case opened on
0.2.0 records it in the result of its `open_case` local activity (JSON, the pin as base64);
a case opened before, as the `binary/plain` result of its `pin_definition` local activity; and
a case pinned before compression, as that activity's JSON (`json/plain`). Those histories hold
them for ever, so every form decodes. (Each payload is encrypted by the payload codec when it
is on.)

Fields are never left out to make the pin smaller (`exclude_defaults`, `exclude_none`): a pin
missing a field would decode with whatever default a later release gives it, and a running
case would change its rules. Compression changes nothing: the decoded definition is equal to
the one pinned.
"""

from __future__ import annotations

import hashlib
import zlib

from temporalio.api.common.v1 import Payload

from models.definition import CaseDefinition

# The payload encodings a pin is recorded under (the data converter's, for `bytes` and for a
# model) and the first byte of a `binary/plain` pin, naming its format. A new format takes the
# next number; a worker that does not know a pin's format refuses it with `PinFormatError`.
ENCODING_BINARY = b"binary/plain"
ENCODING_JSON = b"json/plain"
FORMAT_ZLIB_JSON = 1
_ZLIB_LEVEL = 9  # once per case: ~0.2 ms for 15 KB, a few bytes under the default level


class PinFormatError(ValueError):
    """A recorded pin this code cannot read (an encoding or format number it does not know,
    or data that does not decompress). Deliberately not a pydantic ValidationError, which
    fails the case (`failure_exception_types`): this fails only the workflow task, which is
    retried, so a case whose pin a newer release wrote waits for a worker that reads it."""


def encode_pin(definition: CaseDefinition) -> bytes:
    """`definition` as the `pin_definition` activity returns it: the format byte, then its
    whole JSON compressed with zlib."""
    data = definition.model_dump_json().encode()
    return bytes([FORMAT_ZLIB_JSON]) + zlib.compress(data, _ZLIB_LEVEL)


def pin_json(encoding: bytes, data: bytes) -> bytes:
    """The definition's JSON held by a recorded pin (payload `encoding` and `data`), in
    either form."""
    if encoding == ENCODING_JSON:
        return data
    if encoding != ENCODING_BINARY:
        raise PinFormatError(
            f"pinned definition: unknown payload encoding {encoding.decode(errors='replace')!r}"
            f" (expected {ENCODING_BINARY.decode()} or {ENCODING_JSON.decode()})"
        )
    if not data or data[0] != FORMAT_ZLIB_JSON:
        found = f"format {data[0]}" if data else "no data"
        raise PinFormatError(
            f"pinned definition: {found}, this release reads format {FORMAT_ZLIB_JSON}"
        )
    try:
        return zlib.decompress(data[1:])
    except zlib.error as err:
        raise PinFormatError(f"pinned definition does not decompress: {err}") from None


def decode_pin(encoding: bytes, data: bytes) -> CaseDefinition:
    """The definition a recorded pin holds, decoded afresh (see `shared_definition`)."""
    return CaseDefinition.model_validate_json(pin_json(encoding, data))


# Every case of a topic raised under one configuration version pins the same definition, about
# 100 KB as Python objects; a worker caching 10,000 cases would hold 10,000 equal copies. A
# case's definition is never changed after it is pinned, so cases whose definitions have
# byte-for-byte the same JSON share one object, whichever form their pin was recorded in and
# whether they pinned it or carried it across continue-as-new. The table is bounded (a definition
# per topic and configuration version in use); the workflow sandbox passes this module
# through, so the table is the process's.
_SHARED_MAX = 512
_shared: dict[bytes, CaseDefinition] = {}


def shared_definition(payload: Payload) -> CaseDefinition:
    """The definition recorded in `payload` (the pin's payload, after the codec), the one
    object every case pinned with the same definition shares (decoded on first sight)."""
    return _share(pin_json(payload.metadata.get("encoding", b""), payload.data))


def shared_definition_of(pin: bytes) -> CaseDefinition:
    """The shared definition `pin` holds (`encode_pin`'s bytes, as the `open_case` activity
    returns them inside its result)."""
    return _share(pin_json(ENCODING_BINARY, pin))


def shared_copy(definition: CaseDefinition) -> CaseDefinition:
    """The shared object equal to `definition` (a definition a case carried across
    continue-as-new, decoded with the rest of its input): each continued case would otherwise
    keep its own copy for as long as it is cached."""
    return _share(definition.model_dump_json().encode(), definition)


def _share(definition_json: bytes, decoded: CaseDefinition | None = None) -> CaseDefinition:
    # Keyed by the definition's JSON, so a pin in either form and a carried definition share.
    key = hashlib.sha256(definition_json).digest()
    found = _shared.get(key)
    if found is None:
        found = decoded or CaseDefinition.model_validate_json(definition_json)
        if len(_shared) >= _SHARED_MAX:
            _shared.pop(next(iter(_shared)))
        _shared[key] = found
    return found
