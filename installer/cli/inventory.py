"""medai inventory …"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from installer.core.errors import InventoryError
from installer.deploy.inventory import Inventory, load_inventory

app = typer.Typer(no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def load_or_exit(file: Path) -> Inventory:
    """Load and check; on problems print each on its own `error:` line and exit 2."""
    try:
        return load_inventory(file)
    except InventoryError as e:
        lines = str(e).splitlines()
        for line in lines:
            err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        err.print(f"{len(lines)} problem(s) in {file}", highlight=False)
        raise typer.Exit(2) from None


@app.command("check")
def check(file: Path = typer.Argument(..., help="inventories/<site>/site.yml")) -> None:
    """Check a site inventory: groups, server count, addresses, MetalLB pool, site vars. Contacts no host."""
    inv = load_or_exit(file)
    console.print(
        f"[green]ok[/] {file}: cluster {inv.cluster}, {len(inv.servers)} server(s), {len(inv.agents)} agent(s)"
        f" ({len(inv.gpu)} GPU), API {inv.api_address}, MetalLB pool {inv.site.medai_metallb_pool}",
        highlight=False,
    )
