"""Local receivers for the alert channels, for the demo and the tests: an SMTP server
(aiosmtpd) and a webhook receiver (the standard library's HTTP server), each on 127.0.0.1,
keeping what they receive in memory and, given a folder, writing each message to a file.

Both can be told to refuse their next N messages (SMTP 451, HTTP 503), to show a delivery
that fails and then recovers.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MailCatcher:
    """An SMTP server on 127.0.0.1:`port` (0: a free port) that accepts every message."""

    def __init__(self, folder: Path | None = None, port: int = 0) -> None:
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.refuse_next = 0
        self.delay_seconds = 0.0
        # Set while a client is between RCPT and its reply (held for `rcpt_delay_seconds`).
        self.in_rcpt = threading.Event()
        self.rcpt_delay_seconds = 0.0
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=port or _free_port())

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> MailCatcher:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        import asyncio

        if self.rcpt_delay_seconds:
            self.in_rcpt.set()
            await asyncio.sleep(self.rcpt_delay_seconds)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        with self._lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(message)
            count = len(self.messages)
        if self.folder is not None:
            (self.folder / f"{count:05d}.eml").write_bytes(envelope.content)
        return "250 OK"


@dataclass
class WebhookCall:
    headers: dict[str, str]
    body: bytes
    signature_valid: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookCatcher:
    """An HTTP server on 127.0.0.1 that takes POSTed alerts, checks each one's signature
    (HMAC-SHA256 of `<X-Casework-Timestamp>.<body>` under `secret`), answers 401 to a bad
    one and 200 to a good one, and keeps the good ones (`calls`)."""

    secret: bytes
    folder: Path | None = None
    calls: list[WebhookCall] = field(default_factory=list)
    rejected: list[WebhookCall] = field(default_factory=list)
    refuse_next: int = 0

    def start(self) -> WebhookCatcher:
        catcher = self
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                call = WebhookCall(dict(self.headers), body, catcher.valid(self.headers, body))
                status = catcher.take(call)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def valid(self, headers: Any, body: bytes) -> bool:
        timestamp = headers.get("X-Casework-Timestamp", "")
        signature = headers.get("X-Casework-Signature", "")
        expected = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256)
        try:
            fresh = abs(time.time() - int(timestamp)) < 300
        except ValueError:
            return False
        return fresh and hmac.compare_digest("sha256=" + expected.hexdigest(), signature)

    def take(self, call: WebhookCall) -> int:
        if not call.signature_valid:
            self.rejected.append(call)
            return 401
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return 503
        self.calls.append(call)
        if self.folder is not None:
            (self.folder / f"{len(self.calls):05d}.json").write_bytes(call.body)
        return 200

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
