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
| TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE | unset | a Temporal configuration profile (below) |

TEMPORAL_PROFILE names a profile of Temporal's environment configuration (`temporalio.envconfig`:
a TOML file, TEMPORAL_CONFIG_FILE or the default one the `temporal` CLI reads) supplying
address, namespace, API key, TLS and gRPC metadata; the variables above win over it.

While `make demo` runs it writes its addresses to `var/demo/connection.json` (or
`$DEMO_DIR/connection.json`); the command line uses them when none of TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE and DATABASE_URL is set (see `demo_connection`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    EncodingPayloadConverter,
    PayloadCodec,
)
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime

from domain import compact_payload

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

    # From a Temporal environment configuration profile (`temporalio.envconfig`), when one
    # is named: its TLS (used when no TEMPORAL_TLS_* variable is set) and gRPC metadata.
    profile_tls: TLSConfig | bool | None = None
    rpc_metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls) -> TemporalSettings:
        """Settings from the variables above, over a Temporal environment configuration
        profile when TEMPORAL_PROFILE or TEMPORAL_CONFIG_FILE names one (`profile_settings`):
        a variable set here wins over the profile's value."""
        env = os.environ

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        profile = profile_settings(env)
        return cls(
            address=env.get("TEMPORAL_ADDRESS") or str(profile.get("target_host") or cls.address),
            namespace=env.get("TEMPORAL_NAMESPACE")
            or str(profile.get("namespace") or cls.namespace),
            task_queue=env.get("TEMPORAL_TASK_QUEUE", cls.task_queue),
            tls_cert=path("TEMPORAL_TLS_CERT"),
            tls_key=path("TEMPORAL_TLS_KEY"),
            tls_ca=path("TEMPORAL_TLS_CA"),
            api_key=env.get("TEMPORAL_API_KEY") or profile.get("api_key") or None,
            search_attributes=search_attributes_mode(env.get("TEMPORAL_SEARCH_ATTRIBUTES")),
            profile_tls=profile.get("tls"),
            rpc_metadata=tuple(sorted(dict(profile.get("rpc_metadata") or {}).items())),
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
        if self.profile_tls is not None:
            return self.profile_tls
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
        rpc_metadata=dict(settings.rpc_metadata),
    )


class CompactJsonPayloadConverter(EncodingPayloadConverter):
    """Reads `json/zlib` payloads: JSON compressed by the case workflow for its local
    activities' inputs (domain.compact_payload), decoded as the JSON converter decodes
    `json/plain`. It never writes one: a value is compressed only where the workflow says."""

    def __init__(self, json: EncodingPayloadConverter) -> None:
        self._json = json

    @property
    def encoding(self) -> str:
        return compact_payload.ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        return self._json.from_payload(compact_payload.inflate(payload), type_hint)


class CasePayloadConverter(CompositePayloadConverter):
    """pydantic's payload converter (`temporalio.contrib.pydantic`), with one set of type
    adapters for the whole process, and the reader of `json/zlib` payloads.

    The SDK makes a payload converter for every workflow run it caches, and pydantic's keeps
    a cache of type adapters of its own: each cached case built and kept its own adapters for
    its input, its activities' results and its queries (about 7 KiB and a few hundred
    microseconds a run, measured). These instances share the converters of one, so what goes
    on the wire is exactly pydantic's."""

    def __init__(self) -> None:
        super().__init__(*_SHARED.converters.values(), _COMPACT)


_SHARED = PydanticPayloadConverter()
_COMPACT = CompactJsonPayloadConverter(_SHARED.converters[compact_payload.JSON])


def reads_compact_payloads(client: Client) -> bool:
    """Whether `client`'s data converter reads the `json/zlib` payloads the case workflow
    sends its local activities (it does when it is `data_converter()`'s)."""
    text = "x" * compact_payload.MIN_SIZE
    probe = compact_payload.compact(
        Payload(metadata={"encoding": compact_payload.JSON}, data=json.dumps(text).encode())
    )
    try:
        return bool(client.data_converter.payload_converter.from_payloads([probe], [str]) == [text])
    except Exception:
        return False


# The data converter with no payload codec (`data_converter(None)`).
CASE_DATA_CONVERTER = DataConverter(payload_converter_class=CasePayloadConverter)


def data_converter(codec: PayloadCodec | Literal["env"] | None = "env") -> DataConverter:
    """The one data converter of the worker and the client: pydantic's (`CasePayloadConverter`),
    with the payload encryption codec of this process's keys (`starter.codec.codec_from_env`)
    or `codec`."""
    if codec == "env":
        from starter.codec import codec_from_env

        codec = codec_from_env()
    if codec is None:
        return CASE_DATA_CONVERTER
    return dataclasses.replace(CASE_DATA_CONVERTER, payload_codec=codec)


def profile_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The connection settings of a Temporal environment configuration profile
    (`temporalio.envconfig`: a TOML file of `[profile.NAME]` tables, as the `temporal` CLI
    reads), when TEMPORAL_PROFILE or TEMPORAL_CONFIG_FILE is set; else none (a developer's
    default profile file never redirects the product by surprise). Keys as for
    `Client.connect`: target_host, namespace, api_key, tls, rpc_metadata."""
    profile = env.get("TEMPORAL_PROFILE", "").strip() or None
    config_file = env.get("TEMPORAL_CONFIG_FILE", "").strip() or None
    if profile is None and config_file is None:
        return {}
    if config_file is not None and not Path(config_file).is_file():
        raise ValueError(f"TEMPORAL_CONFIG_FILE {config_file}: no such file")
    try:
        loaded = ClientConfig.load_client_connect_config(
            profile=profile, config_file=config_file, disable_env=True
        )
    except Exception as e:  # the SDK's ConfigError: a missing profile, bad TOML
        where = config_file or "the default Temporal configuration file"
        raise ValueError(f"Temporal profile {profile or 'default'} in {where}: {e}") from None
    return dict(loaded)


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
