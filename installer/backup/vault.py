"""Vault (OpenBao): a raft snapshot through the API, its own check, and a restore.

The snapshot holds Vault's whole storage, encrypted by Vault's barrier: it is useless without the unseal key
material, which it does not hold. A restore into a new cluster (``force``) makes that cluster take the
snapshot's keyring: it is then unsealed with the ORIGINAL cluster's shares, which stay with their operators
(never in the backup set in clear; the site state carries them only as the operators' OpenPGP files).
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import hvac
import requests

from installer.core.errors import BackupError

MAX_MEMBER = 64 * 1024 * 1024 * 1024


def save(client: hvac.Client, dest: Path, where: str) -> Path:
    """GET sys/storage/raft/snapshot, streamed into ``dest`` (0600)."""
    try:
        resp = client.sys.take_raft_snapshot()
        resp.raise_for_status()
        with open(dest, "xb") as f:
            dest.chmod(0o600)
            for chunk in resp.iter_content(1024 * 1024):
                f.write(chunk)
    except (hvac.exceptions.VaultError, requests.RequestException) as e:
        raise BackupError(f"vault {where}: raft snapshot failed: {str(e).splitlines()[0][:200]}") from None
    return dest


def check(path: Path, name: str) -> dict:
    """A raft snapshot is a gzip'd tar of meta.json, state.bin and SHA256SUMS: each listed digest must match."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            sums, digests, meta = None, {}, None
            for m in tar:
                if not m.isfile():
                    continue
                data = tar.extractfile(m)
                h = hashlib.sha256()
                buf = io.BytesIO() if m.name in ("SHA256SUMS", "meta.json") else None
                for chunk in iter(lambda d=data: d.read(1024 * 1024), b""):
                    h.update(chunk)
                    if buf is not None:
                        buf.write(chunk)
                digests[m.name] = h.hexdigest()
                if m.name == "SHA256SUMS":
                    sums = buf.getvalue().decode()
                elif m.name == "meta.json":
                    meta = json.loads(buf.getvalue())
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise BackupError(f"{name}: not a readable Vault raft snapshot ({e})", path=name) from None
    if sums is None or meta is None or "state.bin" not in digests:
        raise BackupError(f"{name}: a Vault raft snapshot holds meta.json, state.bin and SHA256SUMS", path=name)
    for line in sums.splitlines():
        want, _, member = line.partition("  ")
        if member and digests.get(member) != want:
            raise BackupError(f"{name}: {member} differs from the snapshot's SHA256SUMS: damaged", path=name)
    return {"check": "raft snapshot SHA256SUMS", "index": meta.get("Index"), "term": meta.get("Term")}


def restore(client: hvac.Client, path: Path, where: str, force: bool = False) -> None:
    """POST the snapshot (force: into another cluster, which then unseals with the original shares)."""
    try:
        with open(path, "rb") as f:
            if force:
                resp = client.sys.force_restore_raft_snapshot(f)
            else:
                resp = client.sys.restore_raft_snapshot(f)
        if isinstance(resp, requests.Response):
            resp.raise_for_status()
    except (hvac.exceptions.VaultError, requests.RequestException) as e:
        raise BackupError(f"vault {where}: restore of {path.name} failed: {str(e).splitlines()[0][:200]}") from None
