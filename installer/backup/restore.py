"""`medai backup restore`: one component of a verified set, decrypted with an operator's identity and checked
by its own check, then put back: Vault and etcd through the cluster seam, PostgreSQL, Longhorn's backupstore
and the site state unpacked into a new directory (the runbook in docs/backup.md takes them from there).

A set from another cluster, or older than the newest set medai made of this cluster, is refused naming both,
unless the operator says so (``allow_other_cluster``, ``allow_older``).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from installer.backup import archive, postgres
from installer.backup import media as set_media
from installer.backup.cluster import ClusterSource
from installer.backup.create import COMPONENTS, newest_made
from installer.backup.crypto import decrypt_stream
from installer.core.errors import BackupError
from installer.media.manifest import volume_root
from installer.media.reader import MediaSource


@dataclass
class RestoreOptions:
    mounts: list[Path]
    pub: object
    identities: list[x25519.Identity]
    component: str
    cluster: str  # the inventory's medai_cluster_name
    home: Path
    out: Path | None = None  # where PostgreSQL, Longhorn and the site state are unpacked (a new directory)
    source: ClusterSource | None = None  # Vault and etcd are restored through it
    force: bool = False  # Vault: into another cluster (snapshot-force)
    allow_other_cluster: bool = False
    allow_older: bool = False


def check_target(rec: dict, opts: RestoreOptions) -> None:
    if rec["cluster"] != opts.cluster and not opts.allow_other_cluster:
        raise BackupError(f"set {rec['id']} is of cluster {rec['cluster']}, the inventory's is {opts.cluster}: refused "
                          "(--allow-other-cluster to restore it anyway)")
    newest = newest_made(opts.home, opts.cluster)
    if newest is not None and rec["created"] < newest["created"] and not opts.allow_older:
        raise BackupError(f"set {rec['id']} (created {rec['created']}) is older than set {newest['id']} (created "
                          f"{newest['created']}), the newest made of {opts.cluster}: refused (--allow-older)")


def _put_back(comp: str, plain: Path, rel: str, name: str, opts: RestoreOptions) -> dict:
    if comp in ("vault", "etcd"):
        if opts.source is None:
            raise BackupError(f"{name}: restoring {comp} needs the cluster (an inventory)")
        if comp == "vault":
            return opts.source.vault_restore(plain, opts.force)
        return opts.source.etcd_restore(plain)
    if opts.out is None:
        raise BackupError(f"{name}: --out DIR: where to unpack {comp}")
    dest = opts.out / Path(rel).name.removesuffix(".tar.age")
    if comp == "postgresql":
        return {"dataDirectory": str(postgres.unpack(plain, dest, name))}
    if comp == "longhorn":
        return {"backupstore": str(archive.unpack(plain, dest, name))}
    return {"siteState": str(archive.unpack(plain, dest, name))}


def restore(opts: RestoreOptions) -> dict:
    if opts.component not in COMPONENTS:
        raise BackupError(f"--component {opts.component}: not one of {', '.join(COMPONENTS)}")
    index_bytes, doc = set_media.read_set(opts.mounts, opts.pub)
    rec = doc["backup"]
    check_target(rec, opts)
    comp = rec["components"].get(opts.component)
    if comp is None:
        raise BackupError(f"{volume_root(opts.mounts[0])}: set {rec['id']} holds no {opts.component} backup")
    src = MediaSource(opts.mounts, index_bytes, opts.pub)
    done = []
    try:
        with tempfile.TemporaryDirectory(prefix="medai-restore-") as tmp:
            for rel in comp["files"]:
                name = f"{volume_root(opts.mounts[0])}/{rel}"
                with src.open(rel) as stream:
                    plain = decrypt_stream(stream, Path(tmp) / "plain", opts.identities, name)
                set_media.CHECKS[opts.component](plain, name)
                done.append({"file": rel, **_put_back(opts.component, plain, rel, name, opts)})
                plain.unlink()
    finally:
        src.cleanup()
    return {"set": rec["id"], "cluster": rec["cluster"], "created": rec["created"], "component": opts.component,
            "restored": done}
