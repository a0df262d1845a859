"""Each coherence check (installer/platform/coherence) on a small hand-written render: a coherent two-namespace
site passes every check, and each mutation (a Service port removed, a Secret misspelt, a toleration dropped, a
hostPath in a restricted namespace, an allow rule deleted, a flow nobody declared, a certificate name dropped, a
second default StorageClass, a container without requests) fails, naming the object."""
from __future__ import annotations

import copy

import pytest
import yaml

from installer.deploy.inventory import load_inventory
from installer.platform.coherence import Certificate, CoherenceError, Outside, check_site
from installer.platform.coherence.network import minus
from installer.platform.flows import NODES, Flow
from installer.platform.render import Release, SiteRender
from installer.render.gate import ImagePlan
from installer.render.netpol import Connections

RESTRICTED_SC = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                 "seccompProfile": {"type": "RuntimeDefault"}}
REQUESTS = {"requests": {"cpu": "10m", "memory": "16Mi"}}


def _inventory(tmp_path, gpu: bool = True, disable=None):
    hosts = {"servers": {"hosts": {"srv-1": {"ansible_host": "10.9.0.11"}}},
             "agents": {"hosts": {"gpu-1": {"ansible_host": "10.9.0.21"}} if gpu else {}}}
    if gpu:
        hosts["gpu"] = {"hosts": {"gpu-1": {}}}
    doc = {"all": {"vars": {"medai_cluster_name": "units",
                            "medai_keycloak_hostname": "keycloak.example.internal",
                            "medai_metallb_pool": "10.9.0.200/29"}, "children": hosts}}
    if disable is not None:
        doc["all"]["vars"]["medai_k3s_disable"] = disable
    p = tmp_path / "site.yml"
    p.write_text(yaml.safe_dump(doc))
    return load_inventory(p)


def _deployment(ns: str, name: str, labels: dict, port: int, **spec) -> dict:
    container = {"name": name, "image": f"example.org/{name}:1", "securityContext": RESTRICTED_SC,
                 "resources": REQUESTS, "ports": [{"name": "http", "containerPort": port}], **spec.pop("container", {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels}, "spec": {"containers": [container], **spec}}}}


def _service(ns: str, name: str, labels: dict, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": labels, "ports": [{"name": "https", "port": port, "targetPort": "http"}]}}


def _policy(ns: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def _deny(ns: str) -> dict:
    return _policy(ns, "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def _namespace(name: str, level: str = "restricted") -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}}


def _site() -> SiteRender:
    """app/client calls srv/server over https (certificate in Secret server-tls); both namespaces deny by default."""
    server_labels, client_labels = {"app": "server"}, {"app": "client"}
    server = _deployment("srv", "server", server_labels, 8443, volumes=[
        {"name": "tls", "secret": {"secretName": "server-tls"}}])
    client = _deployment("app", "client", client_labels, 8080, container={
        "env": [{"name": "SERVER_URL", "value": "https://server.srv.svc:443/api"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "client-token", "key": "token"}}}]})
    srv_objs = [_namespace("srv"), server, _service("srv", "server", server_labels, 443), _deny("srv"),
                _policy("srv", "from-client", {"podSelector": {"matchLabels": server_labels}, "policyTypes": ["Ingress"],
                                               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                                   "kubernetes.io/metadata.name": "app"}}}],
                                                   "ports": [{"port": "http"}]}]})]
    app_objs = [_namespace("app"), client, {"apiVersion": "v1", "kind": "Secret",
                                            "metadata": {"name": "client-token", "namespace": "app"}}, _deny("app"),
                _policy("app", "to-server", {"podSelector": {"matchLabels": client_labels}, "policyTypes": ["Egress"],
                                             "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                                                 "kubernetes.io/metadata.name": "srv"}}}], "ports": [{"port": 8443}]},
                                                 {"to": [DNS_PEER], "ports": DNS_PORTS}]}),
                _policy("srv", "dns", {"podSelector": {}, "policyTypes": ["Egress"],
                                       "egress": [{"to": [DNS_PEER], "ports": DNS_PORTS}]})]
    app_objs[-1]["metadata"]["namespace"] = "srv"
    releases = [Release("server", None, None, "srv", {}, srv_objs), Release("client", None, None, "app", {}, app_objs)]
    return SiteRender(releases, ImagePlan(), "1.34.2", "1.34.0", {})


FLOWS = [Flow("app", "srv", "http", src_pods={"app": "client"}, dst_pods={"app": "server"}, why="the API"),
         *[Flow(ns, "kube-system", 53, proto, dst_pods={"k8s-app": "kube-dns"}) for ns in ("app", "srv")
           for proto in ("UDP", "TCP")]]
INSTALLED = Outside(certificates=[Certificate("server", "srv", "server-tls", ("server.srv.svc", "server.srv.svc.cluster.local"))])
INSTALLED.add("Secret", "srv", "server-tls", "the install (test)")


@pytest.fixture
def inv(tmp_path):
    return _inventory(tmp_path)


def _findings(site, inv, flows=FLOWS, installed=INSTALLED) -> list[str]:
    return [str(f) for f in check_site(site, inv, flows, copy.deepcopy(installed))]


def _obj(site, kind: str, name: str) -> dict:
    return next(o for r in site.releases for o in r.objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _new(before: list[str], after: list[str]) -> list[str]:
    return [f for f in after if f not in before]


def test_the_coherent_site_passes_every_check(inv):
    assert _findings(_site(), inv) == []


def test_a_service_port_removed(inv):
    site = _site()
    _obj(site, "Service", "server")["spec"]["ports"][0]["port"] = 8443
    (line,) = _findings(site, inv)
    assert line.startswith("references: release client: Deployment app/client: spec.template.spec.containers[0]"
                           ".env[0].value (SERVER_URL): server.srv.svc:443: Service srv/server has no port 443"), line


def test_a_misspelt_secret(inv):
    site = _site()
    _obj(site, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]["env"][1]["valueFrom"][
        "secretKeyRef"]["name"] = "client-tokn"
    (line,) = _findings(site, inv)
    assert "Deployment app/client" in line and "Secret client-tokn is neither rendered nor created" in line


def test_a_misspelt_service_name_in_a_url(inv):
    site = _site()
    _obj(site, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = \
        "https://sever.srv.svc/api"
    assert any("sever.srv.svc: no Service sever in namespace srv" in f for f in _findings(site, inv))


def test_a_dropped_certificate_name(inv):
    installed = copy.deepcopy(INSTALLED)
    installed.certificates = [Certificate("server", "srv", "server-tls", ("server.srv.svc.cluster.local",))]
    (line,) = _findings(_site(), inv, installed=installed)
    assert line.startswith("tls: release client: Deployment app/client: ") and \
        "server.srv.svc: Service srv/server serves the certificate of Secret srv/server-tls" in line


def test_a_site_host_name_the_certificate_lacks(inv):
    installed = copy.deepcopy(INSTALLED)
    installed.certificates = [Certificate("server", "srv", "server-tls", ("server.srv.svc",), ("server.site.example",))]
    (line,) = _findings(_site(), inv, installed=installed)
    assert line == ("tls: release server: Certificate srv/server-tls: names: the site host name server.site.example "
                    "is not among server.srv.svc")


def test_a_wildcard_covers_one_label_only():
    from installer.platform.coherence.tls import covers

    assert covers(("*.vault-internal",), "vault-0.vault-internal")
    assert not covers(("*.vault-internal",), "a.vault-0.vault-internal") and not covers(("*.svc",), "svc")


def test_a_host_path_in_a_restricted_namespace(inv):
    site = _site()
    _obj(site, "Deployment", "server")["spec"]["template"]["spec"]["volumes"].append(
        {"name": "host", "hostPath": {"path": "/var/lib"}})
    found = _findings(site, inv)
    assert found == ["podsecurity: release server: Deployment srv/server: spec.template.spec.volumes[1].hostPath: "
                     "restrictedVolumes: volume host of type hostPath (namespace srv enforces restricted, label)"]


def test_a_dropped_toleration(inv):
    site = _site()
    spec = _obj(site, "Deployment", "server")["spec"]["template"]["spec"]
    spec["nodeSelector"] = {"nvidia.com/gpu.present": "true"}
    spec["tolerations"] = [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    assert _findings(site, inv) == []
    spec["tolerations"] = []
    (line,) = _findings(site, inv)
    assert line.startswith("scheduling: release server: Deployment srv/server: spec.template.spec: fits no node: ")
    assert "srv-1 (nodeSelector nvidia.com/gpu.present=true)" in line
    assert "gpu-1 (taint gpu=true:NoSchedule not tolerated)" in line


def test_a_daemonset_must_tolerate_every_node_it_selects(inv):
    site = _site()
    ds = _obj(site, "Deployment", "server")
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    (line,) = _findings(site, inv)
    assert line == ("scheduling: release server: DaemonSet srv/server: spec.template.spec.tolerations: selects node "
                    "gpu-1 but does not tolerate its taint gpu=true:NoSchedule")


def test_replicas_with_required_anti_affinity_need_as_many_nodes(inv):
    site = _site()
    d = _obj(site, "Deployment", "server")
    d["spec"]["replicas"] = 2
    d["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "server"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    (line,) = _findings(site, inv)
    assert "spec.replicas: 2 replicas with a required anti-affinity on kubernetes.io/hostname, but only 1 node(s) " \
           "fit: srv-1" in line


def test_a_deleted_allow_rule(inv):
    site = _site()
    del _obj(site, "NetworkPolicy", "from-client")["spec"]["ingress"][0]
    (line,) = _findings(site, inv)
    assert line.startswith("network: release server: Deployment srv/server: NetworkPolicy: declared flow app -> srv "
                           "TCP/http (the API) is denied from app/client to srv/server"), line


def test_a_flow_nobody_declared(inv):
    site = _site()
    _obj(site, "NetworkPolicy", "from-client")["spec"]["ingress"][0]["ports"].append({"port": 9090})
    _obj(site, "NetworkPolicy", "to-server")["spec"]["egress"][0]["ports"].append({"port": 9090})
    (line,) = _findings(site, inv)
    assert line == ("network: release server: Deployment srv/server: ingress from app: undeclared connections "
                    "allowed: TCP 9090")


def test_a_namespace_without_default_deny(inv):
    site = _site()
    site.releases[1].objects = [o for o in site.releases[1].objects if o["metadata"]["name"] != "deny"]
    found = _findings(site, inv)
    assert found[0] == ("network: release app: Namespace app: NetworkPolicy: no default deny: a policy with "
                        "podSelector {}, policyTypes [Ingress, Egress] and no rule")
    assert "network: release client: Deployment app/client: ingress from (site): undeclared connections allowed: all" in found


def test_the_nodes_reaching_a_pod_must_be_declared(inv):
    site = _site()
    _obj(site, "NetworkPolicy", "from-client")["spec"]["ingress"].append(
        {"from": [{"ipBlock": {"cidr": "10.9.0.0/24"}}], "ports": [{"port": 8443}]})
    (line,) = _findings(site, inv)
    assert line == "network: release server: Deployment srv/server: ingress from (nodes): undeclared connections " \
                   "allowed: TCP 8443"
    assert _findings(site, inv, FLOWS + [Flow(NODES, "srv", 8443, dst_pods={"app": "server"})]) == []


def test_missing_requests(inv):
    site = _site()
    del _obj(site, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]["resources"]
    (line,) = _findings(site, inv)
    assert line == ("resources: release client: Deployment app/client: spec.template.spec.containers[0].resources."
                    "requests: container client: no cpu and no memory request")


def test_exactly_one_default_storage_class(tmp_path, inv):
    site = _site()
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "driver.longhorn.io",
          "metadata": {"name": "longhorn", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
    site.releases[0].objects.append(sc)
    (tmp_path / "a").mkdir()
    (line,) = _findings(site, _inventory(tmp_path / "a", disable=["traefik"]))  # K3s's local-path, a default too
    assert "2 default StorageClasses, exactly one is needed: local-path (K3s local-storage" in line
    assert "longhorn (release server)" in line
    (tmp_path / "b").mkdir()
    assert _findings(site, _inventory(tmp_path / "b", disable=["traefik", "servicelb", "local-storage"])) == []
    (tmp_path / "c").mkdir()
    no_default = _inventory(tmp_path / "c", disable=["local-storage"])
    assert _findings(_site(), no_default) == []  # nothing needs a default
    site = _site()
    site.releases[0].objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
        "name": "data", "namespace": "srv"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                      "resources": {"requests": {"storage": "1Gi"}}}})
    (line,) = _findings(site, no_default)
    assert "0 default StorageClasses, exactly one is needed (PersistentVolumeClaim srv/data name none): none" in line


def test_the_error_lists_every_finding_one_line_each(inv):
    site = _site()
    _obj(site, "Service", "server")["spec"]["ports"][0]["port"] = 8443
    del _obj(site, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]["resources"]
    err = CoherenceError(check_site(site, inv, FLOWS, copy.deepcopy(INSTALLED)))
    lines = str(err).split("\n")
    assert lines[0].startswith("the platform cannot come up as rendered (2 finding(s)") and len(lines) == 3


def test_connection_difference():
    a = Connections.of([("TCP", 1, 100), ("UDP", 53, 53)])
    assert str(minus(a, Connections.of([("TCP", 10, 20), ("UDP", 53, 53)]))) == "TCP 1-9,21-100"
    assert not minus(a, Connections.all())


def test_a_limit_range_gives_default_requests(inv):
    site = _site()
    del _obj(site, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]["resources"]
    site.releases[1].objects.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults",
                                     "namespace": "app"}, "spec": {"limits": [{"type": "Container",
                                                                               "defaultRequest": {"cpu": "50m"}}]}})
    (line,) = _findings(site, inv)
    assert line.endswith("container client: no memory request")


def test_explain_lists_each_declared_flow_with_its_verdict(inv):
    from installer.platform.explain import explain, lines

    site = _site()
    assert [v for _, v in explain(site, inv, FLOWS).declared] == ["allowed"] * len(FLOWS)
    del _obj(site, "NetworkPolicy", "from-client")["spec"]["ingress"][0]
    e = explain(site, inv, FLOWS)
    assert e.declared[0][1].startswith("declared flow app -> srv TCP/http (the API) is denied from app/client")
    text = "\n".join(lines(e))
    assert "Declared flows (installer/platform/flows.py) and the rendered NetworkPolicies" in text
    assert "app -> srv TCP/http (the API)  {'app': 'client'} -> {'app': 'server'}  declared flow" in text
