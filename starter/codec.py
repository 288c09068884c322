"""Payload encryption: every payload the worker and the client write to Temporal (inputs,
messages, results, queries, details, failures' details) is encrypted with AES-256-GCM under a
key named by an id; Temporal stores only ciphertext. Search attributes are not payloads the
codec sees: they stay plain and carry no personal data.

Keys, newest first (the first encrypts; every one listed decrypts, so a key rotated out of
first place keeps old events readable):

- `CASE_PAYLOAD_KEYS="k2026b:<base64 32 bytes>,k2026a:<base64 32 bytes>"`, or
- `CASE_PAYLOAD_KEYS_FILE=/run/secrets/case-payload-keys`: one `id:base64key` a line
  (blank lines and `#` comments allowed).

Never in the repository. `python -m starter codec-server --new-key ID` prints a new key line.
With no key configured the worker and the command line refuse to start, unless
`CASE_PAYLOAD_PLAINTEXT=accept` says plaintext histories are accepted (development; the test
suite sets it). The demo makes a key file under var/demo/ and uses it.

A payload without this codec's encoding (written before encryption was turned on, or the
recorded histories under tests/histories) passes through decoding unchanged, so cases
started in plaintext keep running after encryption is turned on.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
CIPHER_METADATA = "encryption-cipher"
CIPHER = b"AES256-GCM"
NONCE_BYTES = 12
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PLAINTEXT_OPT_OUT = "CASE_PAYLOAD_PLAINTEXT"


class PayloadKeyError(ValueError):
    """The keys are missing or malformed, or a payload's key is not among them."""


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; `current` encrypts."""

    keys: Mapping[str, bytes]
    current: str

    @classmethod
    def parse(cls, entries: Sequence[str], where: str) -> KeyRing:
        """Keys from `id:base64key` entries, newest first. Errors name the entry by its
        position and id, never the key."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for n, entry in enumerate(entries, start=1):
            key_id, sep, encoded = entry.strip().partition(":")
            key_id = key_id.strip()
            if not sep or not KEY_ID.match(key_id):
                raise PayloadKeyError(
                    f"{where}: entry {n} is not `id:base64key` with an id of letters, digits, "
                    "'.', '_' or '-'"
                )
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"{where}: key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise PayloadKeyError(
                    f"{where}: key {key_id!r} is {len(key)} bytes; AES-256 needs 32"
                )
            if key_id in keys:
                raise PayloadKeyError(f"{where}: key id {key_id!r} is listed twice")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise PayloadKeyError(f"{where}: no keys")
        return cls(keys=keys, current=order[0])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyRing | None:
        """The keys of CASE_PAYLOAD_KEYS or CASE_PAYLOAD_KEYS_FILE; None when neither is set."""
        env = os.environ if env is None else env
        inline = env.get("CASE_PAYLOAD_KEYS", "").strip()
        path = env.get("CASE_PAYLOAD_KEYS_FILE", "").strip()
        if inline and path:
            raise PayloadKeyError("set CASE_PAYLOAD_KEYS or CASE_PAYLOAD_KEYS_FILE, not both")
        if inline:
            return cls.parse(inline.split(","), "CASE_PAYLOAD_KEYS")
        if path:
            try:
                text = Path(path).read_text()
            except OSError as e:
                raise PayloadKeyError(
                    f"CASE_PAYLOAD_KEYS_FILE {path}: cannot read it ({e.strerror})"
                ) from None
            lines = [
                line for line in text.splitlines() if line.strip() and not line.startswith("#")
            ]
            return cls.parse(lines, f"CASE_PAYLOAD_KEYS_FILE {path}")
        return None


def new_key_line(key_id: str) -> str:
    """A new random key as a key-file line, `id:base64key`."""
    if not KEY_ID.match(key_id):
        raise PayloadKeyError(f"key id {key_id!r}: letters, digits, '.', '_' or '-' only")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM of each whole payload (its metadata and data) under the ring's current
    key, the key id in the new payload's metadata and bound to the ciphertext as associated
    data. Decoding passes through payloads it did not encrypt."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.ring.current
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={
                "encoding": ENCODING,
                KEY_ID_METADATA: key_id.encode(),
                CIPHER_METADATA: CIPHER,
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # plaintext: written before encryption, or by another codec
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted under key {key_id!r}, which is not among the configured "
                f"keys ({', '.join(self.ring.keys)}): add it back to CASE_PAYLOAD_KEYS"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadKeyError(
                f"payload under key {key_id!r} does not decrypt: the key is not the one it "
                "was written with, or the payload was altered"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]


def plaintext_accepted(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get(PLAINTEXT_OPT_OUT, "").strip().lower() == "accept"


def codec_from_env(env: Mapping[str, str] | None = None) -> EncryptionCodec | None:
    """The codec for this process's keys; None when plaintext is explicitly accepted and no
    key is set. Raises PayloadKeyError, saying what to set, when neither is."""
    ring = KeyRing.from_env(env)
    if ring is not None:
        return EncryptionCodec(ring)
    if plaintext_accepted(env):
        return None
    raise PayloadKeyError(
        "no payload encryption keys: set CASE_PAYLOAD_KEYS or CASE_PAYLOAD_KEYS_FILE "
        "(docs/operations.md, 'Payload encryption'), or CASE_PAYLOAD_PLAINTEXT=accept to "
        "write applicants' data to Temporal unencrypted"
    )
