"""Payload encryption (starter/codec.py) and the codec server (starter/codec_server.py).

On the real dev server with the real worker: a case's history as the server stores it holds
no plaintext of its notes or reasons; a key rotated mid-case still decodes the events written
under the old one; payloads written before encryption pass through. The codec server speaks
Temporal's remote codec protocol with CORS and bearer auth. (The Web UI decoding through it,
in headless Chromium, is tests/test_web_ui_codec.py.)
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from models.messages import CloseCase, RaiseCase
from starter.client import CaseClient
from starter.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    codec_from_env,
    new_key_line,
)
from starter.codec_server import CodecServer
from starter.connection import data_converter
from starter.devserver import DevServer
from store.db import create_schema, make_engine
from tests.helpers import REPO
from tests.helpers.store import sample_store
from worker import build_worker

NOTES = "Applicant disclosed SECRET-NOTE-4e1d at the front desk"
REASON = "Closed: SECRET-REASON-93ab moved out of area"
LATE_NOTE = "SECRET-LATE-c0de"


def ring(*ids: str) -> KeyRing:
    return KeyRing.parse([new_key_line(i) for i in ids], "test")


def payloads_of(history: History) -> list[Payload]:
    """Every Payload message anywhere in the history's events."""
    found: list[Payload] = []

    def walk(message: Message) -> None:
        if isinstance(message, Payload):
            found.append(message)
            return
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if isinstance(value, Message):
                walk(value)
                continue
            items = value.values() if hasattr(value, "values") else value  # map or repeated
            for item in items:
                if isinstance(item, Message):
                    walk(item)

    walk(history)
    return found


# ------------------------------------------------------------------ keys and the codec


def test_keys_parse_and_refuse_bad_entries(tmp_path: Path) -> None:
    k = ring("b", "a")
    assert (k.current, list(k.keys)) == ("b", ["b", "a"])
    good = base64.b64encode(b"x" * 32).decode()
    for entries, message in (
        (["nocolon"], "entry 1 is not `id:base64key`"),
        (["a:%%%"], "key 'a' is not base64"),
        ([f"a:{base64.b64encode(b'short').decode()}"], "is 5 bytes; AES-256 needs 32"),
        ([f"a:{good}", f"a:{good}"], "listed twice"),
        ([], "no keys"),
    ):
        with pytest.raises(PayloadKeyError, match=message) as caught:
            KeyRing.parse(entries, "CASE_PAYLOAD_KEYS")
        assert good not in str(caught.value)  # a key is never shown
    keys = tmp_path / "keys"
    keys.write_text(f"# rotated 2026-12-01\n{new_key_line('new')}\n\n{new_key_line('old')}\n")
    from_file = KeyRing.from_env({"CASE_PAYLOAD_KEYS_FILE": str(keys)})
    assert from_file is not None and list(from_file.keys) == ["new", "old"]
    with pytest.raises(PayloadKeyError, match="not both"):
        KeyRing.from_env({"CASE_PAYLOAD_KEYS_FILE": str(keys), "CASE_PAYLOAD_KEYS": "x"})
    with pytest.raises(PayloadKeyError, match="cannot read it"):
        KeyRing.from_env({"CASE_PAYLOAD_KEYS_FILE": str(tmp_path / "missing")})
    with pytest.raises(PayloadKeyError, match="CASE_PAYLOAD_PLAINTEXT=accept"):
        codec_from_env({})
    assert codec_from_env({"CASE_PAYLOAD_PLAINTEXT": "accept"}) is None


def test_encrypt_decrypt_rotation_passthrough_and_tampering() -> None:
    plain = pydantic_data_converter.payload_converter.to_payloads([{"notes": NOTES}])[0]
    old = EncryptionCodec(ring("old"))
    sealed = old.encrypt(plain)
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID_METADATA] == b"old"
    assert NOTES.encode() not in sealed.SerializeToString()
    assert old.decrypt(sealed) == plain
    assert old.decrypt(plain) == plain  # not ours: passes through
    rotated = EncryptionCodec(KeyRing({**ring("new").keys, **old.ring.keys}, "new"))
    assert rotated.decrypt(sealed) == plain  # old keys still decrypt
    assert rotated.encrypt(plain).metadata[KEY_ID_METADATA] == b"new"  # the newest encrypts
    with pytest.raises(PayloadKeyError, match="key 'old', which is not among"):
        EncryptionCodec(ring("new")).decrypt(sealed)
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        old.decrypt(tampered)
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"new"
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        rotated.decrypt(relabelled)  # the key id is bound to the ciphertext


# ------------------------------------------------------------------ on the real server


async def stored_history(server: DevServer, reference: str) -> History:
    """The case's history as the server holds it, fetched by a client with no codec."""
    plain = await Client.connect(server.address, data_converter=pydantic_data_converter)
    fetched = await plain.get_workflow_handle(f"case-{reference}").fetch_history()
    return History(events=fetched.events)


@asynccontextmanager
async def encrypted_worker(
    tmp_path: Path,
    server: DevServer,
    executor: concurrent.futures.Executor,
    keys: KeyRing,
    queue: str,
) -> AsyncIterator[CaseClient]:
    """An in-process worker and a client sharing the product's data converter with `keys`;
    no workflow cache, so every task replays the history with these keys."""
    engine = sample_store(tmp_path)
    client = await Client.connect(
        server.address, data_converter=data_converter(EncryptionCodec(keys))
    )
    try:
        async with build_worker(client, engine, queue, executor, max_cached_workflows=0):
            yield CaseClient(client, queue)
    finally:
        engine.dispose()


async def test_history_on_the_server_is_ciphertext_and_survives_key_rotation(
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    ref = f"ENC-{uuid.uuid4().hex[:8]}"
    first = ring("k2026a")
    async with encrypted_worker(tmp_path, dev_server, activity_executor, first, queue) as cases:
        await cases.raise_case(
            RaiseCase(
                reference=ref, topic="disrepair-or-overcrowding", raised_by="adviser1", notes=NOTES
            )
        )
        state = await cases.state(ref)  # opened: pinned and allocated
        owner = state.owner.key

    # Rotation: a new key first, the old one kept for the events written under it.
    rotated = KeyRing({**ring("k2026b").keys, **first.keys}, "k2026b")
    async with encrypted_worker(tmp_path, dev_server, activity_executor, rotated, queue) as cases:
        await cases.close_case(ref, CloseCase(request_id="close-1", actor=owner, reason=REASON))
        final = await cases.result(ref)  # the worker replayed the old events to get here
        assert final.status == "closed"
    history = await stored_history(dev_server, ref)

    # As the server stores it: no note, no reason, anywhere.
    raw = history.SerializeToString()
    for secret in (NOTES, REASON, "SECRET-"):
        assert secret.encode() not in raw
    payloads = payloads_of(history)
    encrypted = [p for p in payloads if p.metadata.get("encoding") == ENCODING]
    key_ids = {p.metadata[KEY_ID_METADATA] for p in encrypted}
    assert key_ids == {b"k2026a", b"k2026b"}, key_ids  # both keys wrote events
    # Only search attributes (plain by design, no personal data) are left unencrypted.
    plain = [p for p in payloads if p.metadata.get("encoding") != ENCODING]
    assert all(b"SECRET" not in p.data for p in plain)

    # With the rotated keys everything decodes; with the new key alone the old events do not.
    decoded = await EncryptionCodec(rotated).decode(encrypted)
    assert any(NOTES.encode() in p.data for p in decoded)
    assert any(REASON.encode() in p.data for p in decoded)
    with pytest.raises(PayloadKeyError, match="k2026a"):
        await EncryptionCodec(ring("k2026b")).decode(encrypted)


async def test_a_case_started_in_plaintext_keeps_running_with_encryption_on(
    dev_server: DevServer,
    activity_executor: concurrent.futures.ThreadPoolExecutor,
    tmp_path: Path,
) -> None:
    queue = f"plain-{uuid.uuid4().hex[:8]}"
    ref = f"PLN-{uuid.uuid4().hex[:8]}"
    engine = sample_store(tmp_path)
    plain_client = await Client.connect(dev_server.address, data_converter=data_converter(None))
    async with build_worker(plain_client, engine, queue, activity_executor):
        cases = CaseClient(plain_client, queue)
        await cases.raise_case(
            RaiseCase(
                reference=ref,
                topic="disrepair-or-overcrowding",
                raised_by="adviser1",
                notes=LATE_NOTE,
            )
        )
        owner = (await cases.state(ref)).owner.key
    engine.dispose()
    async with encrypted_worker(tmp_path, dev_server, activity_executor, ring("k1"), queue) as c:
        await c.close_case(ref, CloseCase(request_id="close-p", actor=owner, reason=REASON))
        assert (await c.result(ref)).status == "closed"
    raw = (await stored_history(dev_server, ref)).SerializeToString()
    assert LATE_NOTE.encode() in raw  # written before encryption: plaintext, still read
    assert REASON.encode() not in raw  # written after: encrypted


# ------------------------------------------------------------------ the codec server


def _post(url: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, str], object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def test_codec_server_protocol_cors_and_auth() -> None:
    codec = EncryptionCodec(ring("srv"))
    origin = "http://localhost:8080"
    server = CodecServer(codec, port=0, allowed_origins=[origin], token="t0ken").start()
    base = f"http://127.0.0.1:{server.port}"
    plain = pydantic_data_converter.payload_converter.to_payloads([{"notes": NOTES}])[0]
    wire = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in plain.metadata.items()},
                "data": base64.b64encode(plain.data).decode(),
            }
        ]
    }
    auth = {"Content-Type": "application/json", "Authorization": "Bearer t0ken", "Origin": origin}
    try:
        status, headers, encoded = _post(f"{base}/encode", wire, auth)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        assert isinstance(encoded, dict)
        sealed = encoded["payloads"][0]
        assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
        assert NOTES.encode() not in base64.b64decode(sealed["data"])
        # The UI may put the namespace first; the body decodes back to the note.
        status, _, decoded = _post(
            f"{base}/default/decode", encoded, {**auth, "X-Namespace": "default"}
        )
        assert status == 200 and isinstance(decoded, dict)
        assert base64.b64decode(decoded["payloads"][0]["data"]) == plain.data
        # Plaintext passes through /decode unchanged.
        assert _post(f"{base}/decode", wire, auth)[2] == wire

        assert _post(f"{base}/decode", encoded, {"Origin": origin})[0] == 401
        assert _post(f"{base}/decode", encoded, {**auth, "Authorization": "Bearer no"})[0] == 401
        other = _post(f"{base}/decode", encoded, {**auth, "Origin": "http://evil.example"})
        assert other[0] == 200 and "Access-Control-Allow-Origin" not in other[1]
        assert _post(f"{base}/decode", {"payloads": "x"}, auth)[0] == 400
        assert _post(f"{base}/nothing", wire, auth)[0] == 404
        foreign = EncryptionCodec(ring("elsewhere")).encrypt(plain)
        status, _, error = _post(
            f"{base}/decode",
            {
                "payloads": [
                    {
                        "metadata": {
                            k: base64.b64encode(v).decode() for k, v in foreign.metadata.items()
                        },
                        "data": base64.b64encode(foreign.data).decode(),
                    }
                ]
            },
            auth,
        )
        assert status == 422 and "elsewhere" in str(error)

        preflight = urllib.request.Request(
            f"{base}/decode",
            method="OPTIONS",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        with urllib.request.urlopen(preflight, timeout=10) as answer:
            assert answer.status == 204
            assert answer.headers["Access-Control-Allow-Origin"] == origin
            assert "X-Namespace" in answer.headers["Access-Control-Allow-Headers"]
    finally:
        server.stop()


def _plain_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CASE_PAYLOAD", "TEMPORAL_")) and k not in ("DATABASE_URL",)
    }
    env.update(DEMO_DIR="/nonexistent", LOG_FORMAT="json", **extra)
    return env


def test_the_worker_refuses_to_start_without_keys_unless_plaintext_is_accepted(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    run = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=REPO,
        env=_plain_env(DATABASE_URL=url, TEMPORAL_ADDRESS="127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run
    refusal = json.loads(run.stderr.strip().splitlines()[-1])
    assert refusal["event"] == "worker refused to start"
    assert (
        "CASE_PAYLOAD_KEYS" in refusal["reason"] and "CASE_PAYLOAD_PLAINTEXT" in refusal["reason"]
    )

    cli = subprocess.run(
        [sys.executable, "-m", "starter", "--json", "codec-server"],
        cwd=REPO,
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and json.loads(cli.stderr)["error"]["code"] == "no_payload_keys"
    line = subprocess.run(
        [sys.executable, "-m", "starter", "codec-server", "--new-key", "k9"],
        cwd=REPO,
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert line.returncode == 0, line
    assert list(KeyRing.parse([line.stdout.strip()], "printed").keys) == ["k9"]
