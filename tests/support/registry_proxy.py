"""A loopback HTTP proxy in front of a real registry, for what Debian's docker-registry cannot do on its own:

- bearer-token auth as Docker Hub/ghcr/quay do it: 401 + ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``,
  a token endpoint (optionally demanding basic credentials), then requests forwarded with the token;
- acting as an HTTP proxy (HTTP_PROXY) for a registry name that never resolves, so proxy support is tested
  without traffic leaving loopback;
- throttled blob bodies (so a test can SIGKILL a download mid-blob), and a count of blob bytes served per
  (digest, Range) request.
"""
from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

PASS_HEADERS = ("content-type", "content-length", "docker-content-digest", "content-range", "accept-ranges", "etag")


@dataclass
class ProxyState:
    upstream: str  # http://127.0.0.1:PORT
    bearer: bool = False
    token: str = "medai-test-token-0123456789"
    token_user: tuple[str, str] | None = None  # basic credentials the token endpoint demands
    throttle_bps: int = 0  # 0 = full speed
    token_requests: list[dict] = field(default_factory=list)
    proxied_hosts: list[str] = field(default_factory=list)  # Host of each request received in proxy form
    blob_bytes: dict[tuple[str, str], int] = field(default_factory=dict)  # (digest, Range header or "") -> bytes sent
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def _handler(state: ProxyState, client: httpx.Client):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _token(self) -> None:
            q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            auth = self.headers.get("Authorization", "")
            with state.lock:
                state.token_requests.append({**q, "basic": auth.startswith("Basic ")})
            if state.token_user:
                want = "Basic " + base64.b64encode(f"{state.token_user[0]}:{state.token_user[1]}".encode()).decode()
                if auth != want:
                    return self._send(401, b'{"details":"bad credentials"}', {"Content-Type": "application/json"})
            self._send(200, f'{{"token": "{state.token}", "expires_in": 300}}'.encode(), {"Content-Type": "application/json"})

        def _forward(self) -> None:
            if self.path.startswith("http://"):  # asked as an HTTP proxy: absolute-form request target
                u = urlsplit(self.path)
                with state.lock:
                    state.proxied_hosts.append(u.netloc)
                self.path = u.path + (f"?{u.query}" if u.query else "")
            if self.path.startswith("/token"):
                return self._token()
            if state.bearer and self.headers.get("Authorization") != f"Bearer {state.token}":
                repo = self.path.split("/v2/", 1)[-1].rsplit("/", 2)[0] if "/v2/" in self.path else ""
                challenge = f'Bearer realm="http://{state.host}/token",service="medai-test"'
                if "/manifests/" in self.path or "/blobs/" in self.path:
                    challenge += f',scope="repository:{repo}:pull"'
                return self._send(
                    401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge, "Content-Type": "application/json"}
                )
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
            req = client.build_request(self.command, state.upstream + self.path, headers=headers)
            r = client.send(req, stream=True)
            try:
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() in PASS_HEADERS:
                        self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                is_blob = "/blobs/sha256:" in self.path
                key = (self.path.rsplit("/", 1)[-1], self.headers.get("Range", ""))
                for chunk in r.iter_raw(64 * 1024):
                    self.wfile.write(chunk)
                    if is_blob:
                        with state.lock:
                            state.blob_bytes[key] = state.blob_bytes.get(key, 0) + len(chunk)
                    if is_blob and state.throttle_bps:
                        time.sleep(len(chunk) / state.throttle_bps)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                r.close()

        do_GET = do_HEAD = _forward

    return Handler


@contextmanager
def run_registry_proxy(upstream_host: str, **kw) -> Iterator[ProxyState]:
    """Serve a proxy for the registry at ``upstream_host`` on a free loopback port (pull only)."""
    state = ProxyState(upstream=f"http://{upstream_host}", **kw)
    client = httpx.Client(timeout=60, trust_env=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, client))
    server.daemon_threads = True
    state.port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        client.close()
