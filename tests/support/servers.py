"""Real servers on 127.0.0.1 for tests: Debian's docker-registry (anonymous or htpasswd) and an HTTP file
server that honours Range requests (so resumed downloads are exercised for real)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import yaml

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
HTPASSWD_BIN = shutil.which("htpasswd") or "/usr/bin/htpasswd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    root: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@contextmanager
def run_registry(workdir: Path, username: str | None = None, password: str | None = None) -> Iterator[Registry]:
    """Debian's docker-registry (distribution 2.8) on loopback, storage in workdir."""
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config: dict = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "medai-test"},
    }
    if username:
        htpasswd = workdir / "htpasswd"
        subprocess.run([HTPASSWD_BIN, "-Bbc", str(htpasswd), username, password], check=True, capture_output=True)
        config["auth"] = {"htpasswd": {"realm": "medai-test", "path": str(htpasswd)}}
    cfg = workdir / "config.yml"
    cfg.write_text(yaml.safe_dump(config))
    log = open(workdir / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield Registry(f"127.0.0.1:{port}", storage, username, password)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class _RangeHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single-range 'Range: bytes=N-' / 'bytes=N-M' support."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not rng or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        try:
            start_s, _, end_s = rng.removeprefix("bytes=").partition("-")
            start = int(start_s)
            end = int(end_s) if end_s else size - 1
        except ValueError:
            self.send_error(400, "bad range")
            return None
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        end = min(end, size - 1)
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        while remaining > 0:
            chunk = source.read(min(65536, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)
        self._remaining = None


@dataclass
class FileServer:
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def run_file_server(root: Path) -> Iterator[FileServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(root)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield FileServer(root, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
