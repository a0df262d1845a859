"""Bring the lab up (or find it up) and take it down: the library behind `medai lab up|down` and the demo."""
from __future__ import annotations

from rich.console import Console

from installer.core.errors import LabError
from installer.lab import image as lab_image
from installer.lab import nodes as lab_nodes
from installer.lab.inventory import write_inventory
from installer.lab.state import lab_dir, lab_inventory_file, lab_state_file


def lab_up(servers: int, agents: int, gpu_agents: int, console: Console | None = None) -> lab_nodes.Lab:
    """Start a lab (or keep the running one) and write its inventory. Used by `medai lab up` and the demo."""
    console = console or Console()
    if servers < 1 or servers % 2 == 0:
        raise LabError(f"--servers {servers}: embedded etcd needs 1 or an odd number >= 3 of servers")
    state = lab_state_file()
    if state.exists():
        lab = lab_nodes.Lab.load(state)
        states = lab_nodes.container_states(lab)
        if all(states.get(n.name) == "running" for n in lab.nodes):
            shape = (len(lab.servers), len(lab.agents) - len(lab.gpu), len(lab.gpu))
            if shape != (servers, agents, gpu_agents):
                raise LabError(f"{state}: lab {lab.lab_id} is up with servers/agents/gpu-agents={shape}; "
                               "run `medai lab down` first")
            console.print(f"lab {lab.lab_id} is already up", highlight=False)
            write_inventory(lab, lab_inventory_file())
            return lab
        raise LabError(f"{state}: lab {lab.lab_id} is not fully running; run `medai lab down` first")
    lab_image.build_image()
    with console.status(f"starting {servers + agents + gpu_agents} node(s)…"):
        lab = lab_nodes.create_lab(servers=servers, agents=agents, gpu_agents=gpu_agents, key_dir=lab_dir())
    lab.save(state)
    write_inventory(lab, lab_inventory_file())
    return lab


def lab_down() -> lab_nodes.Lab | None:
    """Remove the lab's containers, network, host firewall rules, state and inventory; the lab removed, or None."""
    state = lab_state_file()
    if not state.exists():
        return None
    lab = lab_nodes.Lab.load(state)
    lab_nodes.destroy_lab(lab)
    lab_inventory_file().unlink(missing_ok=True)
    state.unlink()
    return lab
