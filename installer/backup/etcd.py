"""etcd (K3s's datastore): a snapshot, its own integrity check, and a restore into a new data directory.

On a site the snapshot is ``k3s etcd-snapshot save`` on one server (playbooks/backup.yml); K3s writes the
snapshot etcdctl writes: the bolt database with its sha256 appended. ``check`` verifies both what
``etcdctl snapshot status`` reads and that appended digest (which ``snapshot restore`` also checks: a flipped
byte in a free page passes ``status`` but not this).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from installer.backup.tools import run
from installer.core.errors import BackupError
from installer.core.hashing import CHUNK

API = {"ETCDCTL_API": "3"}


def save(endpoint: str, dest: Path) -> Path:
    run(["etcdctl", "--endpoints", endpoint, "snapshot", "save", str(dest)], f"etcd {endpoint}", API)
    return dest


def _appended_digest_ok(path: Path) -> bool:
    size = path.stat().st_size
    if size % 512 != 32:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size - 32
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return False
            h.update(chunk)
            left -= len(chunk)
        return h.digest() == f.read(32)


def check(path: Path, name: str) -> dict:
    """The snapshot's appended sha256 and ``etcdctl snapshot status``; a damaged one is refused naming ``name``."""
    if not _appended_digest_ok(path):
        raise BackupError(f"{name}: the etcd snapshot's own sha256 does not match its content: damaged", path=name)
    out = run(["etcdctl", "--write-out=json", "snapshot", "status", str(path)], name, API).stdout
    try:
        st = json.loads(out)
    except ValueError:
        raise BackupError(f"{name}: etcdctl snapshot status printed no JSON", path=name) from None
    return {"check": "etcd snapshot status", "revision": st["revision"], "keys": st["totalKey"], "hash": st["hash"]}


def restore(path: Path, data_dir: Path, member: str, peer_url: str) -> Path:
    """``etcdctl snapshot restore`` into a new data directory (a K3s server restores with --cluster-reset)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir}: not empty: etcd restores only into a new data directory", path=str(data_dir))
    run(["etcdctl", "snapshot", "restore", str(path), "--data-dir", str(data_dir), "--name", member,
         "--initial-cluster", f"{member}={peer_url}", "--initial-advertise-peer-urls", peer_url],
        f"etcd restore of {path}", API)
    os.chmod(data_dir, 0o700)
    return data_dir
