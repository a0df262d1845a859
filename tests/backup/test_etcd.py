"""A real etcd (Debian's) on loopback: keys written, snapshot saved with etcdctl, checked with its own status
command and its appended digest, restored into a new data directory, started, the keys read back."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from installer.backup import etcd
from installer.core.errors import BackupError
from tests.support.servers import free_port

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(60)]
API = {"ETCDCTL_API": "3", "PATH": os.environ["PATH"]}


@contextmanager
def etcd_server(data: Path, name: str = "m1"):
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt: etcd-server etcd-client)")
    client, peer = free_port(), free_port()
    peer_url = f"http://127.0.0.1:{peer}"
    proc = subprocess.Popen(["etcd", "--name", name, "--data-dir", str(data),
                             "--listen-client-urls", f"http://127.0.0.1:{client}",
                             "--advertise-client-urls", f"http://127.0.0.1:{client}",
                             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                             "--initial-cluster", f"{name}={peer_url}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": os.environ["PATH"]})
    ep = f"127.0.0.1:{client}"
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["etcdctl", "--endpoints", ep, "endpoint", "health"], env=API,
                             capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "etcd did not start"
            time.sleep(0.1)
        yield ep, peer_url
    finally:
        proc.terminate()
        proc.wait(10)


def ctl(ep: str, *args: str) -> str:
    return subprocess.run(["etcdctl", "--endpoints", ep, *args], env=API, check=True, capture_output=True,
                          text=True).stdout


def test_snapshot_check_restore_and_read_back(tmp_path):
    keys = {f"/registry/secrets/ns/s{i}": f"value-{i}" for i in range(50)}
    with etcd_server(tmp_path / "data") as (ep, _):
        for k, v in keys.items():
            ctl(ep, "put", k, v)
        snap = etcd.save(ep, tmp_path / "snap.db")
    st = etcd.check(snap, "snap.db")
    assert st["keys"] >= len(keys) and st["check"] == "etcd snapshot status"

    restored = etcd.restore(snap, tmp_path / "restored", "m1", f"http://127.0.0.1:{free_port()}")
    with etcd_server(restored) as (ep, _):
        for k, v in keys.items():
            assert ctl(ep, "get", "--print-value-only", k).strip() == v


def test_a_flipped_byte_is_refused_by_the_snapshot_digest_naming_it(tmp_path):
    with etcd_server(tmp_path / "data") as (ep, _):
        ctl(ep, "put", "k", "v")
        snap = etcd.save(ep, tmp_path / "snap.db")
    data = bytearray(snap.read_bytes())
    data[5000] ^= 0xFF  # a free page: etcdctl snapshot status alone does not see it
    snap.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"snap\.db: the etcd snapshot's own sha256 does not match"):
        etcd.check(snap, "snap.db")
    with pytest.raises(BackupError, match="not empty"):
        etcd.restore(snap, tmp_path / "data", "m1", "http://127.0.0.1:1")
