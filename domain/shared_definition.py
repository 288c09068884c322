"""One copy per process of each pinned definition (the workflow imports this, not
`domain.case_definition`, which needs the bank holiday tables)."""

from __future__ import annotations

import hashlib

from models.definition import CaseDefinition

# Every case of a topic raised under one configuration version pins the same definition, about
# 100 KB as Python objects; a worker caching 10,000 cases would hold 10,000 equal copies. A
# case's definition is never changed after it is pinned, so cases with byte-for-byte the same
# pinned definition share one object. The table is bounded (a definition per topic and
# configuration version in use); the workflow sandbox passes this module through, so the table
# is the process's.
_SHARED_MAX = 512
_shared: dict[bytes, CaseDefinition] = {}


def shared_definition(payload_json: bytes) -> CaseDefinition:
    """The definition encoded in `payload_json`, the one object every case pinned with the
    same bytes shares (decoded on first sight)."""
    key = hashlib.sha256(payload_json).digest()
    found = _shared.get(key)
    if found is None:
        found = CaseDefinition.model_validate_json(payload_json)
        if len(_shared) >= _SHARED_MAX:
            _shared.pop(next(iter(_shared)))
        _shared[key] = found
    return found
