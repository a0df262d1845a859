"""The full platform render as a system, on the example site (servers and GPU agents) and on the smallest site the
inventory check accepts: every platform namespace is labelled at the least Pod Security level its pods need (the
documented exceptions and no other), every pod template is admitted there, every namespace denies by default,
and the NetworkPolicies are exactly the rendering of the declared flows: each declared flow allowed, nothing
between two namespaces that no flow declares."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml

from installer.compliance.k3s_checks import PSA_EXCEPTIONS
from installer.deploy.inventory import load_inventory
from installer.platform.flows import KUBE_SYSTEM, NODES, SITE, policies
from installer.platform.render import render_site
from installer.platform.site_flows import declared
from installer.render.netpol import Endpoint, NetworkPolicies
from installer.render.podsecurity import ENFORCE_LABEL, evaluate, pod_template
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import ROOT, needs_fixtures

pytestmark = needs_fixtures
EXAMPLE = ROOT / "inventories" / "example" / "site.yml"
CHARTS = ("cilium", "metallb", "longhorn", "cloudnative-pg", "vault", "keycloakx", "harbor", "nvidia-device-plugin")
EXTRA_IMAGES = ("docker.io/adorsys/keycloak-config-cli:6.5.1-26.0.5", "ghcr.io/cloudnative-pg/postgresql:17.5",
                "ghcr.io/aquasecurity/trivy-db:2", "ghcr.io/aquasecurity/trivy-java-db:1")
LEVELS = {"metallb-system": "privileged", "longhorn-system": "privileged", "vault": "restricted",
          "cnpg-system": "restricted", "keycloak": "restricted", "harbor": "restricted",
          "nvidia-device-plugin": "privileged"}
OUTSIDE = "192.0.2.50"  # a site client (TEST-NET-1)


def minimal(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    site = {k: v for k, v in doc["all"]["vars"].items() if k not in ("medai_api_vip", "medai_tls_san")}
    doc = {"all": {"vars": site, "children": {"servers": {"hosts": {"solo": {"ansible_host": "10.20.0.11"}}}}}}
    p = tmp_path / "minimal.yml"
    p.write_text(yaml.safe_dump(doc))
    return p


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_fixture_bundle(tmp_path_factory.mktemp("fixes") / "b", fixture_manifest(CHARTS), images=EXTRA_IMAGES)


@pytest.fixture(scope="module", params=["example", "minimal"])
def site(request, bundle, tmp_path_factory):
    inv = load_inventory(EXAMPLE if request.param == "example" else minimal(tmp_path_factory.mktemp("inv")))
    return inv, render_site(inv, bundle)


def _objects(render):
    for r in render.releases:
        for o in r.objects + r.site_objects:
            yield r, (o.get("metadata") or {}).get("namespace") or r.namespace, o


def _namespaces(render) -> dict[str, dict]:
    """The Namespaces medai labels (a chart's own, like Cilium's cilium-secrets without pods, aside)."""
    return {o["metadata"]["name"]: o["metadata"]["labels"] for _, _, o in _objects(render)
            if o["kind"] == "Namespace" and o["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "medai"}


def _test_hook(o: dict) -> bool:
    return "test" in ((o.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "").split(",")


def test_each_platform_namespace_is_labelled_at_the_least_level_its_pods_need(site):
    inv, render = site
    labels = _namespaces(render)
    want = {ns: lv for ns, lv in LEVELS.items() if inv.gpu or ns != "nvidia-device-plugin"}
    assert {ns: lab[ENFORCE_LABEL] for ns, lab in labels.items()} == want
    assert all(lab["pod-security.kubernetes.io/warn"] == "restricted" for lab in labels.values())
    below = {ns: lv for ns, lv in want.items() if lv != "restricted"}
    assert below == {ns: lv for ns, lv in PSA_EXCEPTIONS.items() if ns in below}  # the CIS check's exceptions
    assert KUBE_SYSTEM not in labels


def test_every_pod_template_is_admitted_where_it_runs(site):
    _, render = site
    labels = _namespaces(render)
    refused = [(ns, o["kind"], o["metadata"]["name"], v) for _, ns, o in _objects(render)
               if pod_template(o) is not None and ns != KUBE_SYSTEM and not _test_hook(o)
               for v in evaluate(o, labels[ns][ENFORCE_LABEL])]
    assert refused == []
    vault = next(o for r, _, o in _objects(render) if r.name == "vault" and o["kind"] == "StatefulSet")
    assert labels["vault"][ENFORCE_LABEL] == "restricted" and evaluate(vault, "restricted") == []


def test_namespace_and_policies_come_before_the_other_site_objects(site):
    _, render = site
    for r in render.releases:
        kinds = [o["kind"] for o in r.site_objects]
        first = kinds[:len([k for k in kinds if k in ("Namespace", "NetworkPolicy")])]
        assert set(first) <= {"Namespace", "NetworkPolicy"}, r.name


def _endpoints(render) -> dict[str, list[Endpoint]]:
    out: dict[str, list[Endpoint]] = {}
    for _, ns, o in _objects(render):
        tpl = pod_template(o)
        if tpl is not None and not _test_hook(o):
            out.setdefault(ns, []).append(Endpoint.pod(ns, tpl.metadata.get("labels") or {}, None,
                                                       tpl.spec.get("containers") or []))
    return out


def _endpoint(pods_by_ns, inv, namespace: str, labels: dict, port=None) -> Endpoint:
    """A rendered pod of the namespace carrying the labels (naming the port, if named), else one standing for the
    pods an operator starts (CloudNativePG instances, Longhorn's instance managers), the nodes or a site client."""
    if namespace == NODES:
        return Endpoint.external(inv.hosts[inv.servers[0]].address)
    if namespace == SITE:
        return Endpoint.external(OUTSIDE)
    for ep in pods_by_ns.get(namespace, []):
        if all(ep.labels.get(k) == v for k, v in labels.items()) and (
                not isinstance(port, str) or any(n == port for n, _, _ in ep.named_ports)):
            return ep
    return Endpoint.pod(namespace, labels)


def _policies(render) -> NetworkPolicies:
    objs = [o for _, _, o in _objects(render) if o["kind"] == "NetworkPolicy"]
    return NetworkPolicies(objs, _namespaces(render))


def test_policies_are_the_rendering_of_the_declared_flows(site):
    inv, render = site
    flows = declared(inv)
    for ns in _namespaces(render):
        rendered = [o for _, n, o in _objects(render) if o["kind"] == "NetworkPolicy" and n == ns]
        assert rendered == policies(flows, ns, inv), ns
        assert rendered[0]["metadata"]["name"] == "medai-default-deny"
        assert rendered[0]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_every_declared_flow_is_allowed(site):
    inv, render = site
    pods, pol = _endpoints(render), _policies(render)
    flows = declared(inv)
    assert len(flows) > 60
    for f in flows:
        src = _endpoint(pods, inv, f.src_namespace, f.src_pods)
        dst = _endpoint(pods, inv, f.dst_namespace, f.dst_pods, f.port)
        assert pol.allowed(src, dst, f.port, f.protocol), f
        if f.end_port is not None:
            assert pol.allowed(src, dst, f.end_port, f.protocol), f


def test_no_connection_between_namespaces_that_no_flow_declares(site):
    inv, render = site
    pods, pol = _endpoints(render), _policies(render)
    declared_pairs = {(f.src_namespace, f.dst_namespace) for f in declared(inv)}
    platform = [ns for ns in pods if ns != KUBE_SYSTEM]
    for a in platform + [NODES]:
        for b in platform:
            sources = pods[a] if a != NODES else [_endpoint(pods, inv, NODES, {})]
            conns = [pol.connections(s, d) for s in sources for d in pods[b]]
            if (a, b) not in declared_pairs and (a != NODES or (SITE, b) not in declared_pairs):
                assert not any(conns), (a, b)


def test_a_dropped_flow_is_denied(site, tmp_path):
    """The mutation: render the policies without one declared flow; that flow is then refused."""
    inv, render = site
    flows = declared(inv)
    victim = next(f for f in flows if f.src_namespace == "harbor" and f.dst_pods.get("component") == "redis")
    pods = _endpoints(render)
    others = [o for _, _, o in _objects(render) if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] != "harbor"]
    kept = [f for f in flows if f != victim]
    pol = NetworkPolicies(others + policies(kept, "harbor", inv), _namespaces(render))
    src, dst = _endpoint(pods, inv, "harbor", victim.src_pods), _endpoint(pods, inv, "harbor", victim.dst_pods)
    assert not pol.allowed(src, dst, victim.port)
    assert dataclasses.replace(victim, why="") in [dataclasses.replace(f, why="") for f in flows]


def test_harbor_redis_answers_only_harbor_and_keycloak_only_its_clients(site):
    inv, render = site
    pods, pol = _endpoints(render), _policies(render)
    redis = _endpoint(pods, inv, "harbor", {"component": "redis"})
    for ns in ("vault", "keycloak", "cnpg-system", "longhorn-system"):
        for src in pods[ns]:
            assert not pol.connections(src, redis), ns
    kc = _endpoint(pods, inv, "keycloak", {"app.kubernetes.io/name": "keycloakx"}, "https")
    assert pol.allowed(Endpoint.external(OUTSIDE), kc, "https")
    assert pol.allowed(_endpoint(pods, inv, "harbor", {"component": "core"}), kc, 8443)
    assert not pol.allowed(_endpoint(pods, inv, "harbor", {"component": "portal"}), kc, 8443)
    assert copy.deepcopy(kc) == kc
