"""A fault-injecting HTTP proxy in front of the test S3 server: 500/503 answers and stalls on demand."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

Match = Callable[[str, str], bool]  # (method, path) -> whether a fault applies


def any_request(method: str, path: str) -> bool:
    return True


@dataclass
class Fault:
    kind: str  # "status" (answer `status` without forwarding), "stall" (wait, then forward),
    # "stall_body" (forward, send half the body, wait, close)
    times: int  # how many matching requests it hits (-1: every one)
    status: int = 503
    seconds: float = 0.0
    match: Match = any_request


@dataclass
class FaultyS3:
    upstream: str
    url: str = ""
    faults: list[Fault] = field(default_factory=list)
    served: dict[str, int] = field(
        default_factory=lambda: {"forwarded": 0, "status": 0, "stall": 0, "stall_body": 0}
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, kind: str, times: int, **kwargs: object) -> None:
        with self.lock:
            self.faults.append(Fault(kind, times, **kwargs))  # type: ignore[arg-type]

    def heal(self) -> None:
        with self.lock:
            self.faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times != 0 and fault.match(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                    self.served[fault.kind] += 1
                    return fault
            self.served["forwarded"] += 1
            return None


def _handler(proxy: FaultyS3) -> type[BaseHTTPRequestHandler]:
    target = urlparse(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _proxy(self) -> None:
            body = self._body()
            fault = proxy.take(self.command, self.path)
            if fault is not None and fault.kind == "status":
                payload = (
                    f"<?xml version='1.0'?><Error><Code>{'SlowDown' if fault.status == 503 else 'InternalError'}"
                    f"</Code><Message>injected fault</Message></Error>"
                ).encode()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if fault is not None and fault.kind == "stall":
                time.sleep(fault.seconds)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")
            }
            headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                conn.request(
                    self.command,
                    self.path,
                    body=body if body or self.command in ("PUT", "POST") else None,
                    headers=headers,
                )
                response = conn.getresponse()
                data = response.read()
            finally:
                conn.close()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if fault is not None and fault.kind == "stall_body" and len(data) > 1:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                time.sleep(fault.seconds)
                self.close_connection = True
                return
            if self.command != "HEAD":
                self.wfile.write(data)

        def handle_one_request(self) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                super().handle_one_request()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy

    return Handler


@contextlib.contextmanager
def faulty_s3(upstream: str) -> Iterator[FaultyS3]:
    """A proxy on a free loopback port forwarding to `upstream` (the moto server), faults on demand."""
    proxy = FaultyS3(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
