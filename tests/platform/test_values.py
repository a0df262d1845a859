"""Site values: role defaults, the inventory over them, computed defaults, refusals naming the inventory var."""
from __future__ import annotations

import pytest
import yaml

from installer.core.errors import InventoryError
from installer.deploy.inventory import load_inventory
from installer.platform.components import BY_NAME
from installer.platform.values import release_values, role_vars, site_objects, site_values
from tests.support.fixture_charts import ROOT

EXAMPLE = ROOT / "inventories" / "example" / "site.yml"


def _inv(tmp_path, **site_vars):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["all"]["vars"].update(site_vars)
    p = tmp_path / "site.yml"
    p.write_text(yaml.safe_dump(doc))
    return load_inventory(p)


def _single(tmp_path, **site_vars):
    doc = {"all": {"vars": {"medai_cluster_name": "lab",
                            "medai_keycloak_hostname": "keycloak.example.internal", "medai_metallb_pool": "10.9.0.200/29", **site_vars},
                   "children": {"servers": {"hosts": {"s1": {"ansible_host": "10.9.0.11"}}},
                                "agents": {"hosts": {"a1": {"ansible_host": "10.9.0.21", "medai_longhorn_storage": False}}}}}}
    p = tmp_path / "one.yml"
    p.write_text(yaml.safe_dump(doc))
    return load_inventory(p)


def test_example_defaults(tmp_path):
    inv = _inv(tmp_path)
    c = site_values("cilium", inv)
    # K3s's node-local API endpoint: the API server itself on servers, K3s's load balancer on agents
    assert (c["k8sServiceHost"], c["k8sServicePort"]) == ("127.0.0.1", 6444) and c["operator"] == {"replicas": 2}
    assert c["ipam"] == {"mode": "kubernetes"} and c["policyCIDRMatchMode"] == ["nodes"]
    assert site_values("longhorn", inv)["defaultSettings"]["defaultReplicaCount"] == 3
    metallb = site_values("metallb", inv)
    assert (metallb["speaker"]["frr"], metallb["frrk8s"]) == ({"enabled": False}, {"enabled": False})
    assert metallb["speaker"]["tolerations"] == [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    assert metallb["controller"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    nfd = site_values("nvidia-device-plugin", inv)["nfd"]["worker"]
    assert {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in nfd["tolerations"]


def test_single_server_without_vip_and_storage_opt_out(tmp_path):
    inv = _single(tmp_path)
    c = site_values("cilium", inv)
    assert (c["k8sServiceHost"], c["k8sServicePort"]) == ("127.0.0.1", 6444) and c["operator"] == {"replicas": 1}
    assert site_values("longhorn", inv)["persistence"]["defaultClassReplicaCount"] == 1  # a1 opted out


def test_inventory_overrides(tmp_path):
    inv = _inv(tmp_path, medai_longhorn_replicas=2, medai_cilium_kube_proxy_replacement=False,
               medai_longhorn_node_drain_policy="block-for-eviction")
    assert site_values("longhorn", inv)["defaultSettings"] == {"defaultReplicaCount": 2, "nodeDrainPolicy": "block-for-eviction",
                                                               "taintToleration": "gpu=true:NoSchedule"}
    assert site_values("cilium", inv)["kubeProxyReplacement"] is False


@pytest.mark.parametrize("var,value,msg", [
    ("medai_longhorn_replicas", 3, r"all.vars.medai_longhorn_replicas: 3 replicas but only 1 storage node\(s\)"),
    ("medai_longhorn_replicas", "two", r"'two' must be a positive integer"),
    ("medai_longhorn_node_drain_policy", "yolo", r"'yolo' is not one of"),
    ("medai_cilium_operator_replicas", 0, r"all.vars.medai_cilium_operator_replicas: 0 must be a positive integer"),
])
def test_refusals_name_file_and_var(tmp_path, var, value, msg):
    inv = _single(tmp_path, **{var: value})
    with pytest.raises(InventoryError, match=msg) as e:
        role_vars(var.split("_")[1], inv)
    assert str(e.value).startswith(str(inv.path))


def test_bundle_values_are_kept_and_site_values_win(tmp_path):
    from installer.bundle.manifest import Chart
    chart = Chart(name="cilium", version="1.18.0", repo="https://x.example",
                  values={"envoy": {"enabled": True}, "operator": {"replicas": 9, "prometheus": {"enabled": True}}})
    v = release_values(chart, _inv(tmp_path))
    assert v["envoy"] == {"enabled": True}
    assert v["operator"] == {"replicas": 2, "prometheus": {"enabled": True}}


def test_metallb_pool_objects(tmp_path):
    inv = _single(tmp_path)
    pool, adv = site_objects("metallb", "metallb", inv, "metallb-system")[:2]
    assert pool["spec"] == {"addresses": ["10.9.0.200/29"]} and adv["spec"] == {"ipAddressPools": ["medai-site"]}


def test_network_policies_are_rendered_from_the_declared_flows(tmp_path):
    from installer.platform.flows import policies
    from installer.platform.site_flows import declared
    from installer.render.validate import validate_object
    inv = _inv(tmp_path)
    objs = policies(declared(inv), "longhorn-system", inv)
    by_name = {o["metadata"]["name"]: o for o in objs}
    deny = by_name["medai-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}  # no rule: everything denied
    egress = by_name["medai-egress-all"]["spec"]["egress"]
    api = next(r for r in egress if r["ports"] == [{"protocol": "TCP", "port": 6443}])
    assert {b["ipBlock"]["cidr"] for b in api["to"]} == {f"10.20.0.{n}/32" for n in (11, 12, 13, 21, 22)}
    ingress = by_name["medai-ingress-all"]["spec"]["ingress"]
    assert {(r["ports"][0]["port"], r["ports"][0].get("endPort")) for r in ingress} >= {(3260, None), (2049, None),
                                                                                        (10000, 30000)}
    for o in objs:
        assert validate_object("longhorn", o, "1.34.2", {}) == "core"
    assert site_objects("cilium", "cilium", inv, "kube-system") == []
    assert policies(declared(inv), "kube-system", inv) == []  # kube-system: only egress rules of others reach it


@pytest.mark.parametrize("component", sorted(BY_NAME))
def test_every_component_variable_is_documented_and_prefixed(component):
    doc = (ROOT / "docs" / "platform.md").read_text()
    names = BY_NAME[component].DEFAULTS
    assert all(n.startswith(f"medai_{component}_") for n in names)
    generic = "`medai_<component>_release_timeout`" in doc and f"{component} " in doc.split("_release_timeout`", 1)[1]
    assert [n for n in names if f"`{n}`" not in doc and not (n.endswith("_release_timeout") and generic)] == []


def test_vault_replicas_are_computed_from_the_node_count(tmp_path):
    """3 Raft replicas on the 5-node example (its three servers), 1 on a 2-node site; GPU agents do not count (Vault
    does not tolerate their taint, and its pods keep apart)."""
    big, small = _inv(tmp_path), _single(tmp_path)
    assert site_values("vault", big)["server"]["ha"]["replicas"] == 3
    assert site_values("vault", small)["server"]["ha"]["replicas"] == 1
    doc = {"all": {"vars": {"medai_cluster_name": "g", "medai_keycloak_hostname": "keycloak.example.internal",
                            "medai_metallb_pool": "10.9.0.200/29"},
                   "children": {"servers": {"hosts": {"s1": {"ansible_host": "10.9.0.11"}}},
                                "agents": {"hosts": {"c1": {"ansible_host": "10.9.0.21"}, "g1": {"ansible_host": "10.9.0.22"}}},
                                "gpu": {"hosts": {"g1": {}}}}}}
    p = tmp_path / "gpu.yml"
    p.write_text(yaml.safe_dump(doc))
    gpu = load_inventory(p)
    assert site_values("vault", gpu)["server"]["ha"]["replicas"] == 1  # 2 nodes without the taint
    with pytest.raises(InventoryError, match="3 replicas but only 2 node"):
        role_vars("vault", _single(tmp_path, medai_vault_replicas=3))


def test_keycloakx_chart_takes_the_keycloak_roles_values(tmp_path):
    values = site_values("keycloakx", _inv(tmp_path))
    assert values["command"][-1] == "start" and "start-dev" not in values["command"] + values["args"]


def test_the_flow_table_in_the_docs_is_the_example_sites_declared_flows():
    """docs/platform.md, "Network flows": one row per flow the example site declares, and no other row."""
    from installer.platform.site_flows import declared
    pods = lambda p: ", ".join(f"{k}={v}" for k, v in p.items()) or "any"  # noqa: E731
    rows = [f"| {f.src_namespace} | {f.dst_namespace} | {f.protocol} {f.port}{f'-{f.end_port}' if f.end_port else ''} "
            f"| {pods(f.src_pods)} | {pods(f.dst_pods)} | {f.why} |" for f in declared(load_inventory(EXAMPLE))]
    doc = (ROOT / "docs" / "platform.md").read_text()
    table = doc.split("## Network flows", 1)[1].split("| from | to | port |", 1)[1].split("\n\n", 1)[0]
    assert table.splitlines()[2:] == rows
