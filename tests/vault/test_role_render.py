"""The vault component's values (installer/platform/components/vault.py) rendered through HashiCorp's real
vault-0.30.0 chart with helm at the bundled K3s version.

What is not executed here: the in-cluster apply (no K3s on this machine); see test_e2e_vault_release below.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from installer.core.errors import InventoryError
from installer.deploy.inventory import load_inventory
from installer.platform.components import vault
from installer.platform.values import role_vars as component_vars
from installer.platform.values import site_values as chart_values


def role_vars(inv):
    return component_vars("vault", inv)


def site_values(inv):
    return chart_values("vault", inv)


def server_names(inv):
    return vault.server_names(role_vars(inv))

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT.parent / "shared" / "fixtures" / "charts" / "vault-0.30.0.tgz"
if not CHART.is_file():
    CHART = Path("/work/shared/fixtures/charts/vault-0.30.0.tgz")
HELM = ROOT / ".tools" / "bin" / "helm"


def k3s_kube_version() -> str:
    text = (ROOT / "bundles" / "platform.yaml").read_text()
    m = re.search(r"/k3s/releases/download/v(\d+\.\d+\.\d+)%2Bk3s\d+/k3s\b", text)
    assert m, "bundles/platform.yaml names no K3s release"
    return m.group(1)


def manifest_values() -> dict:
    doc = yaml.safe_load((ROOT / "bundles" / "platform.yaml").read_text())
    charts = doc["spec"]["charts"] if "spec" in doc else doc["charts"]
    return next(c for c in charts if c["name"] == "vault").get("values") or {}


def _inventory(tmp_path: Path, servers: int, agents: int, **vars_) -> Path:
    hosts_s = {f"s{i}": {"ansible_host": f"10.9.0.{10 + i}"} for i in range(servers)}
    hosts_a = {f"a{i}": {"ansible_host": f"10.9.0.{50 + i}"} for i in range(agents)}
    doc = {"all": {"vars": {"medai_cluster_name": "r",
                            "medai_keycloak_hostname": "keycloak.example.internal", "medai_metallb_pool": "10.9.0.200-10.9.0.210",
                            **({"medai_api_vip": "10.9.0.5"} if servers >= 3 else {}), **vars_},
                   "children": {"servers": {"hosts": hosts_s}, **({"agents": {"hosts": hosts_a}} if agents else {})}}}
    p = tmp_path / "site.yml"
    p.write_text(yaml.safe_dump(doc))
    return p


def render(tmp_path: Path, inv_path: Path) -> list[dict]:
    if not HELM.is_file():
        pytest.skip("helm is not installed (.ci/setup-host.sh)")
    inv = load_inventory(inv_path)
    (tmp_path / "manifest-values.yaml").write_text(yaml.safe_dump(manifest_values()))
    (tmp_path / "site-values.yaml").write_text(yaml.safe_dump(site_values(inv)))
    out = subprocess.run([str(HELM), "template", "vault", str(CHART), "--namespace", "vault",
                          "--kube-version", k3s_kube_version(), "-f", str(tmp_path / "manifest-values.yaml"),
                          "-f", str(tmp_path / "site-values.yaml")], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def test_three_nodes_render_ha_raft_with_tls_longhorn_injector_and_audit(tmp_path):
    objs = render(tmp_path, _inventory(tmp_path, 3, 2))
    sts = _one(objs, "StatefulSet", "vault")
    assert sts["spec"]["replicas"] == 3
    claims = {c["metadata"]["name"]: c["spec"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert set(claims) == {"data", "audit"}
    assert all(c["storageClassName"] == "longhorn" for c in claims.values())
    ctr = next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "vault")
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    assert mounts["/vault/audit"] == "audit" and mounts["/vault/data"] == "data"
    assert mounts["/vault/userconfig/vault-tls"] == "tls"
    env = {e["name"]: e.get("value") for e in ctr["env"]}
    assert env["VAULT_ADDR"].startswith("https://") and env["VAULT_CACERT"] == "/vault/userconfig/vault-tls/ca.crt"
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert vols["tls"]["secret"]["secretName"] == "vault-tls"

    config = _one(objs, "ConfigMap", "vault-config")["data"]["extraconfig-from-values.hcl"]
    assert 'storage "raft"' in config and "tls_disable = 0" in config and "tls_disable = 1" not in config
    assert config.count('tls_cert_file = "/vault/userconfig/vault-tls/tls.crt"') == 1  # the one listener
    joins = re.findall(r'leader_api_addr = "(https://[^"]+)"', config)
    assert joins == [f"https://vault-{i}.vault-internal:8200" for i in range(3)]
    assert config.count('leader_ca_cert_file = "/vault/userconfig/vault-tls/ca.crt"') == 3
    assert 'seal "transit"' not in config
    assert _one(objs, "Deployment", "vault-agent-injector")["spec"]["replicas"] == 2
    _one(objs, "MutatingWebhookConfiguration")
    assert _one(objs, "Service", "vault-active")["spec"]["ports"][0]["port"] == 8200


def test_fewer_than_three_nodes_render_one_replica(tmp_path):
    objs = render(tmp_path, _inventory(tmp_path, 1, 1))
    assert _one(objs, "StatefulSet", "vault")["spec"]["replicas"] == 1
    config = _one(objs, "ConfigMap", "vault-config")["data"]["extraconfig-from-values.hcl"]
    assert re.findall(r'leader_api_addr = "([^"]+)"', config) == ["https://vault-0.vault-internal:8200"]


def test_transit_auto_unseal_renders_a_seal_stanza_and_takes_the_token_from_a_secret(tmp_path):
    transit = {"address": "https://vault-dc2.site.internal:8200", "key_name": "medai-unseal",
               "token_secret": "vault-transit-token", "ca_secret": "vault-transit-ca"}
    objs = render(tmp_path, _inventory(tmp_path, 3, 0, medai_vault_transit=transit))
    config = _one(objs, "ConfigMap", "vault-config")["data"]["extraconfig-from-values.hcl"]
    assert 'seal "transit"' in config and 'key_name = "medai-unseal"' in config
    assert 'tls_ca_cert = "/vault/userconfig/transit-ca/ca.crt"' in config and "token" not in config.split('seal "transit"')[1]
    ctr = _one(objs, "StatefulSet", "vault")["spec"]["template"]["spec"]["containers"][0]
    tok = next(e for e in ctr["env"] if e["name"] == "VAULT_TOKEN")
    assert tok["valueFrom"]["secretKeyRef"] == {"name": "vault-transit-token", "key": "token"}


def test_bad_role_values_are_refused_naming_the_field(tmp_path):
    with pytest.raises(InventoryError, match=r"all\.vars\.medai_vault_replicas: 2 must be 1 or an odd number"):
        role_vars(load_inventory(_inventory(tmp_path, 3, 0, medai_vault_replicas=2)))
    with pytest.raises(InventoryError, match=r"all\.vars\.medai_vault_replicas: 5 replicas but only 3 node"):
        role_vars(load_inventory(_inventory(tmp_path, 3, 0, medai_vault_replicas=5)))
    with pytest.raises(InventoryError, match=r"medai_vault_transit\.token_secret: required"):
        role_vars(load_inventory(_inventory(tmp_path, 1, 0, medai_vault_transit={"address": "https://x:8200",
                                                                                 "key_name": "k"})))


def test_server_certificate_names_cover_pods_services_and_the_port_forward(tmp_path):
    names = server_names(load_inventory(_inventory(tmp_path, 3, 0, medai_vault_extra_sans=["vault.site.internal"])))
    for n in ("vault.vault.svc", "vault-0.vault-internal", "vault-2.vault-internal", "*.vault-internal",
              "vault.site.internal", "127.0.0.1"):
        assert n in names


E2E_READY = bool(os.environ.get("MEDAI_E2E_K3S") and os.environ.get("MEDAI_E2E_KUBECONFIG"))


@pytest.mark.e2e
@pytest.mark.skipif(not E2E_READY, reason="in-cluster apply of the vault chart not executed: needs MEDAI_E2E_K3S and "
                                          "MEDAI_E2E_KUBECONFIG (a running K3s with Longhorn and the bundle's images)")
def test_e2e_vault_release_in_k3s(tmp_path):
    """The release as roles/vault applies it; the pods start sealed and uninitialised (never run on this machine)."""
    import time

    kc = os.environ["MEDAI_E2E_KUBECONFIG"]
    inv = load_inventory(_inventory(tmp_path, 1, 0))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(manifest_values()))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(site_values(inv)))
    from installer.deploy.vault import pki
    from installer.deploy.vault.bootstrap_tls import vault_tls_vars

    tls = vault_tls_vars(inv, tmp_path / "ca")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-tls", "namespace": "vault"},
              "stringData": {"tls.crt": tls["medai_vault_tls_cert"], "tls.key": tls["medai_vault_tls_key"],
                             "ca.crt": tls["medai_vault_tls_ca"]}}
    subprocess.run(["kubectl", "--kubeconfig", kc, "create", "namespace", "vault"], capture_output=True)
    subprocess.run(["kubectl", "--kubeconfig", kc, "apply", "-f", "-"], input=yaml.safe_dump(secret), text=True,
                   check=True, capture_output=True)
    subprocess.run([str(HELM), "upgrade", "--install", "vault", str(CHART), "-n", "vault", "--kubeconfig", kc,
                    "-f", str(tmp_path / "m.yaml"), "-f", str(tmp_path / "s.yaml")], check=True, capture_output=True)
    deadline = time.monotonic() + 300
    phase = ""
    while time.monotonic() < deadline and phase != "Running":
        phase = subprocess.run(["kubectl", "--kubeconfig", kc, "-n", "vault", "get", "pod", "vault-0", "-o",
                                "jsonpath={.status.phase}"], capture_output=True, text=True).stdout
        time.sleep(5)
    assert phase == "Running"
    assert pki.root_ca(tmp_path / "ca", "r").cert_path.is_file()
