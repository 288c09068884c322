"""Connection settings from Temporal's environment configuration profiles
(`temporalio.envconfig`) under the variables starter/connection.py lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from starter.connection import TemporalSettings, connect
from starter.devserver import DevServer

CONNECTION_VARIABLES = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS_CERT",
    "TEMPORAL_TLS_KEY",
    "TEMPORAL_TLS_CA",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _profiles(tmp_path: Path, address: str = "temporal.council.example:7233") -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(
        f"""
[profile.default]
address = "{address}"
namespace = "default"

[profile.cloud]
address = "housing.abc12.tmprl.cloud:7233"
namespace = "housing.abc12"
api_key = "cloud-key"

[profile.cloud.grpc_meta]
x-council = "exampleshire"
"""
    )
    return path


def test_a_profile_supplies_the_settings_and_variables_win(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(_profiles(tmp_path)))
    clean_env.setenv("TEMPORAL_PROFILE", "cloud")
    settings = TemporalSettings.from_env()
    assert (settings.address, settings.namespace, settings.api_key) == (
        "housing.abc12.tmprl.cloud:7233",
        "housing.abc12",
        "cloud-key",
    )
    assert settings.tls() is True  # an API key implies TLS
    assert settings.rpc_metadata == (("x-council", "exampleshire"),)

    clean_env.setenv("TEMPORAL_NAMESPACE", "housing-test")
    assert TemporalSettings.from_env().namespace == "housing-test"

    clean_env.delenv("TEMPORAL_PROFILE")
    assert TemporalSettings.from_env().address == "temporal.council.example:7233"


def test_no_profile_named_reads_no_file(clean_env: pytest.MonkeyPatch) -> None:
    assert TemporalSettings.from_env() == TemporalSettings()


def test_a_missing_profile_or_file_is_refused(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(_profiles(tmp_path)))
    clean_env.setenv("TEMPORAL_PROFILE", "nope")
    with pytest.raises(ValueError, match=r"Temporal profile nope in .*temporal\.toml"):
        TemporalSettings.from_env()
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match=r"missing\.toml: no such file"):
        TemporalSettings.from_env()


async def test_connect_through_a_profile(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, dev_server: DevServer
) -> None:
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(_profiles(tmp_path, dev_server.address)))
    client = await connect()
    assert client.namespace == "default"
    assert (
        await client.workflow_service.get_system_info(
            __import__("temporalio.api.workflowservice.v1", fromlist=["x"]).GetSystemInfoRequest()
        )
    ).server_version
