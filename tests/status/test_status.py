"""`medai status` from recorded Kubernetes and Helm API responses at the adapter seam: a healthy site, a sealed Vault
pod, a failed release, a degraded volume, an image the bundle does not carry; exit codes asserted. An API that
never answers gives a crit line within the timeout (a real kubernetes client on a socket that never replies)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import time

import pytest
import typer
import yaml
from typer.testing import CliRunner

from installer.certs.model import Thresholds, from_pem
from installer.cli import status as status_cli
from installer.deploy import platform_step
from installer.deploy.state import kubeconfig_path
from installer.platform.apply import KubeApi
from installer.status import local
from installer.status.site import site_status
from tests.certs.certmaker import openssl_cert
from tests.status.recorded import FIXTURES, Recorded, gpg_key, installed_bundle, inventory, record, tls_secret

D = dt.timedelta


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return gpg_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def site(tmp_path, monkeypatch, key):
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    inv = inventory(tmp_path, key)
    digest, _ = installed_bundle(home)
    record(home, "install", inv, "successful", bundleIndexSha256=digest,
           egress={"result": "clean", "nodes": {"srv1": []}, "packets": 0, "failures": []})
    k3s = from_pem(openssl_cert(tmp_path / "k3s" / "client-admin.crt", "system:admin", end=D(days=300)).read_bytes(),
                   "k3s", "/var/lib/rancher/k3s/server/tls/client-admin.crt", "srv1")
    record(home, "certs", inv, "ok", summary={"certificates": [k3s.as_dict(dt.datetime.now(dt.UTC), Thresholds())]})
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "evidence.json").write_text(json.dumps({"waivers": []}))
    record(home, "verify", inv, "successful", evidence={"dir": str(evidence), "gatePassed": True, "failOn": "high",
                                                        "totals": {"failNotWaived": 3}})
    record(home, "backup-create", inv, "successful", summary={"set": "S1", "components": ["etcd", "postgresql", "site", "vault"]})
    client = openssl_cert(tmp_path / "kc" / "admin.crt", "system:admin", end=D(days=300)).read_bytes()
    kc = kubeconfig_path("site1", home)
    kc.write_text(yaml.safe_dump({"users": [{"name": "default",
                                             "user": {"client-certificate-data": base64.b64encode(client).decode()}}]}))
    secrets = {("vault", "vault-tls"): tls_secret(tmp_path / "s", "vault", 300),
               ("keycloak", "keycloak-tls"): tls_secret(tmp_path / "s", "keycloak", 200)}
    cluster = Recorded(json.loads((FIXTURES / "healthy.json").read_text()), secrets)
    monkeypatch.setattr(platform_step, "adapters", lambda kubeconfig, bundle: (cluster, cluster))
    return inv, cluster, evidence


def _cli(inv, *args):
    app = typer.Typer()
    status_cli.register(app)
    return CliRunner().invoke(app, ["--inventory", str(inv), *args])


def _by(lines, level):
    return [f"{ln.concern}: {ln.fact}" for ln in lines if ln.level == level]


def test_a_healthy_site_is_all_ok_and_exits_0(site):
    inv, _, _ = site
    r = _cli(inv)
    assert r.exit_code == 0, r.output
    for concern, fact in [("nodes", "srv1: Ready, K3s v1.34.2+k3s1, kernel 6.1.0-28-amd64"),
                          ("bundle", "3 pods, every running image digest is in the installed bundle"),
                          ("vault", "pod vault/vault-0: unsealed, active"),
                          ("releases", "longhorn-system/longhorn: longhorn-1.9.1 deployed (revision 2)"),
                          ("storage", "2 of 2 Longhorn volumes healthy"),
                          ("compliance", "3 unwaived failure(s), gate passed"),
                          ("egress", "0 packets left the allowed networks"),
                          ("certificates", "k3s: nearest srv1 /var/lib/rancher/k3s/server/tls/client-admin.crt"),
                          ("certificates", "vault: nearest Secret keycloak/keycloak-tls tls.crt: keycloak.site.internal"),
                          ("certificates", "intermediate: nearest Secret vault/vault-tls site root CA: medai site1 root CA"),
                          ("certificates", "operators: nearest")]:
        assert any(ln.startswith("ok") and f" {concern}" in ln and fact in ln for ln in r.output.splitlines()), \
            (concern, fact, r.output)
    doc = json.loads(_cli(inv, "--json").output)
    assert doc["level"] == "ok" and {ln["concern"] for ln in doc["lines"]} >= {
        "nodes", "bundle", "vault", "certificates", "releases", "storage", "backups", "compliance", "egress"}


def test_a_sealed_vault_pod_is_crit(site):
    inv, cluster, _ = site
    cluster.doc["pods"]["vault"]["items"][0]["metadata"]["labels"].update({"vault-sealed": "true", "vault-active": "false"})
    lines = site_status(inv, 10)
    assert _by(lines, "crit") == ["vault: pod vault/vault-0: SEALED (medai vault unseal)",
                                  "vault: no active (leader) Vault pod"]
    assert _cli(inv).exit_code == 2


def test_a_failed_release_is_crit_and_a_pending_one_warn(site):
    inv, cluster, _ = site
    cluster.doc["helm"]["metallb"].update(status="failed", revision="2")
    cluster.doc["helm"]["longhorn"].update(status="pending-upgrade", revision="3")
    lines = site_status(inv, 10)
    assert _by(lines, "crit") == ["releases: metallb-system/metallb: failed (revision 2, metallb-0.15.3)"]
    assert _by(lines, "warn") == ["releases: longhorn-system/longhorn: pending-upgrade (revision 3, longhorn-1.9.1)"]


def test_a_degraded_volume_warns_and_exits_1(site):
    inv, cluster, _ = site
    cluster.doc["volumes"]["items"][1]["status"]["robustness"] = "degraded"
    lines = site_status(inv, 10)
    assert _by(lines, "warn") == ["storage: volume pvc-8a2d4b7f-audit-vault-0: degraded (attached, 3 replicas asked)"]
    assert not _by(lines, "crit")
    assert _cli(inv).exit_code == 1


def test_an_image_not_in_the_bundle_is_crit(site):
    inv, cluster, _ = site
    st = cluster.doc["pods"]["metallb-system"]["items"][0]["status"]["containerStatuses"][0]
    st["imageID"] = "quay.io/metallb/controller@sha256:" + "e" * 64
    (line,) = _by(site_status(inv, 10), "crit")
    assert line.startswith("bundle: post-install check: 3 pods: 1 container(s) run an image the bundle does not carry "
                           "(metallb-system/metallb-controller-6d9f7c5b8-x2x9k main")


def test_node_drift_and_an_expiring_waiver_are_named(site, tmp_path):
    inv, cluster, evidence = site
    node = cluster.doc["nodes"]["items"][0]["status"]
    node["nodeInfo"]["kubeletVersion"] = "v1.33.5+k3s1"
    next(c for c in node["conditions"] if c["type"] == "DiskPressure")["status"] = "True"
    soon = (dt.date.today() + D(days=10)).isoformat()
    (evidence / "evidence.json").write_text(json.dumps({"waivers": [
        {"rule": "xccdf_org.ssgproject.content_rule_x", "scope": "all hosts", "expires": soon}]}))
    lines = site_status(inv, 10)
    assert "nodes: srv1: Ready, DiskPressure, K3s v1.33.5+k3s1, (the installed bundle has 1.34.2), kernel 6.1.0-28-amd64" \
        in _by(lines, "crit")
    assert f"compliance: waiver xccdf_org.ssgproject.content_rule_x (all hosts) expires {soon} (10 days)" in _by(lines, "warn")


def test_an_api_that_never_answers_is_a_crit_line_within_the_timeout(site, tmp_path, monkeypatch):
    inv, _, _ = site
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # accepts into the backlog, never answers
    kc = tmp_path / "hole.kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{hole.getsockname()[1]}",
                                               "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "x"}}]}))
    monkeypatch.setattr(platform_step, "adapters", lambda kubeconfig, bundle: (None, KubeApi(kc)))
    started = time.monotonic()
    try:
        lines = site_status(inv, 2)
    finally:
        hole.close()
    assert time.monotonic() - started < 4
    crit = _by(lines, "crit")
    for concern in ("nodes", "bundle", "vault", "storage"):
        assert f"{concern}: no answer within 2s (unreachable or hung)" in crit, crit
    assert _by(lines, "ok")  # the state-directory concerns still answer


def test_backup_age_per_component_from_the_backup_create_records(tmp_path, key):
    inv = inventory(tmp_path, key)
    home = tmp_path / "home"
    now = dt.datetime.now(dt.UTC)
    assert [(ln.level, ln.fact) for ln in local.backup_lines(home, inv, now)] == [
        ("warn", "no medai backup create recorded for this site yet")]
    old = (now - D(days=8)).isoformat(timespec="seconds")
    record(home, "backup-create", inv, "successful", finished=old,
           summary={"set": "S-old", "components": ["etcd", "postgresql", "site", "vault"]})
    three = (now - D(days=3)).isoformat(timespec="seconds")
    record(home, "backup-create", inv, "successful", finished=three, summary={"set": "S-mid", "components": ["vault"]})
    record(home, "backup-create", inv, "failed", summary={"set": "S-failed", "components": ["etcd"]})
    record(home, "backup-create", inv, "successful", summary={"set": "S-new", "components": ["etcd", "site"]})
    lines = {ln.fact.split(":")[0]: (ln.level, ln.fact) for ln in local.backup_lines(home, inv, now)}
    assert lines["etcd"][0] == "ok" and "set S-new" in lines["etcd"][1]
    assert lines["vault"][0] == "warn" and "newest backup 3 days old (set S-mid" in lines["vault"][1]
    assert lines["postgresql"][0] == "crit" and "8 days old (set S-old" in lines["postgresql"][1]
