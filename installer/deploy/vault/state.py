"""What medai keeps about a cluster's Vault on the control host: encrypted material only.

    $MEDAI_HOME/vault/<cluster>/
      init.json                  the whole init response as Vault gave it with pgp_keys (every share and the
                                 root token are OpenPGP-encrypted), written atomically before anything else
      shares/<operator>.gpg      that operator's share, binary OpenPGP message: `gpg -d FILE` prints the share
      root-token.gpg             the initial root token, encrypted to medai_vault_root_token_pgp_key (revoked
                                 after setup, kept as a record)
Files 0600, directories 0700. Nothing here is readable without an operator's private key.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from installer.core.atomic import atomic_write_bytes
from installer.core.errors import VaultError
from installer.core.resources import state_dir


def vault_dir(cluster: str, home: Path | None = None) -> Path:
    return (home or state_dir()) / "vault" / cluster


def _private(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_init_record(cluster: str, record: dict, home: Path | None = None) -> Path:
    d = _private(vault_dir(cluster, home))
    return atomic_write_bytes(d / "init.json", (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def read_init_record(cluster: str, home: Path | None = None) -> dict | None:
    p = vault_dir(cluster, home) / "init.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        raise VaultError(f"{p}: not valid JSON: restore it from the operators' copies") from None


def write_operator_files(cluster: str, record: dict, home: Path | None = None) -> list[Path]:
    """One file per operator, derived from init.json (so a rerun after a crash completes them)."""
    d = vault_dir(cluster, home)
    _private(d / "shares")
    out = []
    for op in record["operators"]:
        out.append(atomic_write_bytes(d / "shares" / f"{op['name']}.gpg", base64.b64decode(op["share_pgp_b64"]), 0o600))
    out.append(atomic_write_bytes(d / "root-token.gpg", base64.b64decode(record["root_token_pgp_b64"]), 0o600))
    return out
