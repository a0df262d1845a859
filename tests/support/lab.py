"""Lab fixtures: real podman nodes (systemd, sshd) on a fresh `--internal` network per lab.

    def test_x(lab_nodes, tmp_path):
        lab = lab_nodes(servers=1, agents=2)          # started, SSH-ready; torn down at session end
        inv = lab.inventory(tmp_path / "site.yml")   # site inventory in installer/deploy's format
        node = lab.nodes[0]                          # .name .hostname .ip .ssh_key .role .gpu .groups
        assert node_exec(node, "systemctl is-active ssh").stdout.strip() == "active"

Each lab gets a random id (`ml1a2b3c`) prefixing its network and containers, so parallel sessions never collide.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from installer.lab import nodes as lab_nodes_mod
from installer.lab.image import NODE_IMAGE, build_image
from installer.lab.inventory import write_inventory
from installer.lab.podman import podman_env

Lab = lab_nodes_mod.Lab
LabNode = lab_nodes_mod.LabNode


def node_exec(node: LabNode | str, cmd: str, *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `sh -c cmd` in a node via `podman exec` (no SSH involved); text output; raises on non-zero if check."""
    name = node if isinstance(node, str) else node.name
    proc = subprocess.run(["podman", "exec", name, "sh", "-c", cmd], env=podman_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name}: `{cmd}` exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def node_ssh(node: LabNode, cmd: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command on a node over SSH from the control host, as Ansible does."""
    proc = subprocess.run(lab_nodes_mod.ssh_argv(node, cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ssh {node.hostname}: `{cmd}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


class TestLab:
    """A running lab plus helpers; attribute access falls through to installer.lab.nodes.Lab."""

    def __init__(self, lab: Lab):
        self.lab = lab

    def __getattr__(self, item: str) -> Any:
        return getattr(self.lab, item)

    def inventory(self, path: str | Path, **kwargs: Any) -> Path:
        """Write the lab's site inventory (kwargs: cluster_name, bundle_dir, extra_vars) and return its path."""
        return write_inventory(self.lab, path, **kwargs)

    def destroy(self) -> None:
        lab_nodes_mod.destroy_lab(self.lab)


TestLab.__test__ = False  # not a pytest test class


@pytest.fixture(scope="session")
def lab_image() -> str:
    """The node image (localhost/medai-node:bookworm); built with mmdebstrap only if missing."""
    return build_image(NODE_IMAGE)


@pytest.fixture(scope="session")
def lab_nodes(lab_image, tmp_path_factory) -> Callable[..., TestLab]:
    """Factory: lab_nodes(servers=1, agents=0, gpu_agents=0) -> TestLab. Every lab is removed at session end;
    call lab.destroy() earlier to free the machine (2 shared cores) when a module is done with it."""
    key_dir = tmp_path_factory.mktemp("lab-ssh")
    started: list[TestLab] = []

    def start(servers: int = 1, agents: int = 0, gpu_agents: int = 0) -> TestLab:
        lab = TestLab(lab_nodes_mod.create_lab(servers=servers, agents=agents, gpu_agents=gpu_agents,
                                               key_dir=key_dir, image=lab_image))
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.destroy()


# The lab's nodes are small containers that share the host clock and have no NTP source behind the gap.
LAB_VARS = {
    "medai_preflight_min_cpus": {"servers": 1, "agents": 1},
    "medai_preflight_min_memory_mb": {"servers": 256, "agents": 256},
    "medai_preflight_min_disk_gb": {"servers": 1, "agents": 1},
    "medai_preflight_require_time_sync": False,
    # nodes share the CI host's kernel and have no /lib/modules: br_netfilter is the host's (not loaded on CI)
    "medai_preflight_kernel_modules": ["overlay"],
    # these runs skip the os role, so the nodes have no nftables: the ledger (on by default) would refuse them,
    # which test_refusals checks once; the ledger in a whole install is tests/deploy/test_install_egress_lab.py
    "medai_egress_ledger": False,
    # nor open-iscsi and nfs-common: no host is a Longhorn storage node in these runs (its prerequisites run in
    # tests/deploy/test_reset_lab.py, the Molecule scenario and `medai lab demo`, whose bundles carry them)
    "medai_longhorn_storage": False,
}
