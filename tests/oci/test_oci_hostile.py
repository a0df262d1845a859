"""A hostile registry on loopback. Every read is bounded, credentials stay with their host.

A tiny HTTP server (stdlib http.server, 127.0.0.1) plays a registry that sends more than it should.
"""
from __future__ import annotations

import base64
import hashlib
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from installer.core.errors import RegistryError
from installer.oci.refs import parse_ref
from installer.oci.registry import MAX_TOKEN_RESPONSE, RegistryClient, credentials_may_go_to

pytestmark = pytest.mark.loopback
BLOB = b"exactly the descriptor's bytes\n"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@contextmanager
def server(handler_fn):
    seen: list[dict] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append({"path": self.path, "auth": self.headers.get("Authorization", ""), "host": self.headers.get("Host")})
            code, headers, body = handler_fn(self.path, self.headers)
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_blob_longer_than_its_descriptor_is_refused_at_the_descriptor_size():
    with server(lambda p, h: (200, {}, BLOB + b"and then a gigabyte of attacker data" * 1000)) as (port, _):
        got = bytearray()
        with RegistryClient(retries=1) as c:
            with pytest.raises(
                RegistryError, match=rf"blob {DIGEST}: registry .* sent more than the descriptor's {len(BLOB)} bytes: refused"
            ):
                c.fetch_blob(parse_ref(f"127.0.0.1:{port}/demo/app:1"), DIGEST, got.extend, size=len(BLOB))
        assert len(got) <= len(BLOB)
    with server(lambda p, h: (200, {}, BLOB)) as (port, _):
        got = bytearray()
        with RegistryClient(retries=1) as c:
            assert c.fetch_blob(parse_ref(f"127.0.0.1:{port}/demo/app:1"), DIGEST, got.extend, size=len(BLOB)) == len(BLOB)
        assert bytes(got) == BLOB


def _challenging(realm: str):
    def handle(path, headers):
        if headers.get("Authorization", "").startswith("Bearer "):
            return 200, {"Content-Type": "application/octet-stream"}, BLOB
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'

    return handle


@pytest.mark.parametrize("realm_host", ["localhost", "127.0.0.1:OTHERPORT"])
def test_credentials_never_go_to_a_token_service_on_another_host(realm_host):
    with server(lambda p, h: (200, {"Content-Type": "application/json"}, b'{"token": "anon-token"}')) as (tport, tseen):
        realm = f"http://{realm_host.replace('OTHERPORT', str(tport))}{'' if 'OTHERPORT' in realm_host else ':' + str(tport)}/token"
        with server(_challenging(realm)) as (port, _):
            host = f"127.0.0.1:{port}"
            with RegistryClient(retries=1, credentials={host: ("site-user", "site-password-secret")}) as c:
                got = bytearray()
                c.fetch_blob(parse_ref(f"{host}/demo/app:1"), DIGEST, got.extend, size=len(BLOB))
        assert tseen and all(not r["auth"] for r in tseen), "basic credentials were sent to another host"
        assert "site-password-secret" not in repr(tseen)


def test_credentials_go_to_the_registrys_own_token_endpoint_on_loopback():
    token_seen = []

    def handle(path, headers):
        if path.startswith("/token"):
            token_seen.append(headers.get("Authorization", ""))
            return 200, {"Content-Type": "application/json"}, b'{"token": "t0k"}'
        return _challenging(f"http://127.0.0.1:{holder[0]}/token")(path, headers)

    holder = [0]
    with server(handle) as (port, _):
        holder[0] = port
        host = f"127.0.0.1:{port}"
        with RegistryClient(retries=1, credentials={host: ("u", "p")}) as c:
            c.fetch_blob(parse_ref(f"{host}/demo/app:1"), DIGEST, bytearray().extend, size=len(BLOB))
    assert token_seen == ["Basic " + base64.b64encode(b"u:p").decode()]


def test_plain_http_and_foreign_hosts_get_no_credentials():
    assert credentials_may_go_to("https://reg.example/token", "reg.example")
    assert credentials_may_go_to("http://127.0.0.1:5000/token", "127.0.0.1:5000")
    assert not credentials_may_go_to("http://reg.example/token", "reg.example")  # plain HTTP off loopback
    assert not credentials_may_go_to("https://evil.example/token", "reg.example")
    assert not credentials_may_go_to("https://reg.example:8443/token", "reg.example")
    assert not credentials_may_go_to("http://127.0.0.1:5001/token", "127.0.0.1:5000")


def test_oversized_token_response_and_error_body_are_bounded():
    big = b'{"token": "' + b"A" * (MAX_TOKEN_RESPONSE + 10) + b'"}'

    def handle(path, headers):
        if path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, big
        return _challenging(f"http://127.0.0.1:{holder[0]}/token")(path, headers)

    holder = [0]
    with server(handle) as (port, _):
        holder[0] = port
        with RegistryClient(retries=1) as c:
            with pytest.raises(RegistryError, match=rf"token service .* response larger than {MAX_TOKEN_RESPONSE} bytes: refused"):
                c.fetch_blob(parse_ref(f"127.0.0.1:{port}/demo/app:1"), DIGEST, bytearray().extend, size=len(BLOB))

    huge_error = b'{"errors":[{"code":"DENIED","message":"' + b"x" * (8 * 1024 * 1024) + b'"}]}'
    with server(lambda p, h: (403, {"Content-Type": "application/json"}, huge_error)) as (port, _):
        with RegistryClient(retries=1) as c:
            with pytest.raises(RegistryError) as e:
                c.fetch_blob(parse_ref(f"127.0.0.1:{port}/demo/app:1"), DIGEST, bytearray().extend, size=len(BLOB))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 1000


def test_basic_credentials_are_never_sent_over_plain_http_off_loopback():
    """A registry reached with --insecure (plain HTTP) under a non-loopback name asks for basic auth: refused.
    ("registry.test" resolves nowhere: the client's requests are re-addressed to the loopback server.)"""
    with server(lambda p, h: (401, {"WWW-Authenticate": 'Basic realm="x"'}, b"")) as (port, seen):
        ref = parse_ref(f"registry.test:{port}/demo/app:1")
        with RegistryClient(retries=1, insecure=[ref.registry], credentials={ref.registry: ("u", "secret-pw")}) as c:
            real_send = c._http.send

            def to_loopback(req, **kw):
                req.url = req.url.copy_with(host="127.0.0.1")
                return real_send(req, **kw)

            c._http.send = to_loopback
            with pytest.raises(RegistryError, match="basic credentials over plain HTTP: refused"):
                c.fetch_blob(ref, DIGEST, bytearray().extend, size=len(BLOB))
    assert seen and all(not r["auth"] for r in seen)
