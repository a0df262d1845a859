"""PostgreSQL (every CloudNativePG cluster): a physical base backup with the WAL it needs, its check, a restore.

The in-cluster Job (installer.platform.components.backup_schedules) runs ``pg_basebackup`` with BASEBACKUP_ARGS
against the cluster's read-write service into the backup volume; ``medai backup create`` checks the newest one
(a plain data directory with its backup_manifest) with ``check_dir`` (pg_verifybackup: every file's checksum
against the manifest, the WAL parsed) and streams it as one tar into age (archive.tar_stream); ``check`` does
the same for the packed file; ``unpack`` restores it into a new data directory, which PostgreSQL starts from as
is (the WAL was streamed into it: consistent without any archive).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from installer.backup import archive
from installer.backup.tools import run
from installer.core.errors import BackupError
from installer.platform.components.backup_schedules import BASEBACKUP_ARGS


def basebackup(host: str, port: int, user: str, dest: Path, password_file: Path | None = None) -> Path:
    """pg_basebackup into the new directory ``dest`` (the password, if any, through PGPASSFILE, never argv)."""
    env = {"PGPASSFILE": str(password_file)} if password_file else {}
    run(["pg_basebackup", "-h", host, "-p", str(port), "-U", user, "-D", str(dest), *BASEBACKUP_ARGS],
        f"postgresql {host}:{port}", env)
    return dest


def unpack(path: Path, data_dir: Path, name: str) -> Path:
    """Into a new data directory (0700, as PostgreSQL demands); members are checked as data (no links out)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir}: not empty: PostgreSQL restores only into a new data directory", path=str(data_dir))
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".medai-pg-") as tmp:
        archive.unpack(path, Path(tmp), name)
        src = Path(tmp) / "pgdata"
        if not (src / "backup_manifest").is_file():
            raise BackupError(f"{name}: holds no pgdata/backup_manifest", path=name)
        for entry in src.iterdir():
            os.replace(entry, data_dir / entry.name)
    os.chmod(data_dir, 0o700)
    return data_dir


def check_dir(backup_dir: Path, name: str) -> dict:
    """pg_verifybackup over a base backup directory (checksums of every file, the WAL parsed)."""
    out = run(["pg_verifybackup", str(backup_dir)], name).stdout.strip()
    return {"check": "pg_verifybackup", "result": out.splitlines()[-1] if out else "ok",
            "files": sum(1 for _ in backup_dir.rglob("*"))}


def check(path: Path, name: str) -> dict:
    """The packed backup: unpacked into a scratch directory, then check_dir."""
    with tempfile.TemporaryDirectory(prefix="medai-pgverify-") as tmp:
        return check_dir(unpack(path, Path(tmp) / "pgdata", name), name)
