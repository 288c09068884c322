"""Dev servers started side by side: a port taken by another process between our choice and
the server's bind is chosen again (Web UI tests raced for ports in CI)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from starter import devserver
from starter.devserver import PortInUseError, start_dev_server


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_an_auto_ui_port_taken_first_is_chosen_again(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first UI port handed out is one another process already listens on.
    real = devserver.free_port
    grpc = real()
    handed = iter([taken_port])
    monkeypatch.setattr(devserver, "free_port", lambda: next(handed, None) or real())
    server = start_dev_server(workdir=tmp_path, port=grpc, ui_port="auto", persist=False)
    try:
        assert server.port == grpc
        assert server.ui_port is not None and server.ui_port != taken_port
    finally:
        server.stop()


def test_a_ui_port_given_and_taken_is_refused(tmp_path: Path, taken_port: int) -> None:
    with pytest.raises(PortInUseError) as info:
        start_dev_server(workdir=tmp_path, ui_port=taken_port, persist=False)
    assert info.value.port == taken_port
