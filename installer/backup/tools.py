"""The external programs a backup or restore runs: found once, started with an allow-listed environment."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from installer.core.childenv import child_env
from installer.core.errors import BackupError

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def binary(name: str) -> str:
    """``name`` on PATH, else in PostgreSQL 15's directory; a missing tool is refused naming it."""
    found = shutil.which(name) or (str(PG_BIN / name) if (PG_BIN / name).is_file() else None)
    if found is None:
        raise BackupError(f"{name}: not installed on this host (apt: etcd-client / postgresql-15)")
    return found


def run(argv: list[str], what: str, extra_env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
        timeout: float = 3600) -> subprocess.CompletedProcess:
    """Run a tool; a failure is one BackupError naming ``what`` and the tool's last line."""
    try:
        proc = subprocess.run([binary(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout,
                              env=child_env(extra_env), cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what}: {argv[0]} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise BackupError(f"{what}: {argv[0]} failed (exit {proc.returncode}): {last[0][:300]}")
    return proc
