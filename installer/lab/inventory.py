"""The lab's Ansible inventory, in the site format installer/deploy/inventory.py reads and checks."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from installer.lab.nodes import Lab

API_VIP_OFFSET = 100  # .100: lab API VIP (nodes sit at .10 and up)
POOL_OFFSETS = (200, 220)  # .200-.220: MetalLB pool (the blackhole next hop is the subnet's last address)

# Lab nodes are containers sharing this machine's CPUs, memory, disk and clock (no NTP source behind the gap):
# the preflight role's production minima are lowered for the lab only.
LAB_VARS = {
    "medai_preflight_min_cpus": {"servers": 1, "agents": 1},
    "medai_preflight_min_memory_mb": {"servers": 256, "agents": 256},
    "medai_preflight_min_disk_gb": {"servers": 1, "agents": 1},
    "medai_preflight_require_time_sync": False,
    "medai_preflight_gpu_require_device": False,  # lab "GPU" nodes are containers without an NVIDIA device
}

# Throwaway lab nodes get fresh host keys on every `lab up`: host key checking is off for the lab only.
LAB_SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def render_inventory(lab: Lab, *, cluster_name: str = "medai-lab", bundle_dir: str | Path | None = None,
                     extra_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    vip = lab.address(API_VIP_OFFSET)
    site: dict[str, Any] = {
        "medai_cluster_name": cluster_name,
        "medai_keycloak_hostname": f"keycloak.{cluster_name}.lab",
        "medai_api_vip": vip,
        "medai_tls_san": [vip, *(n.hostname for n in lab.servers)],
        "medai_metallb_pool": f"{lab.address(POOL_OFFSETS[0])}-{lab.address(POOL_OFFSETS[1])}",
        "medai_ssh_host_key_checking": False,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": lab.ssh_key,
        "ansible_ssh_common_args": LAB_SSH_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
        # a lab node's evaluation takes ~15 s: a hung oscap is killed and retried well before a CI limit
        "medai_compliance_oscap_timeout": 300,
    }
    if bundle_dir is not None:
        site["medai_bundle_dir"] = str(bundle_dir)
    site.update(LAB_VARS)
    site.update(extra_vars or {})

    def hosts(nodes) -> dict[str, Any]:
        return {n.hostname: {"ansible_host": n.ip} for n in nodes}

    return {"all": {"vars": site, "children": {
        "servers": {"hosts": hosts(lab.servers)},
        "agents": {"hosts": hosts(lab.agents)},
        "gpu": {"hosts": {n.hostname: {} for n in lab.gpu}},
    }}}


def write_inventory(lab: Lab, path: str | Path, **kwargs: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# medai lab {lab.lab_id}: podman nodes on internal network {lab.network} ({lab.subnet}).\n"
              f"# Written by `medai lab up`; removed by `medai lab down`.\n")
    path.write_text(header + yaml.safe_dump(render_inventory(lab, **kwargs), sort_keys=False))
    return path
