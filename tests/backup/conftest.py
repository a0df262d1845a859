"""Shared parts for the backup tests: a site key, operators' age identities, a staged and signed set."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from pyrage import x25519

from installer.backup import archive, sitestate
from installer.backup.backupset import SetWriter
from installer.trust.keys import SigningKey


def new_key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "test")


@pytest.fixture(scope="session")
def site_key() -> SigningKey:
    return new_key()


class Operator:
    def __init__(self, base: Path, name: str):
        self.identity = x25519.Identity.generate()
        self.recipient = str(self.identity.to_public())
        self.file = base / f"{name}.age-identity"
        fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# public key: {self.recipient}\n{self.identity}\n")


@pytest.fixture(scope="session")
def operators(tmp_path_factory) -> list[Operator]:
    base = tmp_path_factory.mktemp("age")
    return [Operator(base, n) for n in ("alice", "bob")]


def fake_site_home(base: Path, cluster: str) -> tuple[Path, Path, dict[str, str]]:
    """A state directory as medai leaves it (run record, K3s token, a Vault share file) and its inventory;
    returns the secrets it holds in clear on the control host."""
    home = base / "home"
    made = {"k3s token": secrets.token_hex(32), "vault share": "share-" + secrets.token_urlsafe(24)}
    (home / "runs" / "20261201T000000Z-install-abc123").mkdir(parents=True)
    (home / "runs" / "20261201T000000Z-install-abc123" / "run.json").write_text(
        '{"command": "install", "result": "successful", "bundleIndexSha256": "' + "ab" * 32 + '"}')
    (home / "secrets" / cluster).mkdir(parents=True)
    (home / "secrets" / cluster / "token").write_text(made["k3s token"] + "\n")
    (home / "vault" / cluster / "shares").mkdir(parents=True)
    (home / "vault" / cluster / "shares" / "alice.gpg").write_text(made["vault share"])
    inv = base / "site.yml"
    inv.write_text(yaml.safe_dump({"all": {"vars": {"medai_cluster_name": cluster}}}))
    return home, inv, made


def stage_set(base: Path, key: SigningKey, ops: list[Operator], cluster: str = "site1", payload: int = 300_000,
              set_id: str | None = None) -> tuple[Path, dict[str, str]]:
    """A finished, signed staging directory: the site state and a "longhorn" archive of ``payload`` bytes."""
    home, inv, made = fake_site_home(base, cluster)
    staging = base / "staging"
    recips = [o.recipient for o in ops]
    w = SetWriter.start(staging, cluster, recips, [x25519.Recipient.from_str(r) for r in recips], set_id=set_id)
    plain = base / "plain"
    plain.mkdir()
    sitestate.collect(home, inv, cluster, plain / "state.tar")
    w.add("site", "site/state.tar", plain / "state.tar")
    (base / "lh").mkdir()
    (base / "lh" / "blocks.bin").write_bytes(os.urandom(payload))
    archive.pack_dir(base / "lh", "backupstore", plain / "longhorn.tar")
    w.add("longhorn", "longhorn/backupstore.tar", plain / "longhorn.tar")
    w.finish(key)
    return staging, made
