"""The site-facing entry points of `medai backup create` and `restore`: the inventory checked, its recipients
parsed, a run record (and the state lock) held, the live cluster seam built, the library flow run."""
from __future__ import annotations

from pathlib import Path

from installer.backup.cluster import LiveCluster
from installer.backup.create import COMPONENTS, CreateOptions, create
from installer.backup.crypto import parse_recipients
from installer.backup.restore import RestoreOptions, restore
from installer.core.progress import Progress
from installer.core.resources import state_dir
from installer.deploy.inventory import load_inventory
from installer.deploy.state import recorded
from installer.media import parity
from installer.platform.values import role_vars
from installer.trust.keys import SigningKey


def _live(inv, record, console, target_mount, vault_token) -> LiveCluster:
    dbs = role_vars("postgres", inv)["medai_postgres_databases"]
    return LiveCluster(inv, record, console, target_mount, vault_token, dbs)


def create_for_site(inventory: Path, targets: list[Path], key: SigningKey, console, *,
                    components: tuple[str, ...] = COMPONENTS, target_mount: Path | None = None, vault_token: str = "",
                    max_file_size: int | None = None, volume_size: int | None = None,
                    percent: float = parity.DEFAULT_PERCENT, progress: Progress | None = None) -> dict:
    inv = load_inventory(inventory)
    recipients = list(inv.site.model_dump().get("medai_backup_recipients") or [])
    parsed = parse_recipients(recipients)
    with recorded("backup-create", inventory) as record:
        out = create(CreateOptions(inventory=inv.path, cluster=inv.cluster, home=state_dir(), targets=targets, key=key,
                                   recipients=recipients, parsed_recipients=parsed,
                                   source=_live(inv, record, console, target_mount, vault_token),
                                   components=components, max_file_size=max_file_size, volume_size=volume_size,
                                   parity=percent, progress=progress or Progress()))
        record.data["summary"] = {"set": out["set"], "components": sorted(out["components"])}
    return out


def restore_for_site(inventory: Path, mounts: list[Path], pub, identities, component: str, console, *,
                     out: Path | None = None, target_mount: Path | None = None, vault_token: str = "",
                     force: bool = False, allow_other_cluster: bool = False, allow_older: bool = False) -> dict:
    inv = load_inventory(inventory)
    with recorded(f"backup-restore-{component}", inventory) as record:
        res = restore(RestoreOptions(mounts=mounts, pub=pub, identities=identities, component=component,
                                     cluster=inv.cluster, home=state_dir(), out=out,
                                     source=_live(inv, record, console, target_mount, vault_token), force=force,
                                     allow_other_cluster=allow_other_cluster, allow_older=allow_older))
        record.data["summary"] = {"set": res["set"], "component": component}
    return res
