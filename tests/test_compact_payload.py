"""Compressed local activity inputs (domain.compact_payload): what is compressed, what the data
converter reads back, what it refuses; that a case's record reaches the store compressed; and
that a `json/zlib` payload sent to a case as a message, however hostile, changes nothing but
its audit trail."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import random
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter

from domain import compact_payload
from domain.compact_payload import ENCODING, JSON, MAX_INFLATED, CompactPayloadError
from models.case import CaseState
from models.messages import RaiseCase
from starter.connection import CASE_DATA_CONVERTER
from starter.devserver import DevServer
from store.repository import load_case
from tests.helpers.store import sample_store
from tests.helpers.workflow_harness import case_engine
from worker import build_worker

CONVERTER = CASE_DATA_CONVERTER.payload_converter
TOPIC = "private-tenancy-ending"


def _json(value: object) -> Payload:
    return Payload(metadata={"encoding": JSON}, data=json.dumps(value).encode())


def _zlib(data: bytes) -> Payload:
    return Payload(metadata={"encoding": ENCODING}, data=zlib.compress(data))


def test_big_json_is_compressed_and_reads_back_as_it_was() -> None:
    payload = _json({"tasks": [{"key": f"task-{i}", "status": "open"} for i in range(50)]})
    payload.metadata["messageType"] = b"kept"
    compacted = compact_payload.compact(payload)
    assert compacted.metadata["encoding"] == ENCODING
    assert compacted.metadata["messageType"] == b"kept"
    assert len(compacted.data) < len(payload.data) / 4
    assert compact_payload.inflate(compacted) == payload


@pytest.mark.parametrize(
    "payload",
    [
        _json({"a": 1}),  # under MIN_SIZE
        Payload(metadata={"encoding": b"binary/plain"}, data=b"x" * 5000),  # not JSON
        # Data that compression does not shrink (random bytes: compact only checks the size).
        Payload(metadata={"encoding": JSON}, data=random.Random(7).randbytes(4096)),
    ],
    ids=["small", "binary", "incompressible"],
)
def test_what_compression_would_not_help_is_sent_as_it_is(payload: Payload) -> None:
    assert compact_payload.compact(payload) is payload


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not zlib at all", "does not decompress"),
        (zlib.compress(b"{}")[:-3], "truncated"),
        (zlib.compress(b" " * (MAX_INFLATED + 1)), "inflates beyond 8,388,608 bytes"),
    ],
    ids=["corrupt", "truncated", "bomb"],
)
def test_a_payload_that_does_not_inflate_is_refused_naming_why(data: bytes, message: str) -> None:
    with pytest.raises(CompactPayloadError, match=message):
        compact_payload.inflate(Payload(metadata={"encoding": ENCODING}, data=data))


def test_the_data_converter_reads_json_zlib_and_never_writes_it() -> None:
    raise_ = RaiseCase(reference="CMP-1", topic=TOPIC, raised_by="adviser1")
    plain = CONVERTER.to_payloads([raise_])[0]
    assert plain.metadata["encoding"] == JSON
    assert CONVERTER.from_payloads([_zlib(plain.data)], [RaiseCase]) == [raise_]
    with pytest.raises(CompactPayloadError, match="truncated"):
        CONVERTER.from_payloads([Payload(metadata={"encoding": ENCODING}, data=b"")], [RaiseCase])


async def test_a_case_sends_its_record_compressed_and_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker runs in this process: every `json/zlib` payload it reads passes here."""
    inflated: list[int] = []
    real: Callable[[Payload], Payload] = compact_payload.inflate

    def counting(payload: Payload) -> Payload:
        plain = real(payload)
        inflated.append(len(plain.data))
        return plain

    monkeypatch.setattr(compact_payload, "inflate", counting)
    async with case_engine(tmp_path) as eng:
        ref = f"CMP-{uuid.uuid4().hex[:8]}"
        await eng.client.raise_case(RaiseCase(reference=ref, topic=TOPIC, raised_by="adviser1"))
        stored = load_case(eng.engine, ref)
        assert stored is not None and stored.status == "open" and len(stored.tasks) > 1
    # The first record holds every task: kilobytes of JSON, sent compressed.
    assert inflated and max(inflated) > 2000


async def test_a_hostile_json_zlib_message_is_refused_and_the_case_goes_on(
    tmp_path: Path,
) -> None:
    async with case_engine(tmp_path) as eng:
        ref = f"CMZ-{uuid.uuid4().hex[:8]}"
        handle = await eng.client.raise_case(
            RaiseCase(reference=ref, topic=TOPIC, raised_by="adviser1")
        )
        request = {"request_id": "zl-ok", "actor": "adviser1", "task": "call-back", "note": "z"}
        hostile = {
            "zl-bomb": _zlib(json.dumps({**request, "note": " " * (MAX_INFLATED + 10)}).encode()),
            "zl-corrupt": Payload(metadata={"encoding": ENCODING}, data=b"\x78\x9cnot zlib"),
        }
        for payload in hostile.values():
            await handle.signal("complete_task", RawValue(payload))
        # A well-formed request, compressed, reads as it would uncompressed.
        await handle.signal("complete_task", RawValue(_zlib(json.dumps(request).encode())))
        state: CaseState | None = None
        for _ in range(200):
            state = await handle.query("state", result_type=CaseState)
            if state is not None and sum(a.action == "complete_task" for a in state.audit) >= 3:
                break
            await asyncio.sleep(0.05)
        assert state is not None
        outcomes = [(a.outcome, a.request_id) for a in state.audit if a.action == "complete_task"]
        # A refused payload that is not readable JSON names no request id.
        assert outcomes == [("refused", None), ("refused", None), ("accepted", "zl-ok")]
        call_back = state.task("call-back")
        assert call_back is not None and call_back.status == "completed"
        assert state.status == "open"


async def test_a_worker_refuses_a_client_without_the_products_converter(
    dev_server: DevServer, tmp_path: Path
) -> None:
    """A worker whose client decodes with another converter (the SDK's pydantic one, say)
    would fail each compressed local activity input and retry it for ever: it refuses to be
    built, naming what to use."""
    client = await Client.connect(dev_server.address, data_converter=pydantic_data_converter)
    engine = sample_store(tmp_path)
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor,
        pytest.raises(ValueError, match=r"starter\.connection\.data_converter\(\)"),
    ):
        build_worker(client, engine, "refused", executor)
    engine.dispose()
