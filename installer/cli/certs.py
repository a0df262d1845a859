"""medai certs: every certificate the site depends on, with its expiry; medai certs rotate: renew one group."""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from installer.cli.output import confirmer
from installer.core.errors import InventoryError

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)
EXIT = {"ok": 0, "warn": 1, "crit": 2}
STYLE = {"ok": "green", "warn": "yellow", "crit": "bold red"}


def _token(token_stdin: bool) -> str | None:
    return sys.stdin.readline().strip() or None if token_stdin else None


@app.callback()
def certs_cmd(
    ctx: typer.Context,
    inventory: Path = typer.Option(None, "--inventory", "-i", help="The site inventory."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of lines."),
    token_stdin: bool = typer.Option(False, "--token-stdin",
                                     help="Read a Vault token from stdin to list the certificates Vault issued."),
    no_nodes: bool = typer.Option(False, "--no-nodes", help="Skip reading K3s's certificates on the nodes."),
) -> None:
    """Every certificate: K3s's on each node, the site root and Vault intermediate, Vault's listener and issued
    certificates, the kubeconfig's client certificate, the operators' OpenPGP keys. Exit 0 ok, 1 warn, 2 crit."""
    if ctx.invoked_subcommand is not None:
        return
    if inventory is None:
        raise InventoryError("medai certs: --inventory is required")
    from installer.certs.collect import listing, site_certs
    from installer.certs.model import worst

    console = Console(stderr=True)
    certs, th = site_certs(inventory, token=_token(token_stdin), read_nodes=not no_nodes, console=console)
    now = dt.datetime.now(dt.UTC)
    rows = listing(certs, now, th)
    level = worst(lv for lv, _ in rows)
    if as_json:
        typer.echo(json.dumps({"level": level, "warnDays": th.warn_days, "critDays": th.crit_days,
                               "certificates": [c.as_dict(now, th) for c in certs]}, indent=1))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for lv, text in rows:
            out.print(f"[{STYLE[lv]}]{lv:<4}[/] {escape(text)}", markup=True)
    raise typer.Exit(EXIT[level])


@app.command("rotate")
def rotate_cmd(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="The site inventory."),
    group: str = typer.Option(..., "--group", "-g", help="k3s, vault or intermediate"),
    service: list[str] = typer.Option([], "--service", help="vault group: only these services (default: all)."),
    stdin: bool = typer.Option(False, "--stdin", help="Read unseal shares one per line from stdin (automation)."),
    signed: Path = typer.Option(None, "--signed", help="intermediate group: the certificate the offline root signed."),
    csr_out: Path = typer.Option(Path("intermediate.csr"), "--csr-out", help="intermediate group: where the CSR goes."),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation (needed with --stdin)"),
) -> None:
    """Renew one group before it expires: K3s one server at a time, Vault-issued certificates with their Secrets
    and a rolling restart, or the intermediate (a CSR for the offline root; then --signed)."""
    from installer.certs.rotate import rotate_group

    rot = rotate_group(inventory, group, services=service, stdin=stdin, signed=signed, csr_out=csr_out,
                       console=Console(stderr=True), confirm=confirmer(yes, stdin))
    for line in rot.done:
        typer.echo(f"{rot.group}: {line}")
    for line in rot.carry:
        typer.echo(f"operator: {line}")


@app.command("sign-intermediate")
def sign_cmd(
    csr: Path = typer.Option(..., "--csr", help="The CSR `medai certs rotate --group intermediate` wrote."),
    root_ca_dir: Path = typer.Option(..., "--root-ca-dir", help="The offline site root CA's directory."),
    out: Path = typer.Option(Path("signed.pem"), "--out", help="Where the signed intermediate goes."),
) -> None:
    """On the offline root's host: sign Vault's intermediate CSR with the site root (its key stays here)."""
    from installer.certs.rotate import sign_offline

    rot = sign_offline(csr, root_ca_dir, out)
    for line in rot.done + [f"operator: {c}" for c in rot.carry]:
        typer.echo(line)
