"""The codec server: decodes (and encodes) payloads for the Temporal Web UI and the `temporal`
CLI (`--codec-endpoint`), so operators who can reach it read cases' inputs and results while
Temporal itself stores only ciphertext. Temporal's remote codec protocol: `POST /decode` and
`POST /encode` with `{"payloads": [...]}` (Payloads as protobuf JSON) answer the same shape.

    python -m starter codec-server --port 8888 --allow-origin http://localhost:8080

- Keys come from the environment as for the worker (starter/codec.py).
- CORS: the browser calls it from the Web UI's origin; only the origins allowed
  (`--allow-origin`, or CODEC_SERVER_ALLOWED_ORIGINS, comma-separated) get CORS headers.
- With CODEC_SERVER_TOKEN set, `/encode` and `/decode` require
  `Authorization: Bearer <token>` (compared in constant time); preflights need none.
- Anyone who can call `/decode` can read applicants' data: bind it where only operators
  reach it (it binds 127.0.0.1 unless told otherwise) and put TLS in front of it.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from starter.codec import EncryptionCodec, PayloadKeyError

MAX_BODY = 16 * 1024 * 1024  # bytes: a request larger than this is refused
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"


def allowed_origins_from_env() -> list[str]:
    value = os.environ.get("CODEC_SERVER_ALLOWED_ORIGINS", "")
    return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]


class CodecServer:
    """The codec server on a thread of its own (`start`/`stop`), or in the foreground
    (`serve_forever`)."""

    def __init__(
        self,
        codec: EncryptionCodec,
        *,
        host: str = "127.0.0.1",
        port: int = 8888,
        allowed_origins: Sequence[str] = (),
        token: str | None = None,
    ) -> None:
        origins = {o.rstrip("/") for o in allowed_origins}
        # Requests answered, by operation ("/encode", "/decode"): counts only, no content.
        self.calls: Counter[str] = Counter()
        calls = self.calls
        calls_lock = threading.Lock()
        transforms: dict[str, Callable[[Any], Any]] = {
            "/encode": codec.encrypt,
            "/decode": codec.decrypt,
        }

        class Handler(BaseHTTPRequestHandler):
            def _cors(self) -> None:
                origin = (self.headers.get("Origin") or "").rstrip("/")
                if origin and origin in origins:
                    self.send_header("Access-Control-Allow-Origin", origin)
                    self.send_header("Access-Control-Allow-Credentials", "true")
                    self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                    self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
                    self.send_header("Vary", "Origin")

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self._cors()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_OPTIONS(self) -> None:
                self.send_response(204)
                self._cors()
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                # The UI and the CLI may put the namespace before the operation.
                operation = "/" + path.rsplit("/", 1)[-1]
                transform = transforms.get(operation)
                if transform is None:
                    self._reply(404, {"error": "POST /encode or /decode"})
                    return
                if token is not None:
                    given = self.headers.get("Authorization", "")
                    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                        self._reply(401, {"error": "a valid bearer token is required"})
                        return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY:
                    self._reply(413 if length > MAX_BODY else 400, {"error": "bad length"})
                    return
                try:
                    payloads = json_format.Parse(self.rfile.read(length), Payloads())
                except (json_format.ParseError, UnicodeDecodeError):
                    self._reply(400, {"error": 'the body is not {"payloads": [...]}'})
                    return
                try:
                    answer = Payloads(payloads=[transform(p) for p in payloads.payloads])
                except PayloadKeyError as e:
                    self._reply(422, {"error": str(e)})
                    return
                with calls_lock:
                    calls[operation] += 1
                self._reply(200, json_format.MessageToDict(answer))

            def log_message(self, format: str, *args: Any) -> None:
                pass  # never log requests: their bodies are applicants' data

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> CodecServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="codec-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
