"""`medai lab` for real: podman nodes booting systemd on an --internal network, SSH from the host, no route out,
an inventory Ansible and `medai inventory check` accept; and the `lab_nodes` fixture other areas use."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from installer.deploy.inventory import load_inventory
from installer.lab.nodes import Lab
from tests.support.lab import node_exec, node_ssh

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def medai(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "medai"), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MEDAI_HOME": str(home), "COLUMNS": "200"})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def cli_lab(tmp_path_factory, lab_image):
    home = tmp_path_factory.mktemp("medai-home")
    medai(home, "lab", "up", "--servers", "1", "--agents", "1", "--gpu-agents", "1")
    lab = Lab.load(home / "lab" / "lab.json")
    try:
        yield home, lab
    finally:
        medai(home, "lab", "down", check=False)


def test_lab_up_writes_key_state_and_inventory(cli_lab):
    home, lab = cli_lab
    key = home / "lab" / "id_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and lab.ssh_key == str(key)
    inv = load_inventory(home / "lab" / "site.yml")  # the deploy area's own checks accept it
    assert inv.servers == ["server-1"] and inv.agents == ["agent-1", "gpu-1"] and inv.gpu == ["gpu-1"]
    assert inv.site.medai_ssh_host_key_checking is False and inv.api_address == lab.address(100)
    out = subprocess.run(["ansible-inventory", "-i", str(home / "lab" / "site.yml"), "--list"],
                         capture_output=True, text=True, check=True)
    hv = json.loads(out.stdout)["_meta"]["hostvars"]
    assert {h: v["ansible_host"] for h, v in hv.items()} == {n.hostname: n.ip for n in lab.nodes}
    assert all(v["ansible_user"] == "root" and v["ansible_ssh_private_key_file"] == str(key) for v in hv.values())
    # a second `up` with the same shape keeps the lab; another shape is refused with one line
    assert "already up" in medai(home, "lab", "up", "--servers", "1", "--agents", "1", "--gpu-agents", "1").stdout
    bad = medai(home, "lab", "up", "--servers", "1", "--agents", "3", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "lab down" in bad.stderr


def test_even_server_count_is_refused_before_anything_starts(tmp_path):
    proc = medai(tmp_path, "lab", "up", "--servers", "2", check=False)
    assert proc.returncode == 2 and "--servers 2" in proc.stderr
    assert not (tmp_path / "lab" / "lab.json").exists()


def test_nodes_boot_systemd_and_answer_ssh_from_the_host(cli_lab):
    _, lab = cli_lab
    for node in lab.nodes:
        assert node_exec(node, "systemctl is-system-running").stdout.strip() == "running"
        out = node_ssh(node, "hostname; hostname -I; systemctl is-active ssh").stdout.split()
        assert out == [node.hostname, node.ip, "active"]
    assert node_exec(lab.agents[0], "getent hosts server-1").stdout.split()[0] == lab.servers[0].ip
    keys = {node_exec(n, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for n in lab.nodes}
    assert len(keys) == len(lab.nodes), "each node must have its own SSH host key"
    status = medai(cli_lab[0], "lab", "status").stdout
    assert status.count(" ok") == len(lab.nodes) and "unreachable" not in status


def test_air_gap_no_route_leaves_the_lab_subnet(cli_lab):
    _, lab = cli_lab
    node = lab.servers[0]
    # the default route K3s needs points at an address nothing owns, inside the lab subnet
    default = [r for r in json.loads(node_exec(node, "ip -j route show").stdout) if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in default] == [(lab.blackhole_hop, "eth0")]
    assert json.loads(node_exec(node, "ip -j route get 198.51.100.7").stdout)[0]["gateway"] == lab.blackhole_hop
    # one bounded (2 s) connect to a TEST-NET-2 address: it dies at ARP on the lab bridge
    probe = ("python3 -c \"import socket\ntry:\n socket.create_connection(('198.51.100.7', 443), timeout=2)\n"
             " print('CONNECTED')\nexcept OSError as e:\n print('FAILED', e)\"")
    assert node_exec(node, probe, timeout=20).stdout.startswith("FAILED")
    neigh = node_exec(node, f"ip neigh show {lab.blackhole_hop}").stdout
    assert "lladdr" not in neigh and ("INCOMPLETE" in neigh or "FAILED" in neigh)
    # the host's address on the bridge is not a way out either: it routes nothing in or out of the bridge
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    tag = f'-m comment --comment "medai.lab={lab.lab_id}" -j DROP'
    assert f"-i {lab.bridge} ! -o {lab.bridge} {tag}" in rules and f"! -i {lab.bridge} -o {lab.bridge} {tag}" in rules


def test_nodes_reach_each_other_on_the_lab_network(cli_lab):
    """K3s agents join servers over the bridge: node-to-node traffic must flow (bridge netfilter included)."""
    _, lab = cli_lab
    probe = ("python3 -c \"import socket\ns = socket.create_connection(('server-1', 22), timeout=3)\n"
             "print(s.recv(64).decode().strip())\"")
    for node in lab.agents:
        assert node_exec(node, probe, timeout=20).stdout.startswith("SSH-2.0-OpenSSH")


def test_ansible_reaches_every_node_over_ssh(cli_lab):
    home, lab = cli_lab
    proc = subprocess.run(["ansible", "-i", str(home / "lab" / "site.yml"), "all", "-m", "ansible.builtin.ping", "-o"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(lab.nodes)


def test_lab_down_removes_everything(tmp_path_factory, lab_image):
    home = tmp_path_factory.mktemp("medai-home-down")
    medai(home, "lab", "up", "--agents", "0")
    lab = Lab.load(home / "lab" / "lab.json")
    medai(home, "lab", "down")
    assert not (home / "lab" / "site.yml").exists() and not (home / "lab" / "lab.json").exists()
    ps = subprocess.run(["podman", "ps", "-a", "--filter", f"label=medai.lab={lab.lab_id}", "-q"],
                        capture_output=True, text=True, check=True)
    assert ps.stdout.strip() == ""
    assert subprocess.run(["podman", "network", "exists", lab.network]).returncode == 1
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert lab.lab_id not in rules
    assert medai(home, "lab", "status", check=False).returncode == 1


def test_lab_nodes_fixture_gives_ssh_ready_nodes_and_an_inventory(lab_nodes, tmp_path):
    lab = lab_nodes(servers=1)
    try:
        node = lab.servers[0]
        assert node.name.startswith(lab.lab_id) and node.groups == ["servers"]
        assert node_ssh(node, "id -u").stdout.strip() == "0"
        assert node_exec(node, "false", check=False).returncode == 1
        inv = yaml.safe_load(lab.inventory(tmp_path / "site.yml", bundle_dir="/srv/b").read_text())
        assert inv["all"]["vars"]["medai_bundle_dir"] == "/srv/b"
        assert inv["all"]["children"]["servers"]["hosts"] == {"server-1": {"ansible_host": node.ip}}
    finally:
        lab.destroy()
