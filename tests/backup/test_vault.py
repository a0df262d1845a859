"""The real OpenBao raft cluster on loopback (tests/vault's fixture): secrets and a PKI issuer written, a raft
snapshot taken through the API and checked, the node's data destroyed, a fresh cluster initialised on it (new
shares), the snapshot force-restored into it, unsealed with the ORIGINAL shares, everything read back."""
from __future__ import annotations

import shutil
import time

import hvac
import pytest
import requests

from installer.backup import vault
from installer.core.errors import BackupError
from tests.vault.conftest import bao_cluster  # noqa: F401  (the real 3-node OpenBao cluster fixture)

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(120)]


def _init(client: hvac.Client) -> tuple[list[str], str]:
    r = client.sys.initialize(secret_shares=3, secret_threshold=2)
    return r["keys"], r["root_token"]


def _unseal(client: hvac.Client, shares: list[str]) -> None:
    for s in shares:
        if not client.sys.read_seal_status()["sealed"]:
            break
        client.sys.submit_unseal_key(s)
    deadline = time.monotonic() + 60  # a loaded host: raft's election after an unseal takes seconds
    while requests.get(f"{client.url}/v1/sys/health", timeout=5).status_code != 200:  # 200: active, unsealed
        assert time.monotonic() < deadline, "vault did not become active"
        time.sleep(0.2)


def test_snapshot_destroy_restore_unseal_with_original_shares(bao_cluster, tmp_path):  # noqa: F811
    node = bao_cluster.nodes[2]  # the plain-HTTP member: no client TLS in the way of what is tested
    c = hvac.Client(url=node.addr)
    shares, root = _init(c)
    _unseal(c, shares[:2])
    c.token = root
    c.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    made = {f"app{i}": {"password": f"pw-{i}-{time.time_ns()}"} for i in range(5)}
    for path, data in made.items():
        c.secrets.kv.v2.create_or_update_secret(path, secret=data, mount_point="secret")
    c.sys.enable_secrets_engine("pki", path="pki")
    issuer = c.secrets.pki.generate_root("internal", "medai test root", mount_point="pki")["data"]["certificate"]

    snap = vault.save(c, tmp_path / "raft.snap", node.name)
    assert vault.check(snap, "raft.snap")["check"] == "raft snapshot SHA256SUMS"

    bao_cluster.stop(node)  # destroy: the node's whole raft store is gone
    shutil.rmtree(node.dir / "raft")
    (node.dir / "raft").mkdir()
    bao_cluster.start(node)
    fresh = hvac.Client(url=node.addr)
    new_shares, new_root = _init(fresh)
    _unseal(fresh, new_shares[:2])
    fresh.token = new_root
    vault.restore(fresh, snap, node.name, force=True)

    bao_cluster.stop(node)  # the restored cluster's next start needs the snapshot's keyring: the original shares
    bao_cluster.start(node)
    back = hvac.Client(url=node.addr)
    assert back.sys.is_sealed()
    with pytest.raises(hvac.exceptions.VaultError):
        for s in new_shares[:2]:  # the fresh cluster's own shares no longer open it
            back.sys.submit_unseal_key(s)
    assert back.sys.is_sealed()
    back.sys.submit_unseal_key(reset=True)
    _unseal(back, [shares[2], shares[0]])  # two of the ORIGINAL operators' shares
    back.token = root
    for path, data in made.items():
        assert back.secrets.kv.v2.read_secret_version(path, mount_point="secret",
                                                      raise_on_deleted_version=True)["data"]["data"] == data
    assert back.secrets.pki.read_ca_certificate(mount_point="pki").strip() in issuer


def test_a_damaged_snapshot_is_refused_naming_it(tmp_path):
    import gzip
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"meta.json": b'{"Index": 1}', "state.bin": b"state",
                           "SHA256SUMS": b"0" * 64 + b"  state.bin\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "raft.snap").write_bytes(gzip.compress(buf.getvalue()))
    with pytest.raises(BackupError, match=r"raft\.snap: state\.bin differs from the snapshot's SHA256SUMS"):
        vault.check(tmp_path / "raft.snap", "raft.snap")
    (tmp_path / "raft.snap").write_bytes(b"not a snapshot")
    with pytest.raises(BackupError, match=r"raft\.snap: not a readable Vault raft snapshot"):
        vault.check(tmp_path / "raft.snap", "raft.snap")
