"""The egress ledger's rules (roles/egress/templates/egress.nft.j2) loaded for real by nft into a network
namespace this test creates, with a veth pair to a second namespace it also creates: packets to the address the
test owns there are counted per destination when it is outside the allowed networks, and not when it is inside.
Nothing leaves this machine's own namespaces. Needs root, nft and ip (skipped otherwise, saying so)."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import jinja2
import pytest

from installer.deploy.egress import failure_line, ledger

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                                reason="needs root, nft and ip to create network namespaces: egress rules not executed")


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def netns():
    tag = uuid.uuid4().hex[:6]
    a, b = f"medai-eg-a-{tag}", f"medai-eg-b-{tag}"
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "-n", a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b)
        sh("ip", "-n", a, "addr", "add", "192.0.2.1/30", "dev", "veth-a")
        sh("ip", "-n", b, "addr", "add", "192.0.2.2/30", "dev", "veth-b")
        for ns, dev in ((a, "veth-a"), (b, "veth-b")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield a
    finally:
        sh("ip", "netns", "del", a, check=False)
        sh("ip", "netns", "del", b, check=False)


def _rules(tmp_path, allow):
    import yaml
    defaults = yaml.safe_load((ROOT / "roles" / "egress" / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    text = env.from_string((ROOT / "roles" / "egress" / "templates" / "egress.nft.j2").read_text()).render(
        medai_egress_table=defaults["medai_egress_table"], medai_egress_log_prefix=defaults["medai_egress_log_prefix"],
        medai_egress_local=defaults["medai_egress_local"], medai_egress_cluster_cidrs=["10.42.0.0/16", "10.43.0.0/16"],
        medai_egress_node_subnets=["198.51.100.0/24"], medai_egress_allow=allow, medai_egress_node_addresses=["198.51.100.11"])
    p = tmp_path / "egress.nft"
    p.write_text(text)
    return p


def _send(ns, n):
    code = ("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for i in range({n}): s.sendto(b'medai egress test', ('192.0.2.2', 9))")
    sh("ip", "netns", "exec", ns, "python3", "-c", code)


def _ledger(ns):
    return ledger(sh("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "medai_egress").stdout)


def test_packets_outside_the_allowed_networks_are_counted_per_destination(netns, tmp_path):
    sh("ip", "netns", "exec", netns, "nft", "-f", str(_rules(tmp_path, allow=[])))
    _send(netns, 3)
    entries = _ledger(netns)
    assert [(e["address"], e["packets"]) for e in entries] == [("192.0.2.2", 3)]
    assert failure_line("k3s-srv-1", entries).startswith(
        "egress: k3s-srv-1 sent packets outside the cluster, node and allowed networks: 192.0.2.2: 3 packet(s)")


def test_allowed_destinations_are_not_counted_and_a_reload_is_clean(netns, tmp_path):
    rules = _rules(tmp_path, allow=["192.0.2.0/30"])
    sh("ip", "netns", "exec", netns, "nft", "-f", str(rules))
    sh("ip", "netns", "exec", netns, "nft", "-f", str(rules))  # the file replaces its own table: reloadable
    _send(netns, 2)
    assert _ledger(netns) == [] and failure_line("k3s-srv-1", []) is None
    sh("ip", "netns", "exec", netns, "nft", "delete", "table", "inet", "medai_egress")
    assert "medai_egress" not in sh("ip", "netns", "exec", netns, "nft", "list", "tables").stdout
