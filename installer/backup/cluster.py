"""The one seam between a backup (or restore) and a live site: everything that reaches the cluster goes through a
``ClusterSource``. ``LiveCluster`` is the site's: etcd through playbooks/backup.yml on the first server (``k3s
etcd-snapshot save``, fetched), Vault through its API (hvac), PostgreSQL and Longhorn from the in-site backup
target the schedules write to, mounted read-only on the control host (``--target-mount``). Tests give recorded
answers through the same seam.
"""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import hvac

from installer.backup import vault
from installer.core.errors import BackupError
from installer.deploy.inventory import Inventory
from installer.deploy.runner import run_playbook
from installer.deploy.state import RunRecord
from installer.deploy.vault.client import endpoints, service_endpoint
from installer.deploy.vault.settings import vault_settings


class ClusterSource(Protocol):
    name: str  # what errors name: the host or cluster answering

    def etcd_snapshot(self, dest: Path) -> dict: ...

    def vault_snapshot(self, dest: Path) -> dict: ...

    def postgres_backups(self) -> dict[str, Path]: ...  # Cluster name -> its newest base backup directory

    def longhorn_backupstore(self) -> Path | None: ...

    def etcd_restore(self, snapshot: Path) -> dict: ...

    def vault_restore(self, snapshot: Path, force: bool) -> dict: ...


def newest(directory: Path) -> Path | None:
    """The newest finished entry (names sort by time; ``.partial`` ones are still being written)."""
    if not directory.is_dir():
        return None
    done = sorted(p for p in directory.iterdir() if not p.name.endswith(".partial") and not p.is_symlink())
    return done[-1] if done else None


class LiveCluster:
    def __init__(self, inv: Inventory, record: RunRecord, console, target_mount: Path | None = None,
                 vault_token: str = "", databases: list[dict] | None = None):
        self.inv, self.record, self.console = inv, record, console
        self.target, self.token, self.databases = target_mount, vault_token, databases or []
        self.name = inv.first_server.name

    def _playbook(self, tags: str, extravars: dict) -> None:
        summary = run_playbook(self.record, "backup.yml", self.inv.path, extravars, {}, console=self.console,
                               limit=self.inv.first_server.name, tags=tags,
                               host_key_checking=self.inv.site.medai_ssh_host_key_checking)
        if not summary.succeeded:
            raise BackupError(f"etcd on {self.name}: playbooks/backup.yml ({tags}) failed: {summary.first_failure}")

    def etcd_snapshot(self, dest: Path) -> dict:
        fetch = dest.parent / "etcd-fetch"
        fetch.mkdir(mode=0o700, exist_ok=True)
        self._playbook("save", {"medai_backup_fetch_dir": str(fetch)})
        got = newest(fetch)
        if got is None:
            raise BackupError(f"etcd on {self.name}: k3s etcd-snapshot save fetched nothing into {fetch}")
        shutil.move(got, dest)
        return {"host": self.name, "snapshot": got.name}

    def etcd_restore(self, snapshot: Path) -> dict:
        self._playbook("restore", {"medai_backup_restore_snapshot": str(snapshot)})
        return {"host": self.name, "restored": snapshot.name}

    @contextlib.contextmanager
    def _vault(self) -> Iterator[tuple[str, hvac.Client]]:
        """Vault's service address (or a port-forward to a member, open while the caller works)."""
        settings = vault_settings(self.inv)
        with endpoints(settings) as members:
            ep = service_endpoint(settings, members)
            yield f"{ep.name} ({ep.addr})", ep.client(self.token)

    def vault_snapshot(self, dest: Path) -> dict:
        with self._vault() as (where, client):
            vault.save(client, dest, where)
        return {"host": where}

    def vault_restore(self, snapshot: Path, force: bool) -> dict:
        with self._vault() as (where, client):
            vault.restore(client, snapshot, where, force)
        return {"host": where}

    def _mount(self) -> Path:
        if self.target is None:
            raise BackupError("--target-mount: the in-site backup target (medai_backup_nfs) must be mounted on this "
                              "host to collect PostgreSQL and Longhorn backups")
        return self.target

    def postgres_backups(self) -> dict[str, Path]:
        out = {}
        for db in self.databases:
            cluster = f"{db['name']}-db"
            found = newest(self._mount() / db["namespace"] / "postgresql" / cluster)
            if found is None:
                raise BackupError(f"postgresql {cluster}: no finished base backup under "
                                  f"{self._mount() / db['namespace'] / 'postgresql' / cluster}")
            out[cluster] = found
        return out

    def longhorn_backupstore(self) -> Path | None:
        store = self._mount() / "longhorn" / "backupstore"
        return store if store.is_dir() else None
