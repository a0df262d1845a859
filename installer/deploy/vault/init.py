"""Initialise Vault once: shares split among the named operators, each encrypted to their OpenPGP key.

The init response is the only moment the encrypted shares exist anywhere; it is written to init.json
(atomic, fsynced, 0600) before anything else happens, so a crash right after the call loses nothing. A rerun
on an initialised Vault never calls init again; it finishes the per-operator files from init.json.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from installer.core.errors import VaultError
from installer.deploy.vault import state
from installer.deploy.vault.client import Endpoint, vault_call
from installer.deploy.vault.pgp import fingerprint, read_public_key
from installer.deploy.vault.settings import VaultSettings

# Test hook: SIGKILL the process right after init.json is written (proves the shares survive a crash).
KILL_AFTER_INIT_ENV = "MEDAI_VAULT_TEST_KILL_AFTER_INIT"


@dataclass
class InitResult:
    initialized_now: bool
    record: dict
    files: list[Path]


def _fingerprint(b64key: str) -> str:
    return "openpgp4fpr:" + fingerprint(b64key)


def initialize(s: VaultSettings, ep: Endpoint, home: Path | None = None) -> InitResult:
    client = ep.client()
    with vault_call(ep, "read init status"):
        initialized = client.sys.is_initialized()
    record = state.read_init_record(s.cluster, home)
    if initialized:
        if record is None:
            raise VaultError(
                f"vault {ep.name} ({ep.addr}) is already initialised but {state.vault_dir(s.cluster, home)}/init.json "
                f"is missing: medai will not re-init; restore init.json or the operators' share files")
        return InitResult(False, record, state.write_operator_files(s.cluster, record, home))
    if record is not None:
        raise VaultError(
            f"{state.vault_dir(s.cluster, home)}/init.json exists but vault {ep.name} ({ep.addr}) is not initialised: "
            f"this is a different (new) Vault; move the old directory away before initialising it")

    keys = [read_public_key(s.pgp_key_path(op)) for op in s.operators]
    root_key = read_public_key(s.root_token_pgp_key)
    with vault_call(ep, "init"):
        if s.transit:
            # Auto-unseal: Vault holds no unseal shares; the operators hold recovery shares instead
            # (generate-root and rekey take them), split and encrypted the same way.
            resp = client.sys.initialize(recovery_shares=len(keys), recovery_threshold=s.threshold,
                                         recovery_pgp_keys=keys, root_token_pgp_key=root_key)
        else:
            resp = client.sys.initialize(secret_shares=len(keys), secret_threshold=s.threshold,
                                         pgp_keys=keys, root_token_pgp_key=root_key)
    encrypted = resp.get("recovery_keys_base64" if s.transit else "keys_base64") or []
    if len(encrypted) != len(keys) or not resp.get("root_token"):
        raise VaultError(f"vault {ep.name} ({ep.addr}): init answered with {len(encrypted)} shares for {len(keys)} operators")
    record = {
        "cluster": s.cluster,
        "initialized": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "vault": ep.addr,
        "threshold": s.threshold,
        "shares": len(keys),
        "kind": "recovery" if s.transit else "unseal",
        # Vault returns the shares in the order of pgp_keys.
        "operators": [{"name": op.name, "pgp_key": _fingerprint(k), "share_pgp_b64": enc}
                      for op, k, enc in zip(s.operators, keys, encrypted)],
        "root_token_pgp_key": _fingerprint(root_key),
        "root_token_pgp_b64": resp["root_token"],
    }
    state.write_init_record(s.cluster, record, home)
    if os.environ.get(KILL_AFTER_INIT_ENV) == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return InitResult(True, record, state.write_operator_files(s.cluster, record, home))
