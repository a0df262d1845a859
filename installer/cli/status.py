"""medai status: the site at a glance, one line per concern; exit 0 ok, 1 any warn, 2 any crit."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

STYLE = {"ok": "green", "warn": "yellow", "crit": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)


def status_cmd(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="The site inventory."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of lines."),
    timeout: float = typer.Option(20, "--timeout", min=1, help="Seconds every probe gets; no answer is a crit line."),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read a Vault token from stdin: Raft peers and the "
                                                                 "certificates Vault issued."),
) -> None:
    """Nodes, the installed bundle, Vault, certificates, releases, storage, backups, compliance, egress:
    read-only, every probe under --timeout. Exit 0 all ok, 1 any warn, 2 any crit (run it from a timer)."""
    from installer.status.probe import exit_code
    from installer.status.site import site_status

    token = (sys.stdin.readline().strip() or None) if token_stdin else None
    lines = site_status(inventory, timeout, token)
    del token
    code = exit_code(lines)
    if as_json:
        typer.echo(json.dumps({"level": ["ok", "warn", "crit"][code], "lines": [ln.as_dict() for ln in lines]}, indent=1))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for ln in lines:
            out.print(f"[{STYLE[ln.level]}]{ln.level:<4}[/] {ln.concern:<12} {escape(ln.fact)}", markup=True)
    raise typer.Exit(code)
