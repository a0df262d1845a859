"""medai upgrade / medai rollback"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.cli.output import confirmer

console = Console()


def upgrade(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory"),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="the new bundle: a directory, or the mount point of exported media"),
    key: Path = typer.Option(..., "--key", help="site public key (bundle, media manifest)"),
    current: Optional[Path] = typer.Option(
        None, "--current", help="the installed bundle (default: the run record's verified copy, else medai_bundle_dir)"),
    plan: bool = typer.Option(False, "--plan", help="print the change list, the node order and every preflight finding; change nothing"),
    resume: bool = typer.Option(False, "--resume", help="continue the newest interrupted upgrade at its first step not done"),
    batch: int = typer.Option(1, "--batch", help="agents upgraded at a time (servers: always one)"),
    disable_eviction: bool = typer.Option(
        False, "--disable-eviction", help="drain by deleting pods, bypassing PodDisruptionBudgets (recorded)"
    ),
    drain_timeout: int = typer.Option(600, "--drain-timeout", help="seconds a drain may wait on evictions"),
    volume: Optional[list[Path]] = typer.Option(None, "--volume", help="media: further volumes' mount points"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    allow_downgrade: bool = typer.Option(
        False, "--allow-downgrade", help="accept a bundle built no later than the installed one (banner, recorded)"),
) -> None:
    """Rolling upgrade: etcd snapshot first, servers one at a time, agents in batches, then platform releases."""
    from installer.upgrade.run import UpgradeOptions, execute, make_plan

    opts = UpgradeOptions(inventory, bundle, key, current, plan, resume, batch, disable_eviction, drain_timeout, list(volume or []),
                          allow_downgrade)
    p = make_plan(opts, console)
    for line in p.lines():
        console.print(f"  {line}", highlight=False)
    if plan:
        raise typer.Exit(0 if p.preflight is None or p.preflight.ok else 1)
    if (ask := confirmer(yes)) is not None:
        ask(f"Upgrade with {len(p.steps())} step(s)?")
    run_dir = execute(opts, p, console)
    console.print(f"[bold green]upgrade complete[/]: record {run_dir}", highlight=False)


def rollback(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory"),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="the previous bundle (what to go back to)"),
    key: Path = typer.Option(..., "--key", help="site public key"),
    snapshot: Optional[Path] = typer.Option(None, "--snapshot", help="etcd snapshot to restore (default: the newest upgrade's)"),
    releases_only: bool = typer.Option(False, "--releases-only", help="only roll the platform releases back"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Back to the previous bundle: releases to its chart versions; K3s by restoring the pre-upgrade snapshot."""
    from installer.upgrade.rollback import run_rollback

    if (ask := confirmer(yes)) is not None:
        ask("Roll the cluster back? K3s restore stops every server.")
    run_dir = run_rollback(inventory, bundle, key, snapshot, releases_only, console)
    console.print(f"[bold green]rollback complete[/]: record {run_dir}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("upgrade")(upgrade)
    app.command("rollback")(rollback)
