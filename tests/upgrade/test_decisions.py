"""Upgrade decisions unit-tested from recorded Kubernetes and Helm API responses (tests/upgrade/fixtures, in the
shapes the API returns). Nothing here talks to a cluster: snapshot, drain, restart and restore run only in the
K3s end-to-end test (tests/upgrade/test_k3s_e2e.py, MEDAI_E2E_K3S)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from installer.platform.history import after_upgrade, rollback_target
from installer.upgrade.cluster_checks import (
    blocking_pdbs,
    drain_decision,
    etcd_problems,
    evictable_pods,
    longhorn_problems,
    node_problems,
    preflight,
    selector_matches,
)
from installer.upgrade.skew import SkewError, plan_rollout

FIX = Path(__file__).parent / "fixtures"


def load(name: str):
    p = FIX / name
    return json.loads(p.read_text()) if p.suffix == ".json" else p.read_text()


# ------------------------------------------------------------------ version skew


def test_plan_orders_servers_one_at_a_time_then_agents_in_batches():
    plan = plan_rollout(load("nodes-ready.json"), "v1.34.2+k3s1", batch=2)
    assert [s.node for s in plan.servers] == ["srv-1", "srv-2", "srv-3"]
    assert [[s.node for s in b] for b in plan.agents] == [["agent-1", "agent-2"], ["gpu-1"]]
    assert plan.steps == ["server:srv-1", "server:srv-2", "server:srv-3", "agents:agent-1,agent-2", "agents:gpu-1"]


def test_half_upgraded_cluster_plans_only_the_rest():
    plan = plan_rollout(load("nodes-half-upgraded.json"), "v1.34.2+k3s1")
    assert plan.done == ["srv-1", "srv-2"]
    assert plan.steps[0] == "server:srv-3" and len(plan.agents) == 3


def test_a_skipped_minor_is_refused_with_the_reason():
    with pytest.raises(SkewError, match=r"node agent-1 runs v1\.32\.9\+k3s1; v1\.34\.2\+k3s1 skips minor version\(s\) 1\.33"):
        plan_rollout(load("nodes-agent-behind.json"), "v1.34.2+k3s1")
    with pytest.raises(SkewError, match="skips minor"):
        plan_rollout(load("nodes-ready.json"), "v1.35.0+k3s1")


def test_a_downgrade_is_refused():
    with pytest.raises(SkewError, match=r"newer than the bundle's v1\.33\.4\+k3s1: a downgrade is refused"):
        plan_rollout(load("nodes-ready.json"), "v1.33.4+k3s1")
    with pytest.raises(SkewError, match="downgrade"):
        plan_rollout(load("nodes-half-upgraded.json"), "v1.33.5+k3s1")


def test_same_version_patch_and_k3s_revision_upgrades_are_allowed():
    assert len(plan_rollout(load("nodes-ready.json"), "v1.33.5+k3s2").servers) == 3
    plan = plan_rollout(load("nodes-ready.json"), "v1.33.5+k3s1")
    assert plan.steps == [] and len(plan.done) == 6


# ------------------------------------------------------------------ preflight


def test_node_and_etcd_problems_are_named():
    nodes = load("nodes-one-server-down.json")
    probs = node_problems(nodes)
    assert "node srv-3: not Ready (NodeStatusUnknown)" in probs
    assert "node agent-2: cordoned (unschedulable) before the upgrade began" in probs
    # 2 of 3 etcd members healthy: quorum holds, but restarting one more would lose it
    assert etcd_problems(nodes, load("readyz-etcd-ok.txt")) == [
        "etcd: 2 of 3 members healthy; restarting one would lose quorum (2)"]
    assert etcd_problems(load("nodes-ready.json"), load("readyz-etcd-ok.txt")) == []
    assert "readyz/etcd says" in etcd_problems(load("nodes-ready.json"), load("readyz-etcd-failed.txt"))[0]


def test_longhorn_degraded_attached_volume_blocks():
    assert longhorn_problems(load("longhorn-volumes.json")) == [
        "longhorn volume pvc-3bd7: degraded (a drain would leave it without a replica)"]


def test_every_blocking_pdb_is_listed_before_anything_starts():
    pf = preflight(load("nodes-ready.json"), load("pods.json"), load("pdbs.json"), load("readyz-etcd-ok.txt"),
                   None, ["srv-1", "agent-1", "agent-2", "gpu-1"])
    assert not pf.ok and pf.problems == []
    assert [str(b) for b in pf.blockers] == [
        "node srv-1: PodDisruptionBudget vault/vault allows 0 disruption(s); it covers vault/vault-0: the drain would wait on it",
        "node agent-1: PodDisruptionBudget medai-db/postgres allows 0 disruption(s); "
        "it covers medai-db/postgres-0: the drain would wait on it",
    ]
    bypass = preflight(
        load("nodes-ready.json"), load("pods.json"), load("pdbs.json"), load("readyz-etcd-ok.txt"), None, ["agent-1"], disable_eviction=True
    )
    assert bypass.ok and len(bypass.blockers) == 1  # reported, recorded, not waited on


def test_drain_ignores_daemonset_mirror_and_finished_pods():
    pods = load("pods.json")
    assert [p["metadata"]["name"] for p in evictable_pods(pods, "agent-1")] == ["postgres-0", "web-6d9f7c-abcde"]
    assert [p["metadata"]["name"] for p in evictable_pods(pods, "agent-2")] == ["web-6d9f7c-fghij"]
    # the finished job pod does not make its PDB block agent-2
    assert blocking_pdbs(load("pdbs.json"), pods, "agent-2") == []


def test_drain_never_disables_eviction_unless_asked():
    d = drain_decision("agent-1", load("pdbs.json"), load("pods.json"), 300)
    assert "--disable-eviction" not in d.argv and "--timeout=300s" in d.argv and d.emptydir_pods == ["medai-db/postgres-0"]
    d = drain_decision("agent-1", load("pdbs.json"), load("pods.json"), 300, disable_eviction=True)
    assert d.argv[-1] == "--disable-eviction" and d.disable_eviction


def test_label_selector_semantics():
    assert selector_matches({}, {"a": "b"}) and not selector_matches(None, {"a": "b"})
    sel = {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}, {"key": "app", "operator": "Exists"}]}
    assert selector_matches(sel, {"app": "x", "tier": "web"}) and not selector_matches(sel, {"app": "x", "tier": "db"})
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {"app": "x"})


# ------------------------------------------------------------------ helm


def test_helm_upgrade_ok():
    d = after_upgrade("longhorn", load("helm-history-before.json"), load("helm-history-upgraded.json"), 0)
    assert (d.action, d.revision) == ("ok", 3)


def test_helm_atomic_rollback_stops_the_rollout():
    d = after_upgrade("longhorn", load("helm-history-before.json"), load("helm-history-atomic-rolled-back.json"), 1)
    assert d.action == "stop" and "Rollback to 2" in d.reason


def test_helm_stuck_release_is_rolled_back_to_the_last_good_revision():
    d = after_upgrade("longhorn", load("helm-history-before.json"), load("helm-history-stuck.json"), -9)
    assert (d.action, d.revision) == ("rollback", 2) and "pending-upgrade" in d.reason


def test_rollback_target():
    assert rollback_target(load("helm-history-upgraded.json"), "1.9.2") == 2
    assert rollback_target(load("helm-history-upgraded.json"), "9.9.9") is None

