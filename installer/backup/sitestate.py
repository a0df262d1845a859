"""medai's own site state on the control host, as one tar: what a rebuilt control host needs.

    inventory/site.yml              the inventory the set was made with
    runs/<id>/run.json              every run record (who, when, which bundle index was installed)
    vault/<cluster>/...             Vault's init record and shares: each share OpenPGP-encrypted to its operator
    secrets/<cluster>/token         the K3s cluster token: a K3s etcd restore needs the original one

The tar itself is only ever written inside a private staging directory and encrypted before it reaches media.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

from installer.backup import archive
from installer.core.errors import BackupError


def _members(home: Path, inventory: Path, cluster: str) -> list[tuple[Path, str]]:
    out = [(inventory, "inventory/site.yml")]
    runs = home / "runs"
    if runs.is_dir():
        out += [(p, f"runs/{p.parent.name}/run.json") for p in sorted(runs.glob("*/run.json")) if not p.is_symlink()]
    for sub in (home / "vault" / cluster, home / "secrets" / cluster):
        if sub.is_dir():
            out += [(p, p.relative_to(home).as_posix()) for p in sorted(sub.rglob("*"))
                    if p.is_file() and not p.is_symlink()]
    return out


def collect(home: Path, inventory: Path, cluster: str, dest: Path) -> dict:
    members = _members(home, inventory, cluster)
    with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f, \
            tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, arc in members:
            tar.add(path, arcname=arc, recursive=False)
    return {"members": len(members)}


def check(path: Path, name: str) -> dict:
    members = archive.names(path, name)
    if "inventory/site.yml" not in members:
        raise BackupError(f"{name}: holds no inventory/site.yml: not a site-state archive", path=name)
    return {"check": "tar readable, inventory present", "members": len(members)}
