"""medai install / medai reset"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from installer.cli.inventory import load_or_exit
from installer.deploy.inventory import Inventory
from installer.deploy.plan import build_plan
from installer.deploy.preinstall import bundle_path, verify_bundle
from installer.deploy.runner import Summary, run_playbook
from installer.deploy.state import RunRecord, cluster_token, kubeconfig_path, new_run, state_dir, write_private
from installer.errors import InstallError, MedaiError

console = Console()


def _print_summary(title: str, s: Summary, record: RunRecord) -> None:
    table = Table(title=title, show_edge=False)
    for col in ("host", "ok", "changed", "failed", "unreachable"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, c in sorted(s.per_host.items()):
        table.add_row(host, str(c.get("ok", 0)), str(c.get("changed", 0)), str(c.get("failed", 0)), str(c.get("unreachable", 0)))
    console.print(table)
    console.print(
        f"hosts={s.hosts} ok={s.ok} changed={s.changed} failed={s.failed} unreachable={s.unreachable} "
        f"time={s.seconds}s result={s.status} record={record.dir}",
        highlight=False,
    )


def _finish(record: RunRecord, s: Summary, what: str) -> None:
    good = s.status == "successful" and s.failed == 0 and s.unreachable == 0
    record.finish("successful" if good else "failed", s.to_json())
    _print_summary(f"medai {what}", s, record)
    if not good:
        first = s.failures[0] if s.failures else f"ansible-runner status {s.status}, rc {s.rc}"
        raise InstallError(f"{what} failed ({s.failed} failed, {s.unreachable} unreachable): {first}; run record {record.dir}")


def _save_kubeconfig(inv: Inventory, fetched: Path) -> Path:
    """Rewrite the fetched admin kubeconfig to point at the API VIP (or first server) and keep it 0600."""
    doc = yaml.safe_load(fetched.read_text())
    host = inv.api_address
    server = f"https://[{host}]:6443" if ":" in host else f"https://{host}:6443"
    for c in doc.get("clusters", []):
        c["cluster"]["server"] = server
        c["name"] = inv.cluster
    for ctx in doc.get("contexts", []):
        ctx["context"]["cluster"] = inv.cluster
    dest = kubeconfig_path(inv.cluster)
    write_private(dest, yaml.safe_dump(doc, sort_keys=False).encode())
    fetched.unlink()
    return dest


def install(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory (inventories/<site>/site.yml)"),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="bundle directory (default: medai_bundle_dir)"),
    key: Optional[Path] = typer.Option(None, "--key", help="public key: the bundle must carry a valid signature by it"),
    check: bool = typer.Option(False, "--check", help="dry run: Ansible check mode with diffs, changes nothing"),
    tags: Optional[str] = typer.Option(None, "--tags", help="only these roles/tags, comma-separated"),
    limit: Optional[str] = typer.Option(None, "--limit", help="only these hosts (Ansible pattern)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Check the inventory, verify the bundle, then install K3s and the platform base on every host."""
    inv = load_or_exit(inventory)
    console.print(f"[green]ok[/] inventory {inventory}: {len(inv.servers)} server(s), {len(inv.agents)} agent(s)", highlight=False)
    root = bundle_path(inv, bundle)
    from installer.bundle.layout import BundleLayout
    from installer.upgrade.base_check import refuse_wrong_base  # a differential on the wrong base: both digests named
    if refuse_wrong_base(BundleLayout.at(root).read_index(), root, inv.path):
        raise InstallError(f"{root}: a differential bundle is applied with `medai upgrade` (it assembles it with its base)")
    checked = verify_bundle(root, key)
    console.print(f"[green]ok[/] bundle {root}: {checked} verified", highlight=False)
    plan = build_plan(root, state_dir() / "cache")
    if not plan.k3s_present:
        console.print("[yellow]note[/] the bundle holds no K3s binary: K3s is configured but not started", highlight=False)
    if not (yes or check):
        typer.confirm(f"Install cluster {inv.cluster} on {len(inv.hosts)} host(s)?", abort=True)
    token = cluster_token(inv.cluster)
    record = new_run("install" if not check else "install-check", inv.path, root / "index.json")
    fetch_dir = state_dir() / "secrets" / inv.cluster
    fetched = fetch_dir / f"kubeconfig.fetched-{record.id}"
    extravars = {
        **plan.extravars(),
        "medai_bundle_dir": str(root),  # --bundle wins over the inventory's value for every role
        "medai_kubeconfig_fetch_dest": str(fetched),
    }
    try:
        summary = run_playbook(
            record, "site.yml", inv.path, extravars, {"medai_k3s_token": token},
            console=console, limit=limit, tags=tags, check=check,
            host_key_checking=inv.site.medai_ssh_host_key_checking,
        )
    except MedaiError as e:
        record.finish("failed", error=str(e))
        raise
    _finish(record, summary, "install --check" if check else "install")
    if fetched.is_file():
        dest = _save_kubeconfig(inv, fetched)
        console.print(f"[green]ok[/] kubeconfig {dest} (server {inv.api_address})", highlight=False)
    elif not check and plan.k3s_present:
        raise InstallError(f"K3s started but the kubeconfig was not fetched from {inv.servers[0]}; run record {record.dir}")


def reset(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory"),
    limit: Optional[str] = typer.Option(None, "--limit", help="only these hosts (Ansible pattern)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Remove K3s and everything medai placed on the hosts (playbooks/reset.yml)."""
    inv = load_or_exit(inventory)
    if not yes:
        typer.confirm(
            f"Remove K3s, its data and all medai files from {len(inv.hosts)} host(s) of cluster {inv.cluster}?"
            " This destroys the cluster.", abort=True)
    record = new_run("reset", inv.path)
    try:
        summary = run_playbook(record, "reset.yml", inv.path, {}, {}, console=console, limit=limit,
                               host_key_checking=inv.site.medai_ssh_host_key_checking)
    except MedaiError as e:
        record.finish("failed", error=str(e))
        raise
    _finish(record, summary, "reset")
    kc = kubeconfig_path(inv.cluster)
    if kc.exists() and not limit:
        kc.unlink()


def register(app: typer.Typer) -> None:
    app.command("install")(install)
    app.command("reset")(reset)

