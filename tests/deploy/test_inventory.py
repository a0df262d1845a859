"""medai inventory check: every rule, every problem on its own line, nothing contacted."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from installer.core.errors import InventoryError
from installer.deploy.inventory import AddressPool, load_inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example" / "site.yml"


def site(servers=("s1", "s2", "s3"), agents=("a1", "a2"), gpu=("a1",), vars_=None, extra_children=None):
    ip = {f"s{i}": f"10.0.0.{10 + i}" for i in range(1, 8)} | {f"a{i}": f"10.0.0.{20 + i}" for i in range(1, 8)}
    v = {"medai_cluster_name": "lab",
         "medai_keycloak_hostname": "keycloak.example.internal", "medai_api_vip": "10.0.0.5", "medai_metallb_pool": "10.0.0.200-10.0.0.220"}
    v.update(vars_ or {})
    doc = {"all": {"vars": {k: val for k, val in v.items() if val is not None}, "children": {
        "servers": {"hosts": {s: {"ansible_host": ip[s]} for s in servers}},
        "agents": {"hosts": {a: {"ansible_host": ip[a]} for a in agents}},
        "gpu": {"hosts": {g: {} for g in gpu}},
    }}}
    doc["all"]["children"].update(extra_children or {})
    return doc


def write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "site.yml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def problems(tmp_path: Path, doc) -> list[str]:
    with pytest.raises(InventoryError) as e:
        load_inventory(write(tmp_path, doc))
    lines = str(e.value).splitlines()
    assert all(line.startswith(str(tmp_path / "site.yml") + ": ") for line in lines)
    return lines


def test_example_inventory_is_valid():
    inv = load_inventory(EXAMPLE)
    assert inv.servers == ["k3s-srv-1", "k3s-srv-2", "k3s-srv-3"]
    assert inv.gpu == ["gpu-node-1", "gpu-node-2"] and set(inv.gpu) <= set(inv.agents)
    assert inv.api_address == "10.20.0.11"  # no VIP the site holds: the first server
    assert inv.hosts["gpu-node-1"].groups == ["agents", "gpu"]


def test_valid_single_server_without_vip_uses_first_server(tmp_path):
    inv = load_inventory(write(tmp_path, site(servers=("s1",), vars_={"medai_api_vip": None})))
    assert inv.api_address == "10.0.0.11" and inv.cluster == "lab"


@pytest.mark.parametrize("servers", [("s1", "s2"), ("s1", "s2", "s3", "s4")])
def test_even_number_of_servers(tmp_path, servers):
    (line,) = problems(tmp_path, site(servers=servers))
    assert f"servers: {len(servers)} servers" in line and "odd" in line


def test_no_servers(tmp_path):
    (line,) = problems(tmp_path, site(servers=()))
    assert "servers: no servers" in line


def test_host_in_two_role_groups(tmp_path):
    doc = site()
    doc["all"]["children"]["agents"]["hosts"]["s1"] = {"ansible_host": "10.0.0.11"}
    assert any("agents.s1: host is in both servers and agents" in p for p in problems(tmp_path, doc))


def test_duplicate_address(tmp_path):
    doc = site()
    doc["all"]["children"]["agents"]["hosts"]["a2"]["ansible_host"] = "10.0.0.21"
    (line,) = problems(tmp_path, doc)
    assert "agents.a2.ansible_host: address 10.0.0.21 is also used by a1" in line


def test_gpu_host_not_an_agent(tmp_path):
    (line,) = problems(tmp_path, site(gpu=("s1",)))
    assert "gpu.s1: gpu host is not in agents" in line


def test_unknown_group_and_ungrouped_host(tmp_path):
    doc = site(extra_children={"workers": {"hosts": {"w1": {}}}})
    doc["all"]["hosts"] = {"stray": {}}
    lines = problems(tmp_path, doc)
    assert any("all.children.workers: unknown group" in p for p in lines)
    assert any("all.hosts.stray: host is in no group" in p for p in lines)


def test_metallb_pool_overlaps_node_and_vip(tmp_path):
    lines = problems(tmp_path, site(vars_={"medai_metallb_pool": "10.0.0.0/27"}))
    assert any("servers.s1.ansible_host: 10.0.0.11 lies inside medai_metallb_pool 10.0.0.0/27" in p for p in lines)
    assert any("agents.a2.ansible_host: 10.0.0.22 lies inside" in p for p in lines)
    assert any("all.vars.medai_api_vip: 10.0.0.5 lies inside" in p for p in lines)
    assert len(lines) == 6  # 3 servers + 2 agents + VIP


def test_vip_equal_to_node_address(tmp_path):
    (line,) = problems(tmp_path, site(vars_={"medai_api_vip": "10.0.0.12"}))
    assert "servers.s2.ansible_host: 10.0.0.12 is the API VIP" in line


def test_missing_and_malformed_vars_all_reported(tmp_path):
    doc = site(vars_={"medai_cluster_name": None, "medai_metallb_pool": "10.0.0.300-x", "medai_api_vip": None})
    lines = problems(tmp_path, doc)
    assert any("all.vars.medai_cluster_name: required site var is missing" in p for p in lines)
    assert any("all.vars.medai_metallb_pool: '10.0.0.300-x' is not a CIDR or FIRST-LAST" in p for p in lines)
    assert len(lines) == 2


def test_three_servers_without_vip_give_the_control_host_the_first_server(tmp_path):
    """Nothing on the nodes holds a VIP: the nodes use K3s's 127.0.0.1:6444, the control host the first server."""
    inv = load_inventory(write(tmp_path, site(vars_={"medai_api_vip": None})))
    assert inv.api_address == "10.0.0.11" and len(inv.servers) == 3


def test_every_problem_reported_at_once(tmp_path):
    doc = site(servers=("s1", "s2"), gpu=("s1",), vars_={"medai_cluster_name": "Bad_Name",
                                                         "medai_keycloak_hostname": "keycloak.example.internal",
                                                         "medai_metallb_pool": "10.0.0.0/27"},
               extra_children={"etcd": {"hosts": {}}})
    lines = problems(tmp_path, doc)
    for needle in ("servers: 2 servers", "gpu.s1", "all.children.etcd", "all.vars.medai_cluster_name"):
        assert any(needle in p for p in lines), needle


def test_not_yaml_and_not_inventory(tmp_path):
    with pytest.raises(InventoryError, match=r"line \d+: not valid YAML"):
        load_inventory(write(tmp_path, "all: [unclosed\n"))
    with pytest.raises(InventoryError, match="must start with an 'all' mapping"):
        load_inventory(write(tmp_path, "- a\n"))
    with pytest.raises(InventoryError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yml")


def test_address_pool_forms():
    import ipaddress
    assert ipaddress.ip_address("10.1.0.7") in AddressPool("10.1.0.0/29")
    assert ipaddress.ip_address("10.1.0.8") not in AddressPool("10.1.0.0/29")
    assert ipaddress.ip_address("10.1.0.9") in AddressPool("10.1.0.5 - 10.1.0.9")
    with pytest.raises(ValueError):
        AddressPool("10.1.0.9-10.1.0.5")


def test_cli_prints_each_problem_on_one_line_and_exits_nonzero(tmp_path):
    p = write(tmp_path, site(servers=("s1", "s2"), gpu=("s1",)))
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "inventory", "check", str(p)],
                       capture_output=True, text=True, cwd=ROOT, env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errs) == 2 and "2 problem(s)" in r.stderr
    ok = subprocess.run([sys.executable, "-m", "installer.cli.main", "inventory", "check", str(EXAMPLE)],
                        capture_output=True, text=True, cwd=ROOT, env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0 and "3 server(s), 2 agent(s)" in ok.stdout


def test_cli_refuses_an_inventory_without_the_keycloak_host_name(tmp_path):
    p = write(tmp_path, site(vars_={"medai_keycloak_hostname": None}))
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "inventory", "check", str(p)],
                       capture_output=True, text=True, cwd=ROOT, env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errs == [f"error: {p}: all.vars.medai_keycloak_hostname: required site var is missing"]


@pytest.mark.parametrize("name", ["https://keycloak.site", "keycloak", "10.0.0.9", "key cloak.site"])
def test_keycloak_host_name_must_be_a_fully_qualified_name(tmp_path, name):
    (line,) = problems(tmp_path, site(vars_={"medai_keycloak_hostname": name}))
    assert f"all.vars.medai_keycloak_hostname: {name!r} must be a fully qualified host name" in line


@pytest.mark.parametrize("bad", ['10.0.0.9"; touch /tmp/pwned; "', "$(reboot)", "host name", "a\nserver: evil", "-oProxyCommand=x"])
def test_ansible_host_must_be_an_address_or_a_host_name(tmp_path, bad):
    """Ansible_host lands in K3s's config.yaml (server:, tls-san) and on SSH command lines."""
    doc = site()
    doc["all"]["children"]["agents"]["hosts"]["a2"]["ansible_host"] = bad
    (line,) = problems(tmp_path, doc)
    assert "agents.a2.ansible_host:" in line and "neither an IP address nor a host name" in line


@pytest.mark.parametrize("good", ["10.0.0.99", "fd00::99", "node-7.site.example"])
def test_addresses_and_host_names_are_accepted(tmp_path, good):
    doc = site()
    doc["all"]["children"]["agents"]["hosts"]["a2"]["ansible_host"] = good
    assert load_inventory(write(tmp_path, doc)).hosts
