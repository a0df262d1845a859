"""Credentials stay with their registry: a blob redirect or an upload Location naming another
host (here: another loopback port, a different origin) gets no Authorization header. A second loopback server
records every header it receives."""
from __future__ import annotations

import base64
import hashlib
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient

pytestmark = pytest.mark.loopback
BLOB = b"blob bytes that travel\n"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
USER, PASSWORD = "medai", "registry-secret-pass"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@contextmanager
def server(route):
    """route(method, path, headers, body) -> (status, headers, body); every request is recorded."""
    seen: list[dict] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization", "")})
            code, headers, out = route(self.command, self.path, self.headers, body)
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        do_GET = do_HEAD = do_POST = do_PUT = _any

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1], seen
    finally:
        srv.shutdown()
        srv.server_close()


def other_host():
    return server(lambda m, p, h, b: (201 if m == "PUT" else 200, {}, BLOB if m == "GET" else b""))


def registry(other_port: int):
    """Basic auth (a 401 challenge first); blobs redirect to the other server, uploads are sent there."""
    def route(method, path, headers, body):
        if headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="r"'}, b""
        if method == "HEAD":
            return 404, {}, b""
        if method == "POST":
            return 202, {"Location": f"http://127.0.0.1:{other_port}/upload/123"}, b""
        if method == "GET" and "/blobs/" in path:
            return 307, {"Location": f"http://127.0.0.1:{other_port}/storage/blob"}, b""
        return 404, {}, b""
    return server(route)


def test_upload_location_on_another_host_gets_no_credentials(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(BLOB)
    with other_host() as (oport, other_seen), registry(oport) as (rport, reg_seen):
        ref = parse_ref(f"127.0.0.1:{rport}/demo/app:1")
        with RegistryClient(retries=1, credentials={f"127.0.0.1:{rport}": (USER, PASSWORD)}) as c:
            assert c.push_blob(ref, DIGEST, len(BLOB), blob)
    assert any(r["auth"] == BASIC for r in reg_seen), "the registry itself gets the credentials"
    assert [r["method"] for r in other_seen] == ["PUT"]
    assert all(r["auth"] == "" for r in other_seen), f"credentials sent to another host: {other_seen}"


def test_blob_redirect_to_another_host_gets_no_credentials(tmp_path):
    with other_host() as (oport, other_seen), registry(oport) as (rport, reg_seen):
        ref = parse_ref(f"127.0.0.1:{rport}/demo/app:1")
        with RegistryClient(retries=1, credentials={f"127.0.0.1:{rport}": (USER, PASSWORD)}) as c:
            got = bytearray()
            c.fetch_blob(ref, DIGEST, got.extend, size=len(BLOB))
    assert bytes(got) == BLOB
    assert any(r["auth"] == BASIC for r in reg_seen)
    assert other_seen and all(r["auth"] == "" for r in other_seen), f"credentials followed the redirect: {other_seen}"
