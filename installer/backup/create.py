"""`medai backup create`: each component's backup through the cluster seam, checked by its own integrity check
BEFORE it is encrypted, then the signed set onto media.

    $MEDAI_HOME/backups/<cluster>/
      staging/        the set being made (0700); index.json written last, so a set without it is incomplete
      .plain-*/       one component's clear file at a time (0700, removed at once)
      sets.json       the sets written to media: id and created (restore's "older than what runs" reads it)

An interrupted run: a staging directory without index.json is removed and the run starts clean; one with it
(every component done, interrupted while writing media) is written again, and the media layer skips the parts
already read back. Media carry a set only once media.json, written last, is there.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pyrage import x25519

from installer.backup import archive, etcd, postgres, sitestate, vault
from installer.backup import media as set_media
from installer.backup.backupset import SetWriter, is_finished
from installer.backup.cluster import ClusterSource
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import BackupError
from installer.core.progress import Progress
from installer.deploy.state import installed_index
from installer.media import parity
from installer.trust.keys import SigningKey

COMPONENTS = ("etcd", "vault", "postgresql", "longhorn", "site")


def backups_dir(home: Path, cluster: str) -> Path:
    d = home / "backups" / cluster
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


@dataclass
class CreateOptions:
    inventory: Path
    cluster: str
    home: Path
    targets: list[Path]
    key: SigningKey
    recipients: list[str]
    parsed_recipients: list[x25519.Recipient]
    source: ClusterSource
    components: tuple[str, ...] = COMPONENTS
    max_file_size: int | None = None
    volume_size: int | None = None
    parity: float = parity.DEFAULT_PERCENT
    progress: Progress = field(default_factory=Progress)


def _etcd(src: ClusterSource, plain: Path, w: SetWriter) -> None:
    info = src.etcd_snapshot(plain / "snapshot.db")
    info.update(etcd.check(plain / "snapshot.db", f"etcd snapshot from {src.name}"))
    w.add("etcd", "etcd/snapshot.db", plain / "snapshot.db", info)


def _vault(src: ClusterSource, plain: Path, w: SetWriter) -> None:
    info = src.vault_snapshot(plain / "raft.snap")
    info.update(vault.check(plain / "raft.snap", f"vault snapshot from {info.get('host', src.name)}"))
    w.add("vault", "vault/raft.snap", plain / "raft.snap", info)


def _postgresql(src: ClusterSource, plain: Path, w: SetWriter) -> None:
    for cluster, backup_dir in sorted(src.postgres_backups().items()):
        info = postgres.check_dir(backup_dir, f"postgresql {cluster}: {backup_dir}")
        with archive.tar_stream(backup_dir, "pgdata") as tar:
            w.add_stream("postgresql", f"postgresql/{cluster}.tar", tar, {**info, "backup": backup_dir.name})


def _longhorn(src: ClusterSource, plain: Path, w: SetWriter) -> None:
    store = src.longhorn_backupstore()
    if store is None:
        raise BackupError(f"longhorn: no backupstore on the backup target ({src.name}): the RecurringJob has not run")
    with archive.tar_stream(store, "backupstore") as tar:
        w.add_stream("longhorn", "longhorn/backupstore.tar", tar)


def _collect(opts: CreateOptions, staging: Path) -> None:
    digest, run_id = installed_index(opts.inventory, opts.home)
    w = SetWriter.start(staging, opts.cluster, opts.recipients, opts.parsed_recipients,
                        bundle={"indexSha256": digest, "runId": run_id} if digest else None)
    steps = {"etcd": _etcd, "vault": _vault, "postgresql": _postgresql, "longhorn": _longhorn}
    for comp in opts.components:
        with opts.progress.task(f"backup {comp}", None), \
                tempfile.TemporaryDirectory(dir=staging.parent, prefix=".plain-") as tmp:
            plain = Path(tmp)
            if comp == "site":
                info = sitestate.collect(opts.home, opts.inventory, opts.cluster, plain / "state.tar")
                w.add("site", "site/state.tar", plain / "state.tar", info)
            else:
                steps[comp](opts.source, plain, w)
    w.finish(opts.key)


def create(opts: CreateOptions) -> dict:
    unknown = sorted(set(opts.components) - set(COMPONENTS))
    if unknown:
        raise BackupError(f"--component {unknown[0]}: not one of {', '.join(COMPONENTS)}")
    for t in opts.targets:
        if not t.is_dir():
            raise BackupError(f"{t}: not a directory (mount the stick and give its mount point): nothing collected")
    base = backups_dir(opts.home, opts.cluster)
    staging = base / "staging"
    resumed = is_finished(staging)
    if not resumed:
        _collect(opts, staging)
    index = json.loads((staging / "index.json").read_bytes())
    summary = set_media.write(staging, opts.targets, opts.key, opts.max_file_size, opts.volume_size, opts.parity,
                              opts.progress)
    rec = index["backup"]
    _remember(base, rec)
    shutil.rmtree(staging)
    return {"set": rec["id"], "cluster": rec["cluster"], "created": rec["created"], "resumed": resumed,
            "components": {k: v["files"] for k, v in rec["components"].items()},
            "bytes": sum(f["size"] for f in index["files"]), "media": summary.to_json()}


def _remember(base: Path, rec: dict) -> None:
    path = base / "sets.json"
    sets = json.loads(path.read_text()) if path.is_file() else []
    sets = [s for s in sets if s["id"] != rec["id"]] + [{"id": rec["id"], "created": rec["created"]}]
    atomic_write_bytes(path, (json.dumps(sets, indent=1) + "\n").encode(), 0o600)


def newest_made(home: Path, cluster: str) -> dict | None:
    path = home / "backups" / cluster / "sets.json"
    sets = json.loads(path.read_text()) if path.is_file() else []
    return max(sets, key=lambda s: s["created"]) if sets else None
