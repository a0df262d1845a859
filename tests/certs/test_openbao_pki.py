"""`medai certs` and `medai certs rotate` against a real OpenBao Raft cluster (tests/vault's fixture) whose PKI
issues certificates of minutes and days: crit, warn and expired are real certificates, and so is the rotation
(vault group, and the intermediate through the offline root)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from installer.deploy.vault.client import Endpoint
from installer.deploy.vault.token import root_session
from tests.vault.conftest import OPERATORS, THRESHOLD, bao_cluster, operators, write_inventory  # noqa: F401

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(240)]

MEDAI = str(Path(sys.executable).with_name("medai"))
READER_POLICY = 'path "pki_int/certs" { capabilities = ["list"] }\npath "pki_int/cert/*" { capabilities = ["read"] }\n'


class Site:
    def __init__(self, base: Path, cluster, ops):
        self.base, self.cluster, self.ops = base, cluster, ops
        self.home = base / "medai-home"
        self.inventory = write_inventory(base / "site.yml", cluster, ops,
                                         medai_vault_kubernetes_host="https://10.99.0.10:6443",
                                         medai_vault_kubernetes_ca_cert=str(cluster.ca_cert))

    def medai(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["MEDAI_HOME"] = str(self.home)
        return subprocess.run([MEDAI, *args, "--inventory", str(self.inventory)], input=stdin, text=True,
                              capture_output=True, env=env, cwd=self.base, timeout=120)

    def shares(self) -> str:
        files = [self.home / "vault" / "vaulttest" / "shares" / f"{n}.gpg" for n in OPERATORS[:THRESHOLD]]
        return "".join(self.ops.decrypt(f) + "\n" for f in files)

    def endpoint(self) -> Endpoint:
        n = self.cluster.nodes[0]
        return Endpoint(n.name, n.addr, str(self.cluster.ca_cert))

    def certs(self) -> tuple[int, dict]:
        with root_session(self.endpoint(), self.shares().split()) as root:
            root.sys.create_or_update_policy("certs-reader", READER_POLICY)
            token = root.auth.token.create(policies=["certs-reader"], ttl="5m", no_parent=True)["auth"]["client_token"]
        p = self.medai("certs", "--no-nodes", "--json", "--token-stdin", stdin=token + "\n")
        assert p.returncode in (0, 1, 2), p.stderr
        assert token not in p.stdout + p.stderr
        doc = json.loads(p.stdout)
        return p.returncode, {c["name"]: c for c in doc["certificates"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory, bao_cluster, operators):  # noqa: F811
    s = Site(tmp_path_factory.mktemp("certs-site"), bao_cluster, operators)
    assert s.medai("vault", "init").returncode == 0
    p = s.medai("vault", "setup", "--stdin", stdin=s.shares())
    assert p.returncode == 0, p.stderr + p.stdout
    return s


def _issue(site: Site, role: str, ttl: str) -> None:
    with root_session(site.endpoint(), site.shares().split()) as root:
        root.secrets.pki.generate_certificate(role, f"{role}.test.internal", extra_params={"ttl": ttl},
                                              mount_point="pki_int")


def test_short_lived_certificates_are_crit_warn_and_expired(site):
    code, certs = site.certs()
    assert code == 0, certs
    assert certs["intermediate CA"]["level"] == "ok" and certs["intermediate CA"]["issuer"] == "medai test root CA"
    assert certs["site root CA"]["level"] == "ok"
    assert certs["listener bao1"]["level"] == "ok" and "vault.test.internal" in certs["listener bao1"]["names"]
    assert "listener bao3" not in certs  # plain HTTP: no certificate
    assert certs["keycloak.test.internal"]["level"] == "ok" and certs["keycloak.test.internal"]["daysLeft"] > 80
    assert all(certs[f"OpenPGP key of {n}"]["fact"] == "never expires" for n in OPERATORS)

    _issue(site, "keycloak", "5m")
    _issue(site, "harbor", "240h")
    _issue(site, "inference", "2s")
    time.sleep(3)
    code, certs = site.certs()
    assert code == 2
    kc, hb, inf = certs["keycloak.test.internal"], certs["harbor.test.internal"], certs["inference.test.internal"]
    assert kc["level"] == "crit" and "minutes left" in kc["fact"], kc
    assert hb["level"] == "warn" and "9 days left" in hb["fact"], hb
    assert inf["level"] == "crit" and inf["fact"].startswith("expired"), inf
    assert kc["issuer"] == "medai vaulttest intermediate CA"


def test_rotate_vault_group_reissues_every_service_certificate(site):
    p = site.medai("certs", "rotate", "--yes", "--group", "vault", "--stdin", stdin=site.shares())
    assert p.returncode == 0, p.stderr
    for svc in ("vault", "keycloak", "harbor", "inference"):
        assert f"vault: {svc}: new certificate serial" in p.stdout
    assert "operator: Vault's listener serves its new certificate once its pods restart" in p.stdout
    code, certs = site.certs()
    assert code == 0, {k: v["fact"] for k, v in certs.items() if v["level"] != "ok"}
    assert certs["keycloak.test.internal"]["daysLeft"] > 80


def test_the_intermediate_is_re_signed_offline_and_new_certificates_come_from_it(site, tmp_path):
    csr = tmp_path / "inter.csr"
    p = site.medai("certs", "rotate", "--yes", "--group", "intermediate", "--stdin", "--csr-out", str(csr), stdin=site.shares())
    assert p.returncode == 0, p.stderr
    assert f"operator: carry {csr}" in p.stdout and "BEGIN CERTIFICATE REQUEST" in csr.read_text()
    signed = tmp_path / "signed.pem"
    s = subprocess.run([MEDAI, "certs", "sign-intermediate", "--csr", str(csr), "--root-ca-dir",
                        str(site.cluster.root_ca_dir), "--out", str(signed)], capture_output=True, text=True, timeout=60)
    assert s.returncode == 0, s.stderr
    new_inter = x509.load_pem_x509_certificate(signed.read_bytes())
    p = site.medai("certs", "rotate", "--yes", "--group", "intermediate", "--stdin", "--signed", str(signed), stdin=site.shares())
    assert p.returncode == 0, p.stderr
    assert "new default issuer" in p.stdout
    assert site.medai("certs", "rotate", "--yes", "--group", "vault", "--service", "keycloak", "--stdin",
                      stdin=site.shares()).returncode == 0
    _, certs = site.certs()
    kc_serial = certs["keycloak.test.internal"]["serial"]
    with root_session(site.endpoint(), site.shares().split()) as root:
        pem = root.secrets.pki.read_certificate(kc_serial, mount_point="pki_int")["data"]["certificate"]
    kc = x509.load_pem_x509_certificate(pem.encode())
    aki = kc.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = new_inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski  # signed by the new intermediate
    missing = subprocess.run([MEDAI, "certs", "sign-intermediate", "--csr", str(csr), "--root-ca-dir",
                              str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and f"{tmp_path / 'nowhere'}: no site root CA here" in missing.stderr


def test_status_reads_vault_from_its_api_and_a_stopped_member_is_crit(site):
    p = site.medai("status", "--json", "--timeout", "15")
    assert p.returncode == 2, p.stderr  # no install on this site: the cluster concerns are crit
    lines = json.loads(p.stdout)["lines"]
    vault = [ln for ln in lines if ln["concern"] == "vault"]
    assert [ln["level"] for ln in vault] == ["ok"] * 3 and sum(", leader" in ln["fact"] for ln in vault) == 1, vault
    certs = {ln["fact"].split(":")[0]: ln for ln in lines if ln["concern"] == "certificates"}
    assert certs["vault"]["level"] == "ok" and "listener" in certs["vault"]["fact"]
    assert certs["intermediate"]["level"] == "ok" and certs["operators"]["level"] == "ok"
    assert {ln["fact"] for ln in lines if ln["concern"] == "nodes"} == {
        f"{site.home}/kubeconfig-vaulttest: no kubeconfig for vaulttest "
        "(written by a successful medai install)"}

    with root_session(site.endpoint(), site.shares().split()) as root:
        p = site.medai("status", "--json", "--timeout", "15", "--token-stdin", stdin=root.token + "\n")
    peers = [ln for ln in json.loads(p.stdout)["lines"] if ln["fact"].startswith("raft peers")]
    assert len(peers) == 1 and peers[0]["level"] == "ok" and "(3 of 3 members voting)" in peers[0]["fact"], peers

    node = site.cluster.nodes[2]
    site.cluster.stop(node)
    p = site.medai("status", "--json", "--timeout", "15")
    vault = [ln for ln in json.loads(p.stdout)["lines"] if ln["concern"] == "vault"]
    assert [ln["level"] for ln in vault] == ["ok", "ok", "crit"]
    assert vault[2]["fact"].startswith(f"bao3 ({node.addr}): UNREACHABLE")
