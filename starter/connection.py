"""Connecting to Temporal from environment variables (worker and client alike).

| variable | default | meaning |
| --- | --- | --- |
| TEMPORAL_ADDRESS | localhost:7233 | frontend host:port |
| TEMPORAL_NAMESPACE | default | namespace |
| TEMPORAL_TASK_QUEUE | housing-options | task queue the worker polls and cases run on |
| TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY | unset | client certificate and key files (mTLS) |
| TEMPORAL_TLS_CA | unset | server CA file (TLS without client certificate when alone) |
| TEMPORAL_API_KEY | unset | Temporal Cloud API key (implies TLS) |
| TEMPORAL_SEARCH_ATTRIBUTES | auto | case search attributes on new cases: auto (ask), on, off |
| CASE_PAYLOAD_KEYS, CASE_PAYLOAD_KEYS_FILE | unset | payload encryption keys (starter/codec.py) |
| CASE_PAYLOAD_PLAINTEXT | unset | `accept`: run without payload keys, histories in plaintext |

While `make demo` runs it writes its addresses to `var/demo/connection.json` (or
`$DEMO_DIR/connection.json`); the command line uses them when none of TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE and DATABASE_URL is set (see `demo_connection`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.runtime import Runtime

DEFAULT_TASK_QUEUE = "housing-options"
REPO = Path(__file__).resolve().parent.parent

SearchAttributesMode = Literal["auto", "on", "off"]
SEARCH_ATTRIBUTES_MODES: tuple[SearchAttributesMode, ...] = get_args(SearchAttributesMode)


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    api_key: str | None = None
    search_attributes: SearchAttributesMode = "auto"

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
            search_attributes=search_attributes_mode(env.get("TEMPORAL_SEARCH_ATTRIBUTES")),
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


async def connect(
    settings: TemporalSettings | None = None, *, runtime: Runtime | None = None
) -> Client:
    """A client with the product's data converter (`data_converter`), as every part of the
    product uses. `runtime`: the worker's, when it exports the SDK's metrics
    (starter.observability). Raises PayloadKeyError (a ValueError) when no payload key is
    configured and plaintext is not accepted (starter/codec.py)."""
    settings = settings or TemporalSettings.from_env()
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=settings.tls(),
        api_key=settings.api_key,
        data_converter=data_converter(),
        runtime=runtime,
    )


def data_converter(codec: PayloadCodec | Literal["env"] | None = "env") -> DataConverter:
    """The one data converter of the worker and the client: pydantic's, with the payload
    encryption codec of this process's keys (`starter.codec.codec_from_env`) or `codec`."""
    if codec == "env":
        from starter.codec import codec_from_env

        codec = codec_from_env()
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def search_attributes_mode(value: str | None) -> SearchAttributesMode:
    """TEMPORAL_SEARCH_ATTRIBUTES's value (unset or empty: `auto`); anything else is refused,
    so a typo does not silently change what cases carry."""
    text = (value or "auto").strip().lower()
    for mode in SEARCH_ATTRIBUTES_MODES:
        if text == mode:
            return mode
    raise ValueError(
        f"TEMPORAL_SEARCH_ATTRIBUTES must be one of {', '.join(SEARCH_ATTRIBUTES_MODES)}, "
        f"got {value!r}"
    )


# ------------------------------------------------------------ the running demo

# The variables a running demo answers for; setting any of them means "not the demo".
DEMO_VARIABLES = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE", "DATABASE_URL")


def demo_dir() -> Path:
    """Where the demo keeps its data: DEMO_DIR, else `<repo>/var/demo`."""
    value = os.environ.get("DEMO_DIR", "").strip()
    return Path(value) if value else REPO / "var" / "demo"


def demo_connection_file() -> Path:
    """The file a running demo describes itself in."""
    return demo_dir() / "connection.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, though not ours to judge further
    # A recycled pid is some other program: on Linux, check it is still a Python `starter`.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return b"starter" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def demo_connection() -> dict[str, str] | None:
    """The running demo's variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE,
    DATABASE_URL), or None when no demo is running (no file, an unreadable one, or one left
    by a demo that was killed)."""
    path = demo_connection_file()
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
        env = {name: str(data["env"][name]) for name in DEMO_VARIABLES}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return env if _alive(pid) else None


def use_running_demo() -> bool:
    """When none of the connection variables is set and a demo is running, point this
    process's environment at the demo (its Temporal server and its store). True if it did."""
    if any(os.environ.get(name) for name in DEMO_VARIABLES):
        return False
    env = demo_connection()
    if env is None:
        return False
    os.environ.update(env)
    # The demo's payload key (starter/demo.py makes one), unless keys are set already.
    keys = _demo_payload_keys_file()
    if keys and not (
        os.environ.get("CASE_PAYLOAD_KEYS") or os.environ.get("CASE_PAYLOAD_KEYS_FILE")
    ):
        os.environ["CASE_PAYLOAD_KEYS_FILE"] = keys
    return True


def _demo_payload_keys_file() -> str | None:
    try:
        value = json.loads(demo_connection_file().read_text()).get("payload_keys_file")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None
