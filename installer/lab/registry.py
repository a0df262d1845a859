"""Debian's docker-registry on 127.0.0.1: the demo's image source, and the tests' registry.

Loopback only; optional htpasswd basic auth and TLS. Storage stays in workdir so reruns reuse it.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from installer.core.errors import LabError

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
HTPASSWD_BIN = shutil.which("htpasswd") or "/usr/bin/htpasswd"


@dataclass
class LoopbackRegistry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    proc: subprocess.Popen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    raise LabError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def loopback_registry(
    workdir: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> Iterator[LoopbackRegistry]:
    if not Path(REGISTRY_BIN).exists():
        raise LabError("docker-registry not installed (run .ci/setup-host.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    http: dict = {"addr": f"127.0.0.1:{port}", "secret": "medai-loopback"}
    if tls_cert and tls_key:
        http["tls"] = {"certificate": str(tls_cert), "key": str(tls_key)}
    config: dict = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": http,
    }
    if username:
        htpasswd = workdir / "htpasswd"
        subprocess.run([HTPASSWD_BIN, "-Bbc", str(htpasswd), username, password or ""], check=True, capture_output=True)
        config["auth"] = {"htpasswd": {"realm": "medai", "path": str(htpasswd)}}
    cfg = workdir / "config.yml"
    cfg.write_text(yaml.safe_dump(config))
    with open(workdir / "registry.log", "ab") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_port(port, proc=proc)
        except LabError:
            raise LabError(f"loopback registry did not start (see {workdir / 'registry.log'})") from None
        yield LoopbackRegistry(f"127.0.0.1:{port}", storage, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
