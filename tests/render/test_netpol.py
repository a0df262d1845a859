"""The NetworkPolicy evaluator: np-guard's 25 upstream cases (../shared/fixtures/netpol, their expected
connectivity reproduced exactly, External ranges compared as address sets), and cases written from the
Kubernetes documentation's NetworkPolicy page."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from installer.render.labels import selector_matches
from installer.render.netpol import Connections, Endpoint, NetworkPolicies
from tests.support.fixture_charts import ROOT

CASES = Path("/work/shared/fixtures/netpol/cases")
if not CASES.is_dir():
    CASES = ROOT.parent / "shared" / "fixtures" / "netpol" / "cases"
DIRS = sorted(p for p in CASES.iterdir() if p.is_dir()) if CASES.is_dir() else []
needs_cases = pytest.mark.skipif(not DIRS, reason=f"the upstream NetworkPolicy cases ({CASES}) are absent")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job")
ALL_V4 = (0, 2 ** 32 - 1)


# --- the fixture format (../shared/fixtures/netpol/README.md) ------------------------------------------------------

def _objects(case: Path) -> list[dict]:
    out = []
    for f in sorted(case.iterdir()):
        if f.suffix not in (".yaml", ".yml", ".json"):
            continue
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict):
                out += [i for i in doc.get("items") or [] if isinstance(i, dict)] if "items" in doc else [doc]
    return out


def _cluster(case: Path) -> tuple[NetworkPolicies, dict[str, Endpoint]]:
    """The policies, and one representative pod per workload named as the expected file names it."""
    objs = _objects(case)
    namespaces: dict[str, dict] = {}
    workloads: dict[str, Endpoint] = {}
    for o in objs:
        meta = o.get("metadata") or {}
        kind = o.get("kind") or "Pod"  # a NamespaceList's items carry no kind: they have no spec.containers
        if kind == "Namespace" or (kind == "Pod" and "containers" not in (o.get("spec") or {})):
            namespaces[meta["name"]] = meta.get("labels") or {}
            continue
        ns = meta.get("namespace") or "default"
        if kind == "Pod":
            owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
            name = f"{ns}/{owner['name']}[{owner.get('kind') or 'Pod'}]" if owner else f"{ns}/{meta['name']}[Pod]"
            labels, spec = meta.get("labels") or {}, o.get("spec") or {}
        elif kind in WORKLOADS:
            name = f"{ns}/{meta['name']}[{kind}]"
            tpl = (o.get("spec") or {}).get("template") or {}
            labels, spec = (tpl.get("metadata") or {}).get("labels") or {}, tpl.get("spec") or {}
        else:
            continue
        namespaces.setdefault(ns, {})
        workloads.setdefault(name, Endpoint.pod(ns, labels, None, spec.get("containers") or []))
    return NetworkPolicies([o for o in objs if o.get("kind") == "NetworkPolicy"], namespaces), workloads


def parse_connections(text: str) -> Connections:
    if text == "All Connections":
        return Connections.all()
    pairs, proto = [], None
    for tok in text.split(","):
        head, _, rest = tok.strip().partition(" ")
        if head in ("TCP", "UDP", "SCTP"):
            proto, tok = head, rest
            if not rest:
                pairs.append((proto, 1, 65535))
                continue
        lo, _, hi = tok.strip().partition("-")
        pairs.append((proto, int(lo), int(hi or lo)))
    return Connections.of(pairs)


def _ext(name: str) -> tuple[int, int] | None:
    if not name.endswith("[External]"):
        return None
    first, last = name[: -len("[External]")].split("-")
    return int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))


def _address_map(segments: list[tuple[int, int, Connections]]) -> list[tuple[int, int, Connections]]:
    """Address ranges with their connections, cut at every boundary, merged where neighbours agree, empty dropped."""
    cuts = sorted({lo for lo, _, _ in segments} | {hi + 1 for _, hi, _ in segments})
    out: list[tuple[int, int, Connections]] = []
    for a, b in zip(cuts, cuts[1:]):
        conns = Connections.none()
        for lo, hi, c in segments:
            if lo <= a and b - 1 <= hi:
                conns = conns | c
        if not conns:
            continue
        if out and out[-1][1] == a - 1 and out[-1][2] == conns:
            out[-1] = (out[-1][0], b - 1, conns)
        else:
            out.append((a, b - 1, conns))
    return out


def _expected(case: Path):
    pairs, external = {}, {}
    for line in (case / "expected_connlist.txt").read_text().splitlines():
        if not line.strip():
            continue
        left, conns = line.rsplit(" : ", 1)
        src, dst = left.split(" => ")
        c = parse_connections(conns)
        if (r := _ext(src)) is not None:
            external.setdefault(("from", dst), []).append((*r, c))
        elif (r := _ext(dst)) is not None:
            external.setdefault(("to", src), []).append((*r, c))
        else:
            pairs[(src, dst)] = c
    return pairs, {k: _address_map(v) for k, v in external.items()}


def _computed(policies: NetworkPolicies, workloads: dict[str, Endpoint]):
    pairs = {(a, b): c for a, ea in workloads.items() for b, eb in workloads.items()
             if a != b and (c := policies.connections(ea, eb))}
    cuts = policies.ip_boundaries()
    external = {}
    for name, ep in workloads.items():
        for direction in ("from", "to"):
            segs = []
            for lo, hi in zip(cuts, cuts[1:]):
                outside = Endpoint.external(str(ipaddress.IPv4Address(lo)))
                c = policies.connections(outside, ep) if direction == "from" else policies.connections(ep, outside)
                segs.append((lo, hi - 1, c))
            if m := _address_map(segs):
                external[(direction, name)] = m
    return pairs, external


@needs_cases
def test_all_upstream_cases_are_here():
    assert len(DIRS) == 25


@needs_cases
@pytest.mark.parametrize("case", DIRS, ids=lambda p: p.name)
def test_upstream_case(case):
    policies, workloads = _cluster(case)
    want_pairs, want_ext = _expected(case)
    got_pairs, got_ext = _computed(policies, workloads)
    assert {k: str(v) for k, v in got_pairs.items()} == {k: str(v) for k, v in want_pairs.items()}
    assert got_ext == want_ext


# --- from the Kubernetes documentation (concepts/services-networking/network-policies) -----------------------------

def _np(name, ns, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


NAMESPACES = {"prod": {"user": "alice"}, "dev": {"user": "bob"}}
DB = Endpoint.pod("prod", {"role": "db"}, "10.42.0.5",
                  [{"name": "pg", "ports": [{"name": "postgres", "containerPort": 5432}]}])
CLIENT_PROD = Endpoint.pod("prod", {"role": "client"}, "10.42.0.6")
CLIENT_DEV = Endpoint.pod("dev", {"role": "client"}, "10.42.1.6")
OTHER_DEV = Endpoint.pod("dev", {"role": "other"}, "10.42.1.7")


def _ingress_to_db(peers, ports=None):
    rule = {"from": peers} | ({"ports": ports} if ports is not None else {})
    return NetworkPolicies([_np("db", "prod", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [rule]})],
                           NAMESPACES)


def test_namespace_and_pod_selector_in_one_peer_is_and():
    p = _ingress_to_db([{"namespaceSelector": {"matchLabels": {"user": "bob"}},
                         "podSelector": {"matchLabels": {"role": "client"}}}])
    assert p.allowed(CLIENT_DEV, DB, 5432)
    assert not p.allowed(OTHER_DEV, DB, 5432)  # right namespace, wrong pod
    assert not p.allowed(CLIENT_PROD, DB, 5432)  # right pod labels, wrong namespace


def test_namespace_and_pod_selector_in_two_peers_is_or():
    p = _ingress_to_db([{"namespaceSelector": {"matchLabels": {"user": "bob"}}},
                        {"podSelector": {"matchLabels": {"role": "client"}}}])
    assert p.allowed(CLIENT_DEV, DB, 5432) and p.allowed(OTHER_DEV, DB, 5432)  # any pod of dev
    assert p.allowed(CLIENT_PROD, DB, 5432)  # client pods of the policy's own namespace
    assert not p.allowed(Endpoint.pod("prod", {"role": "web"}), DB, 5432)


def test_empty_pod_selector_selects_every_pod_of_the_namespace_only():
    deny = NetworkPolicies([_np("deny", "prod", {"podSelector": {}, "policyTypes": ["Ingress"]})], NAMESPACES)
    assert not deny.allowed(CLIENT_DEV, DB, 5432) and not deny.allowed(CLIENT_DEV, CLIENT_PROD, 80)
    assert deny.allowed(CLIENT_PROD, CLIENT_DEV, 80)  # dev is selected by nothing: open
    same = NetworkPolicies([_np("same", "prod", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})],
                           NAMESPACES)
    assert same.allowed(CLIENT_PROD, DB, 1) and not same.allowed(CLIENT_DEV, DB, 1)
    allns = _ingress_to_db([{"namespaceSelector": {}}])
    assert allns.allowed(CLIENT_DEV, DB, 1)
    assert not allns.allowed(Endpoint.external("192.0.2.1"), DB, 1)  # every pod, but no outside address


def test_ports_with_and_without_protocol_and_named_ports():
    p = _ingress_to_db([{"podSelector": {}}], [{"port": 5432}])
    assert p.allowed(CLIENT_PROD, DB, 5432, "TCP") and not p.allowed(CLIENT_PROD, DB, 5432, "UDP")  # TCP default
    p = _ingress_to_db([{"podSelector": {}}], [{"protocol": "UDP"}])  # protocol without port: every UDP port
    assert p.allowed(CLIENT_PROD, DB, 53, "UDP") and not p.allowed(CLIENT_PROD, DB, 53, "TCP")
    p = _ingress_to_db([{"podSelector": {}}], [{"port": 32000, "endPort": 32768}])
    assert p.allowed(CLIENT_PROD, DB, 32768) and not p.allowed(CLIENT_PROD, DB, 32769)
    p = _ingress_to_db([{"podSelector": {}}], [{"port": "postgres"}])  # resolved against DB's container ports
    assert p.allowed(CLIENT_PROD, DB, 5432) and p.allowed(CLIENT_PROD, DB, "postgres")
    assert not p.allowed(CLIENT_PROD, DB, 5433)
    assert not p.allowed(CLIENT_PROD, Endpoint.pod("prod", {"role": "db"}), 5432)  # a db pod without that name
    p = _ingress_to_db([{"podSelector": {}}], [{"port": "postgres", "protocol": "UDP"}])  # name and protocol
    assert not p.allowed(CLIENT_PROD, DB, 5432, "TCP") and not p.allowed(CLIENT_PROD, DB, 5432, "UDP")


def test_policy_types_default_ingress_and_egress_only_with_egress_rules():
    only_ingress = _np("i", "prod", {"podSelector": {}})
    assert NetworkPolicies.policy_types(only_ingress) == {"Ingress"}
    with_egress = _np("e", "prod", {"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]})
    assert NetworkPolicies.policy_types(with_egress) == {"Ingress", "Egress"}
    p = NetworkPolicies([only_ingress], NAMESPACES)
    assert p.allowed(CLIENT_PROD, CLIENT_DEV, 80)  # egress not restricted by an ingress-only policy
    p = NetworkPolicies([_np("e", "prod", {"podSelector": {}, "policyTypes": ["Egress"]})], NAMESPACES)
    assert not p.allowed(CLIENT_PROD, CLIENT_DEV, 80) and p.allowed(CLIENT_DEV, CLIENT_PROD, 80)


def test_a_connection_needs_egress_and_ingress_and_policies_add_up():
    egress = _np("e", "dev", {"podSelector": {}, "policyTypes": ["Egress"],
                             "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"user": "alice"}}}],
                                         "ports": [{"port": 5432}, {"port": 80}]}]})
    ingress = _np("i", "prod", {"podSelector": {"matchLabels": {"role": "db"}},
                                "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 5432}]}]})
    more = _np("more", "prod", {"podSelector": {"matchLabels": {"role": "db"}},
                                "ingress": [{"ports": [{"port": 9187}]}]})
    p = NetworkPolicies([egress, ingress, more], NAMESPACES)
    assert str(p.connections(CLIENT_DEV, DB)) == "TCP 5432"  # 80: no ingress; 9187: no egress
    assert p.allowed(CLIENT_PROD, DB, 9187)  # the second policy adds to the first
    assert not p.allowed(CLIENT_DEV, CLIENT_PROD, 443) and p.allowed(CLIENT_DEV, CLIENT_PROD, 80)


def test_ip_block_with_except():
    p = _ingress_to_db([{"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}}])
    assert p.allowed(Endpoint.external("172.17.0.9"), DB, 5432)
    assert not p.allowed(Endpoint.external("172.17.1.9"), DB, 5432)
    assert not p.allowed(Endpoint.external("10.0.0.1"), DB, 5432)
    assert not p.allowed(CLIENT_PROD, DB, 5432)  # a pod outside the block's range


def test_label_selector_operators():
    labels = {"tier": "web", "env": "prod"}
    assert selector_matches({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "qa"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels)
    assert selector_matches({}, labels) and selector_matches(None, {})
