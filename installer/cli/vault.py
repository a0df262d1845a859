"""medai vault …: init, unseal, status, setup, rotate-cert (medai certs rotate's vault group). Shares are read without echo."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from installer.cli.output import confirmer
from installer.core.errors import VaultError
from installer.deploy.vault.share_prompt import share_reader

app = typer.Typer(no_args_is_help=True)

INVENTORY = typer.Option(..., "--inventory", "-i", help="The site inventory (medai_vault_* vars).")


def _settings(inventory: Path):
    from installer.deploy.inventory import load_inventory
    from installer.deploy.vault.settings import vault_settings

    return vault_settings(load_inventory(inventory))


@app.command("init")
def init_cmd(inventory: Path = INVENTORY, as_json: bool = typer.Option(False, "--json")) -> None:
    """Initialise Vault once: one share per named operator, each encrypted to their OpenPGP key.

    A rerun on an initialised Vault does not re-init; it completes the operators' share files."""
    from installer.deploy.vault.client import endpoints
    from installer.deploy.vault.init import initialize

    s = _settings(inventory)
    with endpoints(s) as eps:
        res = initialize(s, eps[0])
    summary = {"initializedNow": res.initialized_now, "threshold": res.record["threshold"],
               "shares": res.record["shares"], "files": [str(f) for f in res.files],
               "operators": [{"name": o["name"], "pgpKey": o["pgp_key"]} for o in res.record["operators"]]}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(("initialised" if res.initialized_now else "already initialised (not re-initialised)")
               + f": {summary['threshold']} of {summary['shares']} shares unseal")
    for o, f in zip(res.record["operators"], res.files):
        typer.echo(f"  {o['name']:<16} {f}  (encrypted to {o['pgp_key']})")
    typer.echo(f"  root token       {res.files[-1]}  (encrypted; revoked by `medai vault setup`)")
    typer.echo("each operator: gpg --decrypt THEIR-FILE, then type it at `medai vault unseal` / `medai vault setup`")


@app.command("unseal")
def unseal_cmd(
    inventory: Path = INVENTORY,
    stdin: bool = typer.Option(False, "--stdin", help="Read shares one per line from stdin (automation)."),
) -> None:
    """Unseal every Vault member: shares are asked without echo until the threshold is met."""
    from installer.deploy.vault.client import endpoints
    from installer.deploy.vault.unseal import unseal_all

    s = _settings(inventory)
    with endpoints(s) as eps:
        outcomes = unseal_all(eps, share_reader(stdin), threshold=s.threshold)
    for o in outcomes:
        typer.echo(f"{o.member:<16} {'unsealed' if not o.sealed else f'SEALED ({o.progress}/{o.threshold})'}")
    if any(o.sealed for o in outcomes):
        raise VaultError("some members are still sealed: enter the threshold of valid shares (`medai vault status`)")


@app.command("status")
def status_cmd(
    inventory: Path = INVENTORY,
    as_json: bool = typer.Option(False, "--json"),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read a token from stdin to list Raft peers."),
) -> None:
    """Sealed or unsealed per member, the leader, and the Raft peers (with a token)."""
    from installer.deploy.vault.client import endpoints
    from installer.deploy.vault.status import cluster_status

    s = _settings(inventory)
    token = sys.stdin.readline().strip() if token_stdin else None
    with endpoints(s) as eps:
        cs = cluster_status(eps, token)
    del token
    if as_json:
        typer.echo(json.dumps(cs.as_dict()))
        return
    for m in cs.members:
        if not m.reachable:
            state = f"UNREACHABLE ({m.error})"
        elif not m.initialized:
            state = "not initialised / not joined"
        elif m.sealed:
            state = f"SEALED ({m.progress}/{m.threshold} shares entered)"
        else:
            state = "unsealed" + (", leader" if m.is_leader else "")
        typer.echo(f"{m.name:<16} {m.addr:<32} {state}")
    typer.echo(f"leader: {cs.leader or 'none (all sealed or no quorum)'}")
    if cs.peers:
        for p in cs.peers:
            typer.echo(f"raft peer {p['id']:<12} {p['address']:<24} {'leader' if p['leader'] else 'follower'}"
                       f"{'' if p['voter'] else ' (non-voter)'}")
    else:
        typer.echo(f"raft peers: {cs.peers_error}")
    if any(m.sealed or not m.reachable for m in cs.members):
        raise typer.Exit(3)


@app.command("setup")
def setup_cmd(
    inventory: Path = INVENTORY,
    stdin: bool = typer.Option(False, "--stdin", help="Read shares one per line from stdin (automation)."),
) -> None:
    """Init if needed, unseal, then configure (audit, KV, policies, Kubernetes auth, secrets, site PKI).

    Admin work runs on a root token generated from the shares entered here, revoked at the end together with
    every other root token (the initial one included)."""
    from installer.deploy.state import recorded
    from installer.deploy.vault.setup import run_setup

    s = _settings(inventory)
    with recorded("vault-setup", s.inventory.path, ok="ok") as rec:
        rec.data["summary"] = run_setup(s, share_reader(stdin), echo=typer.echo)


@app.command("rotate-cert")
def rotate_cmd(
    service: str = typer.Argument(..., help="vault, keycloak, harbor or inference"),
    inventory: Path = INVENTORY,
    stdin: bool = typer.Option(False, "--stdin", help="Read shares one per line from stdin (automation)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation (needed with --stdin)"),
) -> None:
    """One service's certificate re-issued: `medai certs rotate --group vault --service SERVICE` (KV <service>/tls,
    its Secret and a rolling restart of what mounts it on an installed site)."""
    from rich.console import Console

    from installer.certs.rotate import rotate_group

    rot = rotate_group(inventory, "vault", services=[service], stdin=stdin, signed=None, csr_out=Path("unused"),
                       console=Console(stderr=True), confirm=confirmer(yes, stdin))
    for line in rot.done + [f"operator: {c}" for c in rot.carry]:
        typer.echo(line)
