"""The backup seam's playbook step: a failed run of playbooks/backup.yml is one line naming the server, the tags
and the playbook's first failure (the one success test, installer.deploy.runner.Summary)."""
from __future__ import annotations

from pathlib import Path

import pytest

from installer.backup import cluster
from installer.core.errors import BackupError
from installer.deploy.inventory import load_inventory
from installer.deploy.runner import Summary

INVENTORY = Path(__file__).resolve().parents[2] / "inventories" / "example" / "site.yml"


def test_a_failed_backup_playbook_is_one_line_with_its_first_failure(monkeypatch):
    failed = Summary(hosts=1, failed=1, status="failed", rc=2, failures=["srv1: etcd snapshot save: no space left"])
    monkeypatch.setattr(cluster, "run_playbook", lambda *a, **kw: failed)
    live = cluster.LiveCluster(load_inventory(INVENTORY), record=None, console=None)
    with pytest.raises(BackupError, match=rf"^etcd on {live.name}: playbooks/backup.yml \(restore\) failed: "
                                          r"srv1: etcd snapshot save: no space left$"):
        live.etcd_restore(Path("/nonexistent/snapshot.db"))
