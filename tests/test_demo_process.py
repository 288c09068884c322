"""`make demo` as a process: it refuses ports already taken (naming them and the variables
that move it), it stops everything it started on SIGTERM and SIGHUP as on Ctrl-C, its dev
server and worker die with it even when it is killed outright, and while it runs the command
line reaches it with no variables set. Runs the real demo on free ports in a temporary
DEMO_DIR (about 15 s per start)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from starter.connection import demo_connection, use_running_demo
from starter.demo import _on_signal, stop_reason
from starter.devserver import free_port

REPO = Path(__file__).resolve().parent.parent
CONNECTION_VARIABLES = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE")


def demo_env(workdir: Path, port: int, ui_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TEMPORAL_") and k not in ("DATABASE_URL", "DEMO_DIR")
    }
    env.update(DEMO_DIR=str(workdir), DEMO_TEMPORAL_PORT=str(port), DEMO_UI_PORT=str(ui_port))
    return env


def start_demo(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "starter", "demo", "--cases", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def gone(pid: int) -> bool:
    """No such process, or a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_for(probe: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout}s")


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("which", ["temporal", "ui"])
def test_the_demo_refuses_a_port_that_is_taken(tmp_path: Path, listener: int, which: str) -> None:
    ports = (listener, free_port()) if which == "temporal" else (free_port(), listener)
    demo = start_demo(demo_env(tmp_path, *ports))
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 1, (out, err)
    message = " ".join(err.split())
    variable = "DEMO_TEMPORAL_PORT" if which == "temporal" else "DEMO_UI_PORT"
    assert f"port {listener}" in message and "already in use" in message, message
    assert variable in message, message
    assert "Traceback" not in err and not (tmp_path / "connection.json").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_the_demo_leaves_no_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    env = demo_env(tmp_path, free_port(), free_port())
    demo = start_demo(env)
    connection = tmp_path / "connection.json"
    try:
        wait_for(connection.exists, "the demo writes connection.json", 90)
        data = json.loads(connection.read_text())
        children = [int(pid) for pid in data["children"].values()]
        assert data["pid"] == demo.pid and len(children) == 3  # dev server, worker, API
        assert not any(gone(pid) for pid in children)

        # The command line, with no variables set, reaches the demo's server and store.
        for name in (*CONNECTION_VARIABLES, "DATABASE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DEMO_DIR", str(tmp_path))
        assert demo_connection() == data["env"]
        listed = subprocess.run(
            [sys.executable, "-m", "starter", "list", "--json"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert isinstance(json.loads(listed.stdout), list)
        inbox = subprocess.run(
            [sys.executable, "-m", "starter", "inbox", "tl1", "--json"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert inbox.returncode == 0, inbox.stderr  # the demo's store has its configuration

        demo.send_signal(sig)
        out, err = demo.communicate(timeout=60)
        if sig != signal.SIGKILL:
            assert demo.returncode == 0, (out, err)
            assert "worker and dev server stopped" in out, out
            assert not connection.exists()
        wait_for(lambda: all(gone(pid) for pid in children), "the children end", 40)
        # A file left by a killed demo is not taken for a running one.
        assert demo_connection() is None and use_running_demo() is False
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


@pytest.mark.slow
def test_the_demo_delivers_alerts_by_mail_and_webhook_once_and_serves_the_officer_page(
    tmp_path: Path,
) -> None:
    """Issue 11: the demo's first ambers (about a minute in) arrive in its mail folder and
    at its webhook receiver, each alert once; the officer page answers."""
    import email
    import email.policy

    env = demo_env(tmp_path, free_port(), free_port())
    env["DEMO_API_PORT"] = str(free_port())
    demo = start_demo(env)
    connection = tmp_path / "connection.json"
    try:
        wait_for(connection.exists, "the demo writes connection.json", 90)
        data = json.loads(connection.read_text())
        assert data["mail"] == str(tmp_path / "mail")
        page = wait_for(
            lambda: _get(data["officer_page"] + "/login"), "the officer page answers", 30
        )
        assert "Sign in" in page
        mail, hooks = Path(data["mail"]), Path(data["webhook"])
        wait_for(lambda: list(mail.glob("*.eml")), "a mail arrives", 150)
        wait_for(lambda: list(hooks.glob("*.json")), "a webhook call arrives", 30)
        time.sleep(3)  # let a second round (a duplicate, if any) land
        messages = [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(mail.glob("*.eml"))
        ]
        ids = [str(m["Message-ID"]).strip() for m in messages]
        assert len(ids) == len(set(ids)), ids
        assert all(m["Subject"] and "/officer/cases/DEMO-" in m.get_content() for m in messages)
        keys = [json.loads(p.read_text())["idempotency_key"] for p in hooks.glob("*.json")]
        assert len(keys) == len(set(keys)), keys
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.communicate(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()


def _get(url: str) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def test_the_demo_says_what_stopped_it() -> None:
    assert stop_reason(KeyboardInterrupt()) == "Ctrl-C"
    with pytest.raises(KeyboardInterrupt) as caught:
        _on_signal(signal.SIGTERM, None)
    assert stop_reason(caught.value) == "SIGTERM"
