"""medai backup create | verify | restore: parse, call installer.backup, print."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.cli.output import confirmer
from installer.core.sizes import human

app = typer.Typer(no_args_is_help=True, help="Encrypted backups of the site's state onto removable media.")
out = Console()
err = Console(stderr=True)
# the components whose restore replaces what the cluster holds (the others are unpacked under --out)
RESTORE_REPLACES = {"etcd": "K3s's datastore is replaced by the snapshot.",
                    "vault": "Vault's data is replaced by the snapshot."}
COMPONENT_HELP = "etcd, vault, postgresql, longhorn or site (repeat; default: all)"


def _vault_token(components: list[str]) -> str:
    """MEDAI_VAULT_TOKEN (taken out of the environment at once), else a prompt without echo; never an argument."""
    if "vault" not in components:
        return ""
    token = os.environ.pop("MEDAI_VAULT_TOKEN", "")
    if not token and sys.stdin.isatty():
        token = typer.prompt("Vault token (may read sys/storage/raft/snapshot)", hide_input=True, err=True)
    return token


def _progress():
    from installer.core.progress import Progress, RichProgress

    return RichProgress() if sys.stderr.isatty() else Progress()


def _print(doc: dict, as_json: bool, line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    else:
        out.print(line, highlight=False)


@app.command("create")
def create(
    inventory: Path = typer.Option(..., "--inventory", help="the site inventory (medai_backup_recipients)"),
    to: list[Path] = typer.Option(..., "--to", help="mount point of the stick (repeat for volume 2, 3, ...)"),
    sign_key: Path = typer.Option(..., "--sign-key", help="the site private key: signs the set and the media manifest"),
    component: Optional[list[str]] = typer.Option(None, "--component", help=COMPONENT_HELP),
    target_mount: Optional[Path] = typer.Option(None, "--target-mount", help="the in-site backup target (NFS export) "
                                                "mounted read-only here: PostgreSQL and Longhorn are collected from it"),
    max_file_size: Optional[str] = typer.Option(None, "--max-file-size", help="split files above this size"),
    volume_size: Optional[str] = typer.Option(None, "--volume-size", help="capacity of each stick (spans several)"),
    parity: float = typer.Option(8.0, "--parity", help="PAR2 recovery data per stick, %; 0 = none"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Back up etcd, Vault, every PostgreSQL cluster, Longhorn's backupstore and medai's site state, each checked
    by its own integrity check, encrypted to the site's backup recipients, onto media (signed, read back)."""
    from installer.backup.create import COMPONENTS
    from installer.backup.site import create_for_site
    from installer.media.export import parse_size
    from installer.trust.signing import resolve_key

    comps = tuple(component or COMPONENTS)
    key = resolve_key(sign_key)
    progress = _progress()
    try:
        res = create_for_site(inventory, list(to), key, err, components=comps, target_mount=target_mount,
                              vault_token=_vault_token(list(comps)),
                              max_file_size=parse_size(max_file_size) if max_file_size else None,
                              volume_size=parse_size(volume_size) if volume_size else None, percent=parity,
                              progress=progress)
    finally:
        progress.close()
    _print(res, as_json, f"[bold green]backed up[/] {res['cluster']}: set {res['set']} "
                         f"({', '.join(sorted(res['components']))}; {human(res['bytes'])} encrypted) onto "
                         f"{len(res['media']['volumes'])} volume(s)")


@app.command("verify")
def verify(
    mount: Path = typer.Argument(..., help="mount point of the stick (volume 1)"),
    key: Path = typer.Option(..., "--key", help="the site public key"),
    identity: Optional[Path] = typer.Option(None, "--identity", help="an operator's age identity file: decrypt each "
                                            "file and run its component's own check"),
    volume: Optional[list[Path]] = typer.Option(None, "--volume", help="further volumes' mount points"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Signature and every part; with --identity the decryption and each component's own check (etcd snapshot
    status, pg_verifybackup, the Vault snapshot's SHA256SUMS). Only reads the media; touches no cluster."""
    from installer.backup.crypto import load_identity
    from installer.backup.media import verify as verify_set
    from installer.trust.keys import load_public_key

    res = verify_set([mount, *(volume or [])], load_public_key(key), load_identity(identity) if identity else None)
    _print(res.to_json(), as_json, f"[bold green]verified[/] set {res.set_id} of {res.cluster} ({res.created}): "
                                   f"{res.files} file(s), {human(res.bytes)}: {res.status}")


@app.command("restore")
def restore(
    mount: Path = typer.Argument(..., help="mount point of the stick (volume 1)"),
    component: str = typer.Option(..., "--component", help="etcd, vault, postgresql, longhorn or site"),
    inventory: Path = typer.Option(..., "--inventory", help="the site inventory (the cluster restored into)"),
    key: Path = typer.Option(..., "--key", help="the site public key"),
    identity: Path = typer.Option(..., "--identity", help="an operator's age identity file"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="a new directory: PostgreSQL, Longhorn and the site "
                                           "state are unpacked there"),
    volume: Optional[list[Path]] = typer.Option(None, "--volume", help="further volumes' mount points"),
    force: bool = typer.Option(False, "--force", help="Vault: restore into another cluster (snapshot-force); it then "
                               "unseals with the ORIGINAL shares"),
    allow_other_cluster: bool = typer.Option(False, "--allow-other-cluster", help="restore a set of another cluster"),
    allow_older: bool = typer.Option(False, "--allow-older", help="restore a set older than the newest made"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Restore one component of a verified set (decrypted and checked first); see docs/backup.md's runbook."""
    from installer.backup.crypto import load_identity
    from installer.backup.site import restore_for_site
    from installer.trust.keys import load_public_key

    ask = confirmer(yes)
    if ask is not None and component in RESTORE_REPLACES:
        ask(f"Restore {component} from the backup set on {mount} into the cluster of {inventory}? "
            + RESTORE_REPLACES[component])
    res = restore_for_site(inventory, [mount, *(volume or [])], load_public_key(key), load_identity(identity),
                           component, err, out=out_dir, vault_token=_vault_token([component]), force=force,
                           allow_other_cluster=allow_other_cluster, allow_older=allow_older)
    _print(res, as_json, f"[bold green]restored[/] {component} from set {res['set']} of {res['cluster']}: "
                         + "; ".join(", ".join(f"{k} {v}" for k, v in r.items()) for r in res["restored"]))
