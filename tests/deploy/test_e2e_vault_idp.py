"""Vault, PostgreSQL (CNPG), Keycloak and Harbor applied and configured by `medai install` on a real K3s: needs
MEDAI_E2E_K3S (a real K3s airgap set, see test_e2e_k3s.py) and MEDAI_E2E_PLATFORM_BUNDLE (a bundle built by
`medai bundle build bundles/platform.yaml` on a connected host, holding the real images). Skipped otherwise,
saying which is missing: K3s and the upstream images cannot be downloaded here and no stand-in is used. Not
executed on this project's CI.

Keycloak's realm Job, the bootstrap admin's removal and Harbor's API configuration run through the same hooks as
`medai install` (installer/deploy/idp_step.py); the control host must resolve keycloak.e2e.internal and
harbor.e2e.internal to their MetalLB addresses (e.g. /etc/hosts) for the admin and Harbor API calls.

The operators' shares are typed the way an operator would: the test waits for the encrypted share files the
install's Vault init writes, decrypts them with the operators' gpg keys and feeds the threshold on stdin.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.lab]
ROOT = Path(__file__).resolve().parents[2]
K3S_SET = os.environ.get("MEDAI_E2E_K3S")
PLATFORM_BUNDLE = os.environ.get("MEDAI_E2E_PLATFORM_BUNDLE")
MISSING = [n for n, v in (("MEDAI_E2E_K3S", K3S_SET), ("MEDAI_E2E_PLATFORM_BUNDLE", PLATFORM_BUNDLE)) if not v]
CLUSTER = "e2e-idp"

needs_k3s = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not set: no real K3s or no bundle with "
                                                    "the real platform images; the Vault/PostgreSQL/Keycloak/Harbor "
                                                    "apply, the keycloak-config-cli realm Job, the bootstrap "
                                                    "admin's removal and Harbor's API configuration were not executed")


def _kubectl(kc: Path, *args: str) -> str:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not on PATH: the cluster's state cannot be read")
    return subprocess.run([kubectl, "--kubeconfig", str(kc), *args], capture_output=True, text=True, check=True).stdout


@needs_k3s
def test_vault_idp_apply_unseal_secrets_and_rerun(lab_nodes, tmp_path):
    from tests.vault.conftest import OPERATORS, THRESHOLD, Operators, _gen_key

    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed: the operators' keys cannot be made")
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    keys = {n: tmp_path / f"{n}.asc" for n in [*OPERATORS, "security-officer"]}
    for n, k in keys.items():
        _gen_key(gnupg, n, k)
    ops = Operators(gnupg, {n: keys[n] for n in OPERATORS}, keys["security-officer"])
    lab = lab_nodes(servers=1, agents=2)
    inv = lab.inventory(tmp_path / "site.yml", cluster_name=CLUSTER, bundle_dir=Path(PLATFORM_BUNDLE), extra_vars={
        "medai_preflight_min_cpus": {"servers": 1, "agents": 1},
        "medai_preflight_min_memory_mb": {"servers": 256, "agents": 256},
        "medai_preflight_min_disk_gb": {"servers": 1, "agents": 1},
        "medai_preflight_require_time_sync": False,
        "medai_harbor_hostname": "harbor.e2e.internal",
        "medai_keycloak_hostname": "keycloak.e2e.internal",
        "medai_keycloak_clients": {
            "harbor": {"redirect_uris": ["https://harbor.e2e.internal/c/oidc/callback"]},
            "medical-ai-api": {"redirect_uris": ["https://api.e2e.internal/oauth2/callback"]},
            "medical-ai-web": {"redirect_uris": ["https://ai.e2e.internal/auth/callback"]}},
        "medai_vault_operators": [{"name": n, "pgp_key": str(k)} for n, k in ops.keys.items()],
        "medai_vault_threshold": THRESHOLD,
        "medai_vault_root_token_pgp_key": str(ops.root_key),
        "medai_vault_domain": "e2e.internal"})
    home = tmp_path / "home"
    env = dict(os.environ, MEDAI_HOME=str(home))
    shares_dir = home / "vault" / CLUSTER / "shares"

    def install() -> tuple[int, str]:
        p = subprocess.Popen([sys.executable, "-m", "installer.cli.main", "install", "--inventory", str(inv), "--yes"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=ROOT, env=env)
        deadline = time.monotonic() + 3600
        while not all((shares_dir / f"{n}.gpg").is_file() for n in OPERATORS[:THRESHOLD]):
            assert p.poll() is None, p.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "Vault was never initialised"
            time.sleep(2)
        for n in OPERATORS[:THRESHOLD]:
            p.stdin.write(ops.decrypt(shares_dir / f"{n}.gpg") + "\n")
        p.stdin.close()
        out = p.stdout.read()
        return p.wait(timeout=3600), out

    rc, out = install()
    assert rc == 0, out[-4000:]
    order = ["release cilium", "release metallb", "release longhorn", "release vault", "release cloudnative-pg",
             "release keycloakx", "release harbor"]
    assert [out.index(o) for o in order] == sorted(out.index(o) for o in order)
    assert "unsealed:" in out and "Kubernetes Secrets synced" in out
    # after keycloakx: the realm Job, then the temporary admin removed; after harbor: its API configuration
    assert out.index("realm medical-ai applied") < out.index("temporary bootstrap admin removed") < out.index(
        "harbor: projects platform created, medical-ai created; robots cluster-pull created, site-ci created")
    kc = home / f"kubeconfig-{CLUSTER}"
    status = subprocess.run([sys.executable, "-m", "installer.cli.main", "vault", "status", "--inventory", str(inv),
                             "--json"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert not [m for m in json.loads(status.stdout)["members"] if m["sealed"]]
    from installer.core.helm import helm_executable
    listed = json.loads(subprocess.run([helm_executable(), "--kubeconfig", str(kc), "list", "-A", "-o", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    revisions = {r["name"]: (r["status"], r["revision"]) for r in listed}
    assert {revisions[n][0] for n in ("vault", "cloudnative-pg", "keycloakx", "harbor")} == {"deployed"}
    clusters = json.loads(_kubectl(kc, "get", "clusters.postgresql.cnpg.io", "-A", "-o", "json"))["items"]
    assert {c["metadata"]["name"] for c in clusters} == {"keycloak-db", "harbor-db"}
    admin = json.loads(_kubectl(kc, "-n", "harbor", "get", "secret", "medai-harbor-admin", "-o", "json"))
    password = base64.b64decode(admin["data"]["password"]).decode()
    assert "keycloak-bootstrap-admin" not in _kubectl(kc, "-n", "keycloak", "get", "secrets", "-o", "name")
    state = json.loads(_kubectl(kc, "-n", "keycloak", "get", "configmap", "medai-keycloak-state", "-o", "json"))
    assert state["data"] == {"bootstrapAdminRemoved": "true"}
    # the generated secret is in Vault and the cluster only: nothing on the control host holds it in clear
    hits = subprocess.run(["grep", "-rlF", password, str(home), str(tmp_path / "site.yml")], capture_output=True, text=True)
    assert hits.returncode == 1, f"a platform secret is in clear in {hits.stdout}"
    assert password not in out
    run = sorted((home / "runs").glob("*-install-*/run.json"))[-1]
    record = json.loads(run.read_text())
    assert record["vault"]["platformSecrets"]["synced"] and password not in run.read_text()

    rc2, out2 = install()  # a rerun unseals nothing new, keeps every secret, upgrades nothing
    assert rc2 == 0, out2[-4000:]
    assert "already initialised" in out2 and "0 created in Vault" in out2
    assert "temporary bootstrap admin removed" not in out2  # removed once; keycloakx applied without it from the start
    assert "robots cluster-pull unchanged, site-ci unchanged; OIDC unchanged" in out2
    listed = json.loads(subprocess.run([helm_executable(), "--kubeconfig", str(kc), "list", "-A", "-o", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert {r["name"]: (r["status"], r["revision"]) for r in listed} == revisions
    again = json.loads(_kubectl(kc, "-n", "harbor", "get", "secret", "medai-harbor-admin", "-o", "json"))
    assert again["data"] == admin["data"]
