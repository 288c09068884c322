"""Connecting to Temporal from environment variables (worker and client alike).

| variable | default | meaning |
| --- | --- | --- |
| TEMPORAL_ADDRESS | localhost:7233 | frontend host:port |
| TEMPORAL_NAMESPACE | default | namespace |
| TEMPORAL_TASK_QUEUE | housing-options | task queue the worker polls and cases run on |
| TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY | unset | client certificate and key files (mTLS) |
| TEMPORAL_TLS_CA | unset | server CA file (TLS without client certificate when alone) |
| TEMPORAL_API_KEY | unset | Temporal Cloud API key (implies TLS) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

DEFAULT_TASK_QUEUE = "housing-options"


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls) -> TemporalSettings:
        env = os.environ

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        return cls(
            address=env.get("TEMPORAL_ADDRESS", cls.address),
            namespace=env.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=env.get("TEMPORAL_TASK_QUEUE", cls.task_queue),
            tls_cert=path("TEMPORAL_TLS_CERT"),
            tls_key=path("TEMPORAL_TLS_KEY"),
            tls_ca=path("TEMPORAL_TLS_CA"),
            api_key=env.get("TEMPORAL_API_KEY") or None,
        )

    def tls(self) -> TLSConfig | bool:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
        if self.tls_cert is not None and self.tls_key is not None:
            return TLSConfig(
                client_cert=self.tls_cert.read_bytes(),
                client_private_key=self.tls_key.read_bytes(),
                server_root_ca_cert=self.tls_ca.read_bytes() if self.tls_ca else None,
            )
        if self.tls_ca is not None:
            return TLSConfig(server_root_ca_cert=self.tls_ca.read_bytes())
        return self.api_key is not None


async def connect(settings: TemporalSettings | None = None) -> Client:
    """A client with the pydantic data converter, as every part of the product uses."""
    settings = settings or TemporalSettings.from_env()
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=settings.tls(),
        api_key=settings.api_key,
        data_converter=pydantic_data_converter,
    )
