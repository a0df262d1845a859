"""A backup set: encrypted component files, an index signed with the site key, written to media as bundles are.

    SET/                                  (a staging directory on the control host, then STICK/medai-bundle/)
      index.json       kind BundleIndex, name "medai-backup", version = the set id, "backup": the set's record
                       (kind BackupSet, id, created, cluster, bundle, recipients, components), "files": path, size,
                       sha256 of every ENCRYPTED file; written last
      index.json.sig   the site key's signature over index.json (as a bundle's)
      etcd/snapshot.db.age  vault/raft.snap.age  postgresql/<cluster>.tar.age  site/state.tar.age  ...

The index has a bundle index's shape so that the one media layer (installer.media: FAT32 parts, spanning, the
signed media manifest, every part read back, PAR2 recovery data) writes and reads it unchanged. Every file is an
age file before it is listed; nothing in clear but names, sizes, digests and the record above.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pyrage import x25519

from installer.backup.crypto import encrypt_stream
from installer.bundle.layout import INDEX, INDEX_SIG
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import BackupError
from installer.media.manifest import dumps
from installer.trust.keys import SigningKey
from installer.trust.signing import sign_index

SET_NAME = "medai-backup"
SET_KIND = "BackupSet"


def new_set_id(now: dt.datetime | None = None) -> str:
    """``20261207T191600Z-1a2b3c``: sortable by time, FAT-safe (no colon)."""
    return f"{(now or dt.datetime.now(dt.UTC)).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


@dataclass
class SetWriter:
    """Collects encrypted files into a staging directory; ``finish`` writes and signs the index (last)."""

    root: Path
    record: dict
    recipients: list[x25519.Recipient]
    files: list[dict] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path, cluster: str, recipients: list[str], parsed: list[x25519.Recipient],
              bundle: dict | None = None, set_id: str | None = None) -> SetWriter:
        """A clean staging directory (anything an interrupted run left there is removed: it starts clean)."""
        if root.exists():
            shutil.rmtree(root)
        _private_dir(root)
        sid = set_id or new_set_id()
        record = {"kind": SET_KIND, "id": sid, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "cluster": cluster, "bundle": bundle, "recipients": list(recipients), "components": {}}
        return cls(root, record, parsed)

    def add(self, component: str, rel: str, plain: Path, info: dict | None = None) -> dict:
        """Encrypt ``plain`` to ``rel`` + '.age' under the set and list it under ``component``."""
        with open(plain, "rb") as src:
            return self.add_stream(component, rel, src, info)

    def add_stream(self, component: str, rel: str, src, info: dict | None = None) -> dict:
        """Encrypt what ``src`` reads (e.g. a tar being written, archive.tar_stream) to ``rel`` + '.age'."""
        rel = f"{rel}.age"
        dest = self.root / rel
        _private_dir(dest.parent)
        dest.unlink(missing_ok=True)
        size, sha = encrypt_stream(src, dest, self.recipients, rel)
        entry = {"path": rel, "size": size, "sha256": sha}
        self.files.append(entry)
        comp = self.record["components"].setdefault(component, {"files": []})
        comp["files"].append(rel)
        comp.update(info or {})
        return entry

    def finish(self, key: SigningKey) -> bytes:
        if not self.files:
            raise BackupError(f"{self.root}: no component was backed up: no set written")
        index = {"apiVersion": "medai/v1", "kind": "BundleIndex", "name": SET_NAME, "version": self.record["id"],
                 "backup": self.record, "files": sorted(self.files, key=lambda f: f["path"])}
        data = dumps(index)
        atomic_write_bytes(self.root / INDEX, data)
        sign_index(self.root, data, key)
        return data


def is_finished(root: Path) -> bool:
    return (root / INDEX).is_file() and (root / INDEX_SIG).is_file()


def parse_set_index(data: bytes, where: str) -> dict:
    """The set record of a verified index; a bundle's index (or anything else) is refused naming ``where``."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise BackupError(f"{where}: index.json is not JSON", path=where) from None
    rec = doc.get("backup") if isinstance(doc, dict) else None
    if doc.get("name") != SET_NAME or not isinstance(rec, dict) or rec.get("kind") != SET_KIND:
        raise BackupError(f"{where}: not a medai backup set (a bundle's media?)", path=where)
    listed = {f["path"] for f in doc.get("files", [])}
    for name, comp in (rec.get("components") or {}).items():
        for rel in comp.get("files", []):
            if rel not in listed:
                raise BackupError(f"{where}: component {name} names {rel}, which the set does not list", path=where)
    return doc
