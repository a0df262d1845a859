"""medai install / medai reset (installer/deploy/install.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.cli.inventory import load_or_exit
from installer.cli.output import confirmer

console = Console()


def install(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory (inventories/<site>/site.yml)"),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="bundle directory (default: medai_bundle_dir)"),
    key: Optional[Path] = typer.Option(None, "--key", help="public key: the bundle must carry a valid signature by it"),
    skip_signature: bool = typer.Option(False, "--insecure-skip-signature",
                                        help="install without --key: signatures are NOT checked (loud, recorded)"),
    check: bool = typer.Option(False, "--check", help="dry run: Ansible check mode with diffs, changes nothing"),
    tags: Optional[str] = typer.Option(None, "--tags", help="only these roles/tags, comma-separated"),
    limit: Optional[str] = typer.Option(None, "--limit", help="only these hosts (Ansible pattern)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Check the inventory, verify the bundle into a private copy, then install K3s and the platform base."""
    from installer.deploy.install import install as run_install

    inv = load_or_exit(inventory)
    run_install(inv, bundle, key, console=console, skip_signature=skip_signature, check=check, tags=tags, limit=limit,
                confirm=confirmer(yes))


def reset(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory"),
    limit: Optional[str] = typer.Option(None, "--limit", help="only these hosts (Ansible pattern)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Uninstall the platform releases (reverse order), then remove K3s and everything medai placed on the hosts."""
    from installer.deploy.install import reset as run_reset

    run_reset(load_or_exit(inventory), console=console, limit=limit, confirm=confirmer(yes))


def register(app: typer.Typer) -> None:
    app.command("install")(install)
    app.command("reset")(reset)
