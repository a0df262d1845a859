"""LiveCluster's side of the in-site backup target: the newest FINISHED base backup of each Cluster (a Job's
.partial one is never taken), Longhorn's backupstore, and one-line refusals naming the Cluster and the path."""
from __future__ import annotations

import pytest

from installer.backup.cluster import LiveCluster
from installer.core.errors import BackupError
from installer.deploy.inventory import load_inventory

INV = """all:
  vars:
    medai_cluster_name: site1
    medai_metallb_pool: 10.0.0.200-10.0.0.210
    medai_keycloak_hostname: sso.site.test
  children:
    servers:
      hosts:
        s0: {ansible_host: 10.0.0.10}
"""
DBS = [{"name": "keycloak", "namespace": "keycloak"}]


def test_newest_finished_backup_and_backupstore(tmp_path):
    (tmp_path / "site.yml").write_text(INV)
    inv = load_inventory(tmp_path / "site.yml")
    mount = tmp_path / "target"
    with pytest.raises(BackupError, match="--target-mount"):
        LiveCluster(inv, None, None, None, databases=DBS).postgres_backups()
    live = LiveCluster(inv, None, None, mount, databases=DBS)
    with pytest.raises(BackupError, match=r"postgresql keycloak-db: no finished base backup under .*keycloak/postgresql"):
        live.postgres_backups()
    d = mount / "keycloak" / "postgresql" / "keycloak-db"
    for name in ("20261205T023000Z", "20261206T023000Z", "20261207T023000Z.partial"):
        (d / name).mkdir(parents=True)
    assert live.postgres_backups() == {"keycloak-db": d / "20261206T023000Z"}
    assert live.longhorn_backupstore() is None
    (mount / "longhorn" / "backupstore").mkdir(parents=True)
    assert live.longhorn_backupstore() == mount / "longhorn" / "backupstore"
