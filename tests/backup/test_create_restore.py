"""`backup create` and `backup restore` through the cluster seam with recorded answers (a real etcd snapshot,
a recorded Vault raft snapshot, a Longhorn backupstore directory), the real encryption, signing and media:
verify with an identity, restore, an interrupted create, and the refusals of another cluster's or an older set."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pyrage import x25519

from installer.backup import create as create_mod
from installer.backup import etcd, media
from installer.backup.crypto import load_identity
from installer.backup.restore import RestoreOptions, restore
from installer.core.errors import BackupError, BundleError
from tests.backup.conftest import fake_site_home
from tests.backup.test_etcd import ctl, etcd_server
from tests.support.archives import tgz

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(60)]


def recorded_vault_snapshot() -> bytes:
    """A raft snapshot as OpenBao's API answers it (gzip'd tar: meta.json, state.bin, SHA256SUMS)."""
    files = {"meta.json": b'{"Index": 42, "Term": 3}', "state.bin": b"\x00barrier-encrypted-state" * 64}
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items()).encode()
    return tgz(files)


@pytest.fixture(scope="module")
def etcd_snapshot(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("etcd")
    with etcd_server(d / "data") as (ep, _):
        ctl(ep, "put", "/registry/k", "v")
        return etcd.save(ep, d / "snap.db")


class Recorded:
    """The cluster seam answering from recordings; restores are recorded for the test to read."""

    name = "srv1"

    def __init__(self, snapshot: Path, store: Path, fail: str | None = None):
        self.snapshot, self.store, self.fail = snapshot, store, fail
        self.restored: dict[str, bytes] = {}

    def etcd_snapshot(self, dest: Path) -> dict:
        dest.write_bytes(self.snapshot.read_bytes())
        return {"host": self.name}

    def vault_snapshot(self, dest: Path) -> dict:
        if self.fail == "vault":
            raise BackupError("vault service (https://vault.site:8200): raft snapshot failed: connection refused")
        dest.write_bytes(recorded_vault_snapshot())
        return {"host": "https://vault.site:8200"}

    def postgres_backups(self) -> dict[str, Path]:
        return {}

    def longhorn_backupstore(self) -> Path | None:
        return self.store

    def etcd_restore(self, snapshot: Path) -> dict:
        self.restored["etcd"] = snapshot.read_bytes()
        return {"host": self.name}

    def vault_restore(self, snapshot: Path, force: bool) -> dict:
        self.restored["vault"] = snapshot.read_bytes()
        return {"host": "https://vault.site:8200", "force": force}


def _opts(tmp_path, site_key, operators, source, target, home, inv, components=("etcd", "vault", "longhorn", "site")):
    recips = [o.recipient for o in operators]
    return create_mod.CreateOptions(inventory=inv, cluster="site1", home=home, targets=[target], key=site_key,
                                    recipients=recips, parsed_recipients=[x25519.Recipient.from_str(r) for r in recips],
                                    source=source, components=components, parity=0)


@pytest.fixture
def site(tmp_path, etcd_snapshot):
    home, inv, made = fake_site_home(tmp_path, "site1")
    store = tmp_path / "target" / "longhorn" / "backupstore"
    (store / "volumes" / "ab" / "cd" / "pvc-1").mkdir(parents=True)
    (store / "volumes" / "ab" / "cd" / "pvc-1" / "volume.cfg").write_text('{"Name": "pvc-1"}')
    stick = tmp_path / "stick"
    stick.mkdir()
    return home, inv, Recorded(etcd_snapshot, store), stick


def test_create_verify_and_restore_through_the_seam(tmp_path, site_key, operators, site, etcd_snapshot):
    home, inv, source, stick = site
    out = create_mod.create(_opts(tmp_path, site_key, operators, source, stick, home, inv))
    assert set(out["components"]) == {"etcd", "vault", "longhorn", "site"} and not out["resumed"]
    assert not (home / "backups" / "site1" / "staging").exists()
    ident = load_identity(operators[0].file)
    res = media.verify([stick], site_key.public, ident)
    assert res.components["etcd"][0]["keys"] >= 1 and res.components["vault"][0]["index"] == 42

    base = dict(mounts=[stick], pub=site_key.public, identities=ident, cluster="site1", home=home, source=source)
    restore(RestoreOptions(component="etcd", **base))
    assert source.restored["etcd"] == etcd_snapshot.read_bytes()
    restore(RestoreOptions(component="vault", force=True, **base))
    assert source.restored["vault"] == recorded_vault_snapshot()
    got = restore(RestoreOptions(component="site", out=tmp_path / "restored", **base))
    state = Path(got["restored"][0]["siteState"])
    assert (state / "inventory" / "site.yml").read_text() == inv.read_text()
    assert (state / "secrets" / "site1" / "token").stat().st_mode & 0o077 == 0


def test_an_interrupted_create_leaves_no_set_and_the_rerun_starts_clean(tmp_path, site_key, operators, site):
    home, inv, source, stick = site
    source.fail = "vault"
    with pytest.raises(BackupError, match="vault service"):
        create_mod.create(_opts(tmp_path, site_key, operators, source, stick, home, inv))
    assert not (home / "backups" / "site1" / "staging" / "index.json").exists()
    assert not (stick / "medai-bundle" / "media.json").exists()
    source.fail = None
    out = create_mod.create(_opts(tmp_path, site_key, operators, source, stick, home, inv))
    assert not out["resumed"]
    media.verify([stick], site_key.public)


def test_restore_refuses_another_cluster_and_an_older_set_naming_both(tmp_path, site_key, operators, site):
    home, inv, source, stick = site
    first = create_mod.create(_opts(tmp_path, site_key, operators, source, stick, home, inv, ("site",)))
    ident = load_identity(operators[1].file)
    base = dict(mounts=[stick], pub=site_key.public, identities=ident, home=home, out=tmp_path / "o",
                component="site")
    with pytest.raises(BackupError, match=f"set {first['set']} is of cluster site1, the inventory's is other"):
        restore(RestoreOptions(cluster="other", **base))
    newer = {"id": "29991231T000000Z-ffffff", "created": "2999-12-31T00:00:00+00:00"}
    sets = home / "backups" / "site1" / "sets.json"
    sets.write_text(json.dumps([*json.loads(sets.read_text()), newer]))
    with pytest.raises(BackupError, match=f"set {first['set']} .* is older than set {newer['id']}"):
        restore(RestoreOptions(cluster="site1", **base))
    assert restore(RestoreOptions(cluster="site1", allow_older=True, **base))["set"] == first["set"]


def test_a_create_interrupted_while_writing_media_resumes_with_the_same_set(tmp_path, site_key, operators, site,
                                                                            monkeypatch):
    home, inv, source, stick = site
    with pytest.raises(BackupError, match="unplugged: not a directory"):
        create_mod.create(_opts(tmp_path, site_key, operators, source, tmp_path / "unplugged", home, inv, ("site",)))
    real = create_mod.set_media.write

    def pulled(staging, targets, *a, **kw):  # the stick pulled after the first parts: the write stops there
        real(staging, targets, *a, **kw)
        (targets[0] / "medai-bundle" / "media.json").unlink()
        raise BackupError(f"{targets[0]}: I/O error")

    monkeypatch.setattr(create_mod.set_media, "write", pulled)
    with pytest.raises(BackupError, match="I/O error"):
        create_mod.create(_opts(tmp_path, site_key, operators, source, stick, home, inv, ("site",)))
    with pytest.raises(BundleError, match=r"media\.json: missing"):
        media.verify([stick], site_key.public)  # no media.json: the half-written set never verifies
    monkeypatch.setattr(create_mod.set_media, "write", real)
    staged = json.loads((home / "backups" / "site1" / "staging" / "index.json").read_text())["backup"]["id"]
    out = create_mod.create(_opts(tmp_path, site_key, operators, source, stick, home, inv, ("site",)))
    assert out["resumed"] and out["set"] == staged
    assert media.verify([stick], site_key.public).set_id == staged
