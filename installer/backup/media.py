"""A backup set onto media and back, through the one media layer (installer.media), and its verification.

``write`` hands the finished, signed staging directory to export_bundle (free space, FAT32 parts, spanning,
every part read back, PAR2 recovery data, media.json signed last). ``verify`` checks the index signature,
every part and file (verify_media), then, given an operator's identity, decrypts each file into a private
scratch directory and runs its component's own check, without touching a cluster.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyrage import x25519

from installer.backup import archive, etcd, postgres, sitestate, vault
from installer.backup.backupset import parse_set_index
from installer.backup.crypto import decrypt_stream
from installer.core.errors import BackupError
from installer.core.progress import Progress
from installer.media import parity
from installer.media.export import ExportOptions, ExportSummary, export_bundle
from installer.media.manifest import volume_root
from installer.media.reader import MediaSource, read_verified_index, verify_media
from installer.trust.keys import SigningKey

CHECKS: dict[str, Callable[[Path, str], dict]] = {
    "etcd": etcd.check, "vault": vault.check, "postgresql": postgres.check, "site": sitestate.check,
    "longhorn": archive.check_tar,
}


def write(staging: Path, targets: list[Path], key: SigningKey, max_file_size: int | None = None,
          volume_size: int | None = None, percent: float = parity.DEFAULT_PERCENT,
          progress: Progress | None = None) -> ExportSummary:
    return export_bundle(ExportOptions(bundle=staging, targets=targets, sign_key=key, max_file_size=max_file_size,
                                       volume_size=volume_size, parity=percent, progress=progress))


def read_set(mounts: list[Path], pub) -> tuple[bytes, dict]:
    """The set's index, its signature checked with the site key, and its record."""
    data, _control = read_verified_index(mounts[0], pub)
    return data, parse_set_index(data, str(volume_root(mounts[0])))


@dataclass
class SetVerification:
    set_id: str
    cluster: str
    created: str
    volumes: int
    files: int
    bytes: int
    status: str
    components: dict[str, list[dict]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"set": self.set_id, "cluster": self.cluster, "created": self.created, "volumes": self.volumes,
                "files": self.files, "bytes": self.bytes, "status": self.status, "components": self.components}


def _media_problem(res) -> str | None:
    if res.problems:
        return res.problems[0]
    if res.damage:
        d = res.damage[0]
        fix = "repairable from its recovery data" if res.repairable else "not repairable"
        return f"volume {d['volume']}: part {d['part']}: damaged ({d['damage']}; {fix})"
    return None


def verify(mounts: list[Path], pub, identities: list[x25519.Identity] | None = None,
           progress: Callable[[int], None] | None = None) -> SetVerification:
    """Refuses (BackupError naming the part or file) at the first problem; only reads the media."""
    index_bytes, doc = read_set(mounts, pub)
    res = verify_media(mounts, pub, progress=progress)
    problem = _media_problem(res)
    if problem:
        raise BackupError(f"{volume_root(mounts[0])}: {problem}: the set is not intact")
    rec = doc["backup"]
    out = SetVerification(rec["id"], rec["cluster"], rec["created"], res.volumes, res.files, res.bytes,
                          "signature and every part verified")
    if not identities:
        return out
    src = MediaSource(mounts, index_bytes, pub)
    try:
        with tempfile.TemporaryDirectory(prefix="medai-backup-verify-") as tmp:
            for comp, info in sorted(rec["components"].items()):
                check = CHECKS.get(comp)
                if check is None:
                    raise BackupError(f"{volume_root(mounts[0])}: component {comp!r}: this medai has no check for it")
                for rel in info["files"]:
                    name = f"{volume_root(mounts[0])}/{rel}"
                    with src.open(rel) as stream:
                        plain = decrypt_stream(stream, Path(tmp) / "plain", identities, name)
                    try:
                        out.components.setdefault(comp, []).append({"file": rel, **check(plain, name)})
                    finally:
                        plain.unlink(missing_ok=True)
    finally:
        src.cleanup()
    out.status = "signature, every part, decryption and each component's own check verified"
    return out
