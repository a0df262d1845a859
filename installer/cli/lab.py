"""medai lab …: a laptop-sized air-gapped site made of podman nodes (see docs/lab.md)."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from installer.lab import image as lab_image
from installer.lab import nodes as lab_nodes
from installer.lab.site import lab_down, lab_up
from installer.lab.state import lab_inventory_file, lab_state_file

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("image")
def image(rebuild: bool = typer.Option(False, "--rebuild", help="build again even if the image exists")) -> None:
    """Build the lab node image (Debian 12 via mmdebstrap from Debian's archive) if it is missing."""
    name = lab_image.build_image(rebuild=rebuild)
    console.print(f"[green]ok[/] image {name}", highlight=False)


@app.command("up")
def up(
    servers: int = typer.Option(1, "--servers", min=1, help="K3s servers (1 or an odd number >= 3)"),
    agents: int = typer.Option(2, "--agents", min=0, help="K3s agents"),
    gpu_agents: int = typer.Option(0, "--gpu-agents", min=0, help="agents placed in the gpu group (the lab has no GPUs)"),
) -> None:
    """Start lab nodes on a podman --internal network and write .medai/lab/site.yml."""
    lab = lab_up(servers, agents, gpu_agents, console)
    _print_lab(lab, ssh_check=False)
    console.print(f"inventory {lab_inventory_file()}", highlight=False)


@app.command("down")
def down() -> None:
    """Remove the lab's containers, network and host firewall rules, and its inventory."""
    lab = lab_down()
    if lab is None:
        console.print("no lab is up", highlight=False)
        return
    console.print(f"[green]ok[/] lab {lab.lab_id} removed", highlight=False)


@app.command("status")
def status() -> None:
    """Show the lab's nodes: container state, address, SSH from this host, default route."""
    state = lab_state_file()
    if not state.exists():
        console.print("no lab is up (run `medai lab up`)", highlight=False)
        raise typer.Exit(1)
    lab = lab_nodes.Lab.load(state)
    if not _print_lab(lab, ssh_check=True):
        raise typer.Exit(1)


def _print_lab(lab: lab_nodes.Lab, *, ssh_check: bool) -> bool:
    states = lab_nodes.container_states(lab)
    table = Table(title=f"lab {lab.lab_id} on {lab.network} ({lab.subnet}, no route out)", show_edge=False)
    for col in ("host", "groups", "address", "container", *(["ssh"] if ssh_check else [])):
        table.add_column(col)
    healthy = True
    for n in lab.nodes:
        row = [n.hostname, ",".join(n.groups), n.ip, states.get(n.name, "missing")]
        healthy &= row[-1] == "running"
        if ssh_check:
            ok = row[-1] == "running" and lab_nodes.ssh(n, "true", check=False, timeout=15).returncode == 0
            healthy &= ok
            row.append("ok" if ok else "[red]unreachable[/]")
        table.add_row(*row)
    console.print(table)
    return healthy


@app.command("demo")
def demo(
    os_packages: bool = typer.Option(True, "--os-packages/--no-os-packages",
                                     help="resolve the OS packages from Debian's archive (connected side); without "
                                          "them the os role has no repository and `install` stops there"),
    down: bool = typer.Option(False, "--down", help="remove the lab at the end (default: leave it up to explore)"),
) -> None:
    """The whole flow on this machine: local sources → signed bundle → 1+2 node lab → install → verify."""
    from installer.lab.demo import run_demo

    run = run_demo(console, os_packages=os_packages, down_after=down)
    console.print(run.summary())
    pending = [s for s in run.steps if s.status in ("not available", "skipped")]
    if pending:
        console.print("not run: " + "; ".join(f"{s.name} ({s.detail})" for s in pending), highlight=False)
    if not down and any(s.name == "lab up" and s.status == "done" for s in run.steps):
        console.print("the lab is still up: `medai lab status`, `medai lab down`", highlight=False)
    if not run.ok:
        console.print(f"[red]{run.failure_line()}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
