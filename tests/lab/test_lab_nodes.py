"""Lab nodes for real: systemd boots, SSH from the host works, the air gap holds, the inventory parses."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from installer.deploy.inventory import load_inventory
from tests.support.lab import node_exec, node_ssh

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(lab_nodes):
    lab = lab_nodes(servers=1, agents=1, gpu_agents=1)
    yield lab
    lab.destroy()


def test_nodes_boot_systemd_and_answer_ssh_from_the_host(lab):
    for node in lab.nodes:
        assert node_exec(node, "systemctl is-system-running").stdout.strip() == "running"
        # over SSH on the internal-network address, as Ansible will connect
        out = node_ssh(node, "hostname; hostname -I; systemctl is-active ssh").stdout.split()
        assert out == [node.hostname, node.ip, "active"]
    # nodes resolve each other by inventory name
    assert node_exec(lab.agents[0], "getent hosts server-1").stdout.split()[0] == lab.servers[0].ip
    # each node has its own SSH host key, not the image's
    keys = {node_exec(n, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for n in lab.nodes}
    assert len(keys) == len(lab.nodes)


def test_air_gap_no_route_leaves_the_lab_subnet(lab):
    node = lab.servers[0]
    # the default route K3s needs points at an address nothing owns inside the lab subnet
    routes = node_exec(node, "ip -j route show").stdout
    default = [r for r in json.loads(routes) if r["dst"] == "default"]
    assert default == [{"dst": "default", "gateway": lab.blackhole_hop, "dev": "eth0", "flags": []}]
    got = node_exec(node, "ip -j route get 198.51.100.7").stdout  # TEST-NET-2: documentation-only address
    assert json.loads(got)[0]["gateway"] == lab.blackhole_hop
    # one bounded connect (2 s): it dies at ARP on the lab bridge, nothing answers for the next hop
    probe = ("python3 -c \"import socket\ntry:\n socket.create_connection(('198.51.100.7', 443), timeout=2)\n"
             " print('CONNECTED')\nexcept OSError as e:\n print('FAILED', e)\"")
    assert node_exec(node, probe, timeout=20).stdout.startswith("FAILED")
    neigh = node_exec(node, f"ip neigh show {lab.blackhole_hop}").stdout
    assert "lladdr" not in neigh and ("INCOMPLETE" in neigh or "FAILED" in neigh)  # no one owns the next hop
    # even via the host's bridge address the host forwards nothing: our DROP rules sit on the bridge
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert f"-i {lab.bridge} -m comment --comment \"medai.lab={lab.lab_id}\" -j DROP" in rules
    assert f"-o {lab.bridge} -m comment --comment \"medai.lab={lab.lab_id}\" -j DROP" in rules


def test_inventory_matches_the_site_format_and_ansible_reads_it(lab, tmp_path):
    path = lab.inventory(tmp_path / "site.yml", bundle_dir="/srv/bundle")
    inv = load_inventory(path)  # deploy's own checks (groups, pool overlap, VIP) pass on the lab inventory
    assert inv.servers == ["server-1"] and inv.agents == ["agent-1", "gpu-1"] and inv.gpu == ["gpu-1"]
    assert inv.site.medai_bundle_dir == "/srv/bundle" and inv.site.medai_ssh_host_key_checking is False
    out = subprocess.run(["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert sorted(data["gpu"]["hosts"]) == ["gpu-1"]
    hv = data["_meta"]["hostvars"]["server-1"]
    assert hv["ansible_host"] == lab.servers[0].ip and hv["ansible_user"] == "root"
    assert yaml.safe_load(path.read_text())["all"]["vars"]["ansible_ssh_private_key_file"] == lab.ssh_key


def test_ansible_reaches_every_node_over_ssh(lab, tmp_path):
    path = lab.inventory(tmp_path / "site.yml")
    proc = subprocess.run(["ansible", "-i", str(path), "all", "-m", "ansible.builtin.ping", "-o"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 3
