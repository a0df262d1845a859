"""Refuse a differential bundle whose base is not what the cluster has installed, before any host is touched.

What is installed is read from the control host's run records (installer.deploy.state): the bundle index
digest of the newest successful install, upgrade or rollback run for the same inventory file.
"""
from __future__ import annotations

from pathlib import Path

from installer.core.errors import InstallError
from installer.deploy.state import installed_index
from installer.trust.differential import base_digest


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
