"""The pinned definition as a case records it (domain/shared_definition.py): compressed for new
cases, JSON in the histories of cases opened before; both decode to the definition pinned.

Real parts: the sample configuration's definitions, the recorded histories of earlier releases
(tests/histories/), a case opened on the time-skipping server by the real worker, and one on
the dev server with payload encryption on.
"""

from __future__ import annotations

import concurrent.futures
import json
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.client import WorkflowHistory as ClientHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.case_definition import DefinitionError, build_case_definition
from domain.shared_definition import (
    ENCODING_BINARY,
    ENCODING_JSON,
    FORMAT_ZLIB_JSON,
    PinFormatError,
    decode_pin,
    encode_pin,
    pin_json,
    shared_copy,
    shared_definition,
)
from models.activities import OpenCaseResult
from models.config import Configuration
from models.definition import CaseDefinition
from models.messages import RaiseCase
from starter.client import CaseClient
from starter.codec import ENCODING as ENCRYPTED
from starter.codec import EncryptionCodec, KeyRing, new_key_line
from starter.connection import data_converter
from starter.devserver import DevServer
from tests.helpers.store import SAMPLE_DAY, sample_store
from tests.helpers.workflow_harness import HISTORIES, case_engine, wait_open
from worker import build_worker


def sample_definitions(config: Configuration) -> list[CaseDefinition]:
    """Every sample topic's definition in force on the sample day."""
    found = []
    for topic in config.topics:
        try:
            found.append(build_case_definition(config, 1, topic.key, SAMPLE_DAY))
        except DefinitionError:  # a retired topic
            continue
    return found


# The local activities whose result holds a case's pin: `open_case` (0.2.0: JSON, the pin in
# base64) and `pin_definition` (before: the pin itself, `binary/plain`, or JSON before that).
PINNING = ("open_case", "pin_definition")


def pin_payloads(history: History) -> list[tuple[str, Payload]]:
    """The activity type and result payload of every pinning local activity in `history`."""
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        details = event.marker_recorded_event_attributes.details
        if "data" not in details or "result" not in details:
            continue
        marker = json.loads(details["data"].payloads[0].data)
        if marker.get("activity_type") in PINNING:
            found.append((marker["activity_type"], details["result"].payloads[0]))
    return found


def pin_of(activity_type: str, payload: Payload) -> Payload:
    """The pin a pinning activity's (decoded) result holds, as the payload `shared_definition`
    reads: `open_case`'s from its JSON, `pin_definition`'s as it is."""
    if activity_type != "open_case":
        return payload
    assert payload.metadata["encoding"] == ENCODING_JSON
    pin = OpenCaseResult.model_validate_json(payload.data).pin
    return Payload(metadata={"encoding": ENCODING_BINARY}, data=pin)


# ------------------------------------------------------------------ the two forms


def test_every_sample_definition_round_trips_compressed_at_under_half_its_json(
    sample_config: Configuration,
) -> None:
    definitions = sample_definitions(sample_config)
    assert len(definitions) >= 16
    for defn in definitions:
        pinned = encode_pin(defn)
        as_json = defn.model_dump_json().encode()
        assert pinned[0] == FORMAT_ZLIB_JSON
        assert decode_pin(ENCODING_BINARY, pinned) == defn
        # Lossless: the very JSON, every default included.
        assert pin_json(ENCODING_BINARY, pinned) == as_json
        assert len(pinned) <= len(as_json) // 2, (defn.topic.key, len(pinned), len(as_json))


def test_the_data_converter_records_the_pin_as_binary_and_it_decodes_shared(
    sample_config: Configuration,
) -> None:
    defn = sample_definitions(sample_config)[0]
    payload = pydantic_data_converter.payload_converter.to_payload(encode_pin(defn))
    assert payload.metadata["encoding"] == ENCODING_BINARY
    first = shared_definition(payload)
    assert first == defn
    again = Payload(metadata=dict(payload.metadata), data=bytes(payload.data))
    assert shared_definition(again) is first  # one object per distinct payload


def test_an_old_json_pin_still_decodes(sample_config: Configuration) -> None:
    defn = sample_definitions(sample_config)[0]
    old = pydantic_data_converter.payload_converter.to_payload(defn)  # as cases recorded it
    assert old.metadata["encoding"] == ENCODING_JSON
    assert shared_definition(old) == defn
    new = pydantic_data_converter.payload_converter.to_payload(encode_pin(defn))
    # Either form of the same definition, and the same definition carried across
    # continue-as-new (decoded afresh with the case's input), is one object.
    assert shared_definition(new) is shared_definition(old)
    carried = CaseDefinition.model_validate_json(defn.model_dump_json())
    assert carried is not shared_definition(new)
    assert shared_copy(carried) is shared_definition(new)


# 0.1.0's cases pinned JSON with `pin_definition`; 0.2.0's histories are recorded with this
# release's `open_case`, and two of its development build's with `pin_definition`, compressed.
@pytest.mark.parametrize(
    ("version", "recorded"),
    [
        ("0.1.0", {("pin_definition", ENCODING_JSON)}),
        ("0.2.0", {("open_case", ENCODING_BINARY), ("pin_definition", ENCODING_BINARY)}),
    ],
)
def test_the_pins_recorded_by_each_release_decode(
    version: str, recorded: set[tuple[str, bytes]]
) -> None:
    files = sorted((HISTORIES / version).glob("*.json"))
    assert files
    decoded, seen = 0, set()
    for path in files:
        history = ClientHistory.from_json("wf", path.read_text())
        for activity_type, payload in pin_payloads(History(events=history.events)):
            pin = pin_of(activity_type, payload)
            seen.add((activity_type, pin.metadata["encoding"]))
            assert isinstance(shared_definition(pin), CaseDefinition)
            decoded += 1
    assert seen == recorded
    assert decoded >= len(files) - 1  # a history refused before pinning has none


@pytest.mark.parametrize(
    ("encoding", "data", "says"),
    [
        (b"binary/plain", bytes([2]) + zlib.compress(b"{}"), "format 2"),
        (b"binary/plain", b"", "no data"),
        (b"binary/plain", bytes([FORMAT_ZLIB_JSON]) + b"not zlib", "does not decompress"),
        (b"binary/snappy", b"\x01", "binary/snappy"),
        (b"", b"{}", "unknown payload encoding"),
    ],
)
def test_a_pin_this_release_cannot_read_is_refused_naming_why(
    encoding: bytes, data: bytes, says: str
) -> None:
    with pytest.raises(PinFormatError, match=says) as caught:
        shared_definition(Payload(metadata={"encoding": encoding}, data=data))
    # Not a ValidationError, which would fail the case: only the workflow task fails (and is
    # retried), so a pin a newer release wrote waits for a worker that reads it.
    assert not isinstance(caught.value, ValidationError)


# ------------------------------------------------------------------ recorded by a real case


async def test_a_new_case_records_the_compressed_pin_and_runs_on_it(tmp_path: Path) -> None:
    async with case_engine(tmp_path) as eng:
        await eng.sleep_until(datetime(2028, 6, 5, 8, tzinfo=UTC))
        ref = "PIN-2028-0001"
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic="homeless-tonight", raised_by="adviser1")
        )
        await wait_open(handle)
        state = await eng.client.state(ref)
        assert state.status == "open" and state.topic == "homeless-tonight"
        assert state.workflow_type == "relief-duty"
        history = await handle.fetch_history()
    [(activity_type, recorded)] = pin_payloads(History(events=history.events))
    assert activity_type == "open_case"
    pin = pin_of(activity_type, recorded)
    assert pin.data[0] == FORMAT_ZLIB_JSON
    defn = decode_pin(ENCODING_BINARY, pin.data)
    assert defn.topic.key == "homeless-tonight"
    as_json = defn.model_dump_json().encode()
    assert len(pin.data) <= len(as_json) // 2, (len(pin.data), len(as_json))


async def test_a_case_opens_and_replays_on_the_compressed_pin_with_encryption_on(
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    engine = sample_store(tmp_path)
    codec = EncryptionCodec(KeyRing.parse([new_key_line("kpin")], "test"))
    client = await Client.connect(dev_server.address, data_converter=data_converter(codec))
    queue = f"pin-{uuid.uuid4().hex[:8]}"
    ref = f"PIN-{uuid.uuid4().hex[:8]}"
    try:
        # No workflow cache: every query replays the history, pin marker included.
        async with build_worker(client, engine, queue, activity_executor, max_cached_workflows=0):
            cases = CaseClient(client, queue)
            await cases.raise_case(
                RaiseCase(reference=ref, topic="disrepair-or-overcrowding", raised_by="adviser1")
            )
            await wait_open(client.get_workflow_handle(f"case-{ref}"))
            state = await cases.state(ref)
            assert state.status == "open" and state.topic == "disrepair-or-overcrowding"
    finally:
        engine.dispose()
    plain = await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
    fetched = await plain.get_workflow_handle(f"case-{ref}").fetch_history()
    [(activity_type, stored)] = pin_payloads(History(events=fetched.events))
    assert stored.metadata["encoding"] == ENCRYPTED  # encrypted on the server
    [decoded] = await codec.decode([stored])
    pin = pin_of(activity_type, decoded)
    assert decode_pin(ENCODING_BINARY, pin.data).topic.key == "disrepair-or-overcrowding"
