"""Refuse a differential bundle whose base is not what the cluster has installed, before any host is touched.

What is installed is read from the control host's run records (installer.deploy.state): the bundle index
digest of the newest successful install, upgrade or rollback run for the same inventory file.
"""
from __future__ import annotations

import json
from pathlib import Path

from installer.bundle.differential import base_digest
from installer.deploy.state import state_dir
from installer.errors import InstallError

INSTALLING_COMMANDS = ("install", "upgrade", "rollback")


def installed_index(inventory: Path, home: Path | None = None) -> tuple[str | None, str | None]:
    """(bundle index sha256, run id) of the newest successful install/upgrade/rollback of ``inventory``."""
    runs = (home or state_dir()) / "runs"
    if not runs.is_dir():
        return None, None
    want = str(Path(inventory).resolve())
    found = []
    for run in (p for p in runs.iterdir() if p.is_dir()):
        try:
            data = json.loads((run / "run.json").read_text())
            when = (run / "run.json").stat().st_mtime_ns  # ids share a one-second stamp; the record's write time orders
        except (OSError, ValueError):
            continue
        if (data.get("command") in INSTALLING_COMMANDS and data.get("result") == "successful"
                and (data.get("inventory") or {}).get("path") == want and data.get("bundleIndexSha256")):
            found.append((when, data["bundleIndexSha256"], data.get("id", run.name)))
    if not found:
        return None, None
    _, digest, run_id = max(found)
    return digest, run_id


def refuse_wrong_base(index: dict, bundle: Path, inventory: Path, home: Path | None = None) -> str | None:
    """None for a full bundle; the base digest when it matches what is installed; InstallError otherwise."""
    want = base_digest(index)
    if want is None:
        return None
    have, run = installed_index(inventory, home)
    if have is None:
        raise InstallError(f"{bundle}: differential bundle on base index sha256 {want}, but no successful install "
                           f"or upgrade of {inventory} is recorded: install its base first (no host was touched)")
    if have != want:
        raise InstallError(f"{bundle}: differential bundle on base index sha256 {want}, but the cluster has index "
                           f"sha256 {have} installed (run {run}): refused, no host was touched")
    return want
