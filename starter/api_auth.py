"""Who is calling the HTTP service: bearer tokens per calling service, stored hashed.

Each service gets a random token (`new_token`: 32 bytes, URL-safe); the service keeps the
token, the API keeps only its SHA-256 (a token of that entropy needs no slow hash: nobody
can guess one to match a leaked hash). An entry names the service and either

- `officer`: the one member of staff the token acts for (an officer's own token, or a
  service acting for one person), or
- no officer: a service trusted to act for many, which names the officer of each request
  in the `X-Acting-Officer` header (e.g. the council's case management system, or an
  authenticating reverse proxy in front of this service: see docs/api.md, "Single sign-on").

Entries come from `API_TOKENS_FILE` (a YAML or JSON list) or `API_TOKENS` (the same, JSON):

    - service: cms
      token_sha256: 9f86d0...        # python -m starter api token --service cms
    - service: amira-page
      token_sha256: 2c26b4...
      officer: adviser1
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from models.config import Key

ACTING_HEADER = "X-Acting-Officer"


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: Key
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    officer: Key | None = None


class TokenError(ValueError):
    """The token configuration is unreadable; the message names the variable and the entry."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Tokens:
    """The configured tokens, looked up by hash."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        self._by_hash = {e.token_sha256: e for e in entries}
        if len(self._by_hash) != len(entries):
            raise TokenError("two token entries have the same token_sha256")

    def find(self, token: str) -> TokenEntry | None:
        digest = token_hash(token)
        for known, entry in self._by_hash.items():
            # Constant time per comparison, so timing tells nothing about a near match.
            if hmac.compare_digest(known, digest):
                return entry
        return None

    def __len__(self) -> int:
        return len(self._by_hash)

    @classmethod
    def parse(cls, text: str, source: str) -> Tokens:
        try:
            data = yaml.safe_load(text) or []
            return cls(TypeAdapter(list[TokenEntry]).validate_python(data))
        except yaml.YAMLError:
            raise TokenError(f"{source}: not YAML or JSON") from None
        except ValidationError as e:
            problems = "; ".join(
                f"entry {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise TokenError(f"{source}: {problems}") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tokens:
        env = os.environ if env is None else env
        path = env.get("API_TOKENS_FILE", "").strip()
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as e:
                raise TokenError(f"API_TOKENS_FILE: cannot read {path} ({e.strerror})") from None
            return cls.parse(text, "API_TOKENS_FILE")
        inline = env.get("API_TOKENS", "").strip()
        if inline:
            return cls.parse(inline, "API_TOKENS")
        return cls([])


def entry_line(service: str, token: str, officer: str | None) -> str:
    """The entry for a new token, as one line of JSON for API_TOKENS / API_TOKENS_FILE."""
    entry = {"service": service, "token_sha256": token_hash(token)}
    if officer:
        entry["officer"] = officer
    return json.dumps(entry)
