"""Rotation's decisions at the API seam: refused unless every node is Ready; the TLS Secrets the catalogue names
applied and only the workloads that mount one restarted (rolling, by a pod-template annotation)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from installer.certs.rotate import RESTART_ANNOTATION, _tls_secrets, refresh_secrets, refuse_unless_ready
from installer.core.errors import InstallError
from installer.deploy.inventory import load_inventory
from tests.support.kube import RecordedKube


def _kube(nodes=(), workloads=None):
    lists = {("v1", "Node"): nodes, ("apps/v1", "Deployment"): [], ("apps/v1", "StatefulSet"): []}
    for (kind, ns), items in (workloads or {}).items():
        lists[("apps/v1", kind)] += [{**w, "metadata": {**w["metadata"], "namespace": ns}} for w in items]
    return RecordedKube(lists)


def _node(name, ready):
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _workload(name, secret, projected=False):
    vol = ({"projected": {"sources": [{"secret": {"name": secret}}]}} if projected else {"secret": {"secretName": secret}})
    return {"metadata": {"name": name}, "spec": {"template": {"spec": {"volumes": [{"name": "tls", **vol}]}}}}


def test_a_group_with_a_node_not_ready_is_refused():
    refuse_unless_ready(_kube([_node("srv1", True), _node("agt1", True)]), "k3s")
    with pytest.raises(InstallError, match=r"--group k3s: node\(s\) not Ready: agt1; nothing rotated"):
        refuse_unless_ready(_kube([_node("srv1", True), _node("agt1", False)]), "k3s")
    with pytest.raises(InstallError, match="no nodes listed"):
        refuse_unless_ready(_kube([]), "vault")


def test_secrets_are_applied_and_only_the_workloads_mounting_them_restart(tmp_path):
    inv = tmp_path / "site.yml"
    inv.write_text(yaml.safe_dump({"all": {"vars": {"medai_cluster_name": "c1", "medai_metallb_pool": "10.0.0.200-10.0.0.210",
                                                    "medai_harbor_hostname": "harbor.site", "medai_keycloak_hostname": "keycloak.site"},
                                           "children": {"servers": {"hosts": {"srv1": {"ansible_host": "10.0.0.11"}}}}}}))
    kv = {f"{s}/tls": {"certificate": f"{s} cert", "private_key": f"{s} key", "ca_chain": "chain"} for s in ("keycloak", "harbor")}
    secrets = _tls_secrets(load_inventory(inv), kv.__getitem__, ["keycloak", "harbor"])
    assert sorted((s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets) == [
        ("harbor", "medai-harbor-site-ca"), ("harbor", "medai-harbor-tls"), ("keycloak", "keycloak-tls")]
    kube = _kube(workloads={("StatefulSet", "keycloak"): [_workload("keycloak", "keycloak-tls"), _workload("pg", "pg-tls")],
                           ("Deployment", "harbor"): [_workload("harbor-core", "medai-harbor-tls", projected=True)]})
    done = refresh_secrets(kube, secrets, "2026-12-07T19:00:00+00:00")
    assert "StatefulSet keycloak/keycloak restarted (rolling)" in done
    assert "Deployment harbor/harbor-core restarted (rolling)" in done
    assert not any("pg" in d for d in done)
    restarts = [o for o in kube.applied if o["kind"] != "Secret"]
    assert len(restarts) == 2 and all(
        o["spec"]["template"]["metadata"]["annotations"] == {RESTART_ANNOTATION: "2026-12-07T19:00:00+00:00"} for o in restarts)


def test_a_failed_k3s_rotation_names_the_playbook_failure(monkeypatch, tmp_path):
    from installer.certs import rotate
    from installer.deploy.runner import Summary

    inv = load_inventory(Path(__file__).resolve().parents[2] / "inventories" / "example" / "site.yml")
    failed = Summary(hosts=3, failed=1, status="failed", rc=2, failures=["srv-2: k3s certificate rotate: exit 1"])
    monkeypatch.setattr(rotate, "run_playbook", lambda *a, **kw: failed)
    kube = _kube([_node(n, True) for n in inv.servers + inv.agents])

    class Record:
        dir = tmp_path

    with pytest.raises(InstallError, match=r"^certs rotate --group k3s: srv-2: k3s certificate rotate: exit 1; the "
                                           r"servers after it were not touched"):
        rotate.rotate_k3s(inv, kube, Record(), None)
