"""Decisions of the Vault layer that need no server: inventory checks, key reading, the OTP decode, policies,
the port-forward command (the in-cluster path, not executed here: no K3s), Vault's answers to init."""
from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import yaml

from installer.core.errors import VaultError
from installer.deploy.inventory import load_inventory
from installer.deploy.vault import pki, state
from installer.deploy.vault.catalogue import COMPONENTS, default_catalogue
from installer.deploy.vault.configure import policy_hcl
from installer.deploy.vault.pgp import read_public_key
from installer.deploy.vault.portforward import forward_command, pod_names
from installer.deploy.vault.settings import vault_settings
from installer.deploy.vault.token import decode_otp_token


def _inv(tmp_path, servers=1, **vars_):
    doc = {"all": {"vars": {"medai_cluster_name": "c1",
                            "medai_keycloak_hostname": "keycloak.example.internal", "medai_metallb_pool": "10.1.0.200-10.1.0.210",
                            **({"medai_api_vip": "10.1.0.5"} if servers >= 3 else {}), **vars_},
                   "children": {"servers": {"hosts": {f"s{i}": {"ansible_host": f"10.1.0.{10 + i}"}
                                                      for i in range(servers)}}}}}
    p = tmp_path / "site.yml"
    p.write_text(yaml.safe_dump(doc))
    return load_inventory(p)


def test_settings_name_every_bad_field_in_one_error(tmp_path):
    (tmp_path / "a.asc").write_text("x")
    with pytest.raises(VaultError) as e:
        vault_settings(_inv(tmp_path, medai_vault_operators=[{"name": "Alice!", "pgp_key": "a.asc"}],
                            medai_vault_threshold=0))
    msg = str(e.value)
    assert "all.vars.medai_vault_operators[0].name: 'Alice!' must be lower-case" in msg
    assert "all.vars.medai_vault_threshold: Input should be greater than or equal to 1" in msg
    assert "all.vars.medai_vault_root_token_pgp_key: required for Vault" in msg


def test_settings_refuse_a_threshold_one_person_could_meet_and_missing_keys(tmp_path):
    ops = [{"name": n, "pgp_key": f"{n}.asc"} for n in ("alice", "bob", "alice")]
    with pytest.raises(VaultError) as e:
        vault_settings(_inv(tmp_path, medai_vault_operators=ops, medai_vault_threshold=1,
                            medai_vault_root_token_pgp_key="so.asc"))
    msg = str(e.value)
    assert "medai_vault_threshold: 1 would let any single operator unseal alone" in msg
    assert "operator 'alice' listed twice" in msg
    assert f"medai_vault_operators[1].pgp_key: {tmp_path / 'bob.asc'} not found" in msg
    assert f"medai_vault_root_token_pgp_key: {tmp_path / 'so.asc'} not found" in msg
    with pytest.raises(VaultError, match="medai_vault_threshold: 4 is more than the 3 operators"):
        vault_settings(_inv(tmp_path, medai_vault_operators=ops[:2] + [{"name": "carol", "pgp_key": "c"}],
                            medai_vault_threshold=4, medai_vault_root_token_pgp_key="so.asc"))


def test_pgp_key_file_must_be_an_openpgp_public_key(tmp_path):
    pem = tmp_path / "not-pgp.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
    with pytest.raises(VaultError, match=r"not-pgp.pem: not an OpenPGP public key \(no '-----BEGIN PGP PUBLIC KEY BLOCK-----'"):
        read_public_key(pem)
    binary = tmp_path / "x.gpg"
    binary.write_bytes(b"\x01\x02")
    with pytest.raises(VaultError, match="first packet is not a public key"):
        read_public_key(binary)
    with pytest.raises(VaultError, match="cannot read OpenPGP public key"):
        read_public_key(tmp_path / "absent.asc")


def test_armored_and_binary_exports_give_the_same_pgp_keys_value(operators, tmp_path):
    import subprocess

    armored = operators.keys["alice"]
    binary = tmp_path / "alice.gpg"
    subprocess.run(["gpg", "--homedir", str(operators.home), "--batch", "--dearmor", "--output", str(binary),
                    str(armored)], check=True)
    assert read_public_key(armored) == read_public_key(binary)
    assert base64.b64decode(read_public_key(armored)) == binary.read_bytes()


def test_fingerprint_is_the_one_gpg_shows(operators):
    import subprocess

    from installer.deploy.vault.pgp import fingerprint

    out = subprocess.run(["gpg", "--homedir", str(operators.home), "--batch", "--with-colons", "--fingerprint",
                          "alice@hospital.test"], check=True, capture_output=True, text=True).stdout
    gpg_fpr = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))
    assert fingerprint(read_public_key(operators.keys["alice"])) == gpg_fpr


def test_otp_decode_is_the_xor_vault_documents():
    otp = "abcdefghijklmnopqrstuvwxyz01"
    token = "s.Q1w2E3r4T5y6U7i8O9p0A1s2D3"[:len(otp)]
    encoded = base64.b64encode(bytes(a ^ b for a, b in zip(token.encode(), otp.encode()))).decode().rstrip("=")
    assert decode_otp_token(encoded, otp) == token
    with pytest.raises(VaultError, match="differ in length"):
        decode_otp_token(encoded, otp + "x")


def test_each_component_policy_reads_only_its_own_subtree():
    for c in COMPONENTS:
        hcl = policy_hcl(c, "medai", "pki_int")
        assert f'path "medai/data/{c.name}/*"' in hcl
        assert '"create"' not in hcl and '"update"' not in hcl.split("pki_int")[0] and "sudo" not in hcl
        for other in COMPONENTS:
            if other is not c:
                assert f"/{other.name}/" not in hcl
    assert {e.component for e in default_catalogue().entries} <= {c.name for c in COMPONENTS}


def test_in_cluster_members_are_reached_by_port_forward_per_pod(tmp_path):
    s_inv = _inv(tmp_path, servers=3)
    ops = tmp_path / "k.asc"
    ops.write_text("k")
    inv_vars = dict(medai_vault_operators=[{"name": "a", "pgp_key": "k.asc"}], medai_vault_threshold=1,
                    medai_vault_root_token_pgp_key="k.asc")
    s3 = vault_settings(_inv(tmp_path, servers=3, **inv_vars))
    s1 = vault_settings(_inv(tmp_path, servers=1, **inv_vars))
    assert pod_names(s3) == ["vault-0", "vault-1", "vault-2"] and pod_names(s1) == ["vault-0"]
    assert forward_command("/usr/bin/kubectl", "/k/config", "vault", "vault-1", 40123) == [
        "/usr/bin/kubectl", "--kubeconfig", "/k/config", "-n", "vault", "port-forward", "--address", "127.0.0.1",
        "pod/vault-1", "40123:8200"]
    assert s_inv.cluster == "c1"


def test_operator_files_come_from_the_init_record_and_are_private(tmp_path):
    record = {"operators": [{"name": "alice", "share_pgp_b64": base64.b64encode(b"\xc1enc-a").decode()}],
              "root_token_pgp_b64": base64.b64encode(b"\xc1enc-root").decode()}
    state.write_init_record("c1", record, tmp_path)
    files = state.write_operator_files("c1", record, tmp_path)
    assert [f.read_bytes() for f in files] == [b"\xc1enc-a", b"\xc1enc-root"]
    for f in [*files, tmp_path / "vault" / "c1" / "init.json"]:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert json.loads((tmp_path / "vault" / "c1" / "init.json").read_text()) == record
    (tmp_path / "vault" / "c1" / "init.json").write_text("{")
    with pytest.raises(VaultError, match="init.json: not valid JSON"):
        state.read_init_record("c1", tmp_path)


def test_root_ca_key_is_private_reused_and_checked(tmp_path):
    a = pki.root_ca(tmp_path / "ca", "c1")
    assert stat.S_IMODE((tmp_path / "ca" / "root-ca.key").stat().st_mode) == 0o600
    assert pki.root_ca(tmp_path / "ca", "c1").cert == a.cert
    other = pki.root_ca(tmp_path / "other", "c1")
    (tmp_path / "ca" / "root-ca.key").write_bytes((tmp_path / "other" / "root-ca.key").read_bytes())
    with pytest.raises(VaultError, match="root-ca.key: the key does not belong to"):
        pki.root_ca(tmp_path / "ca", "c1")
    assert other.cert != a.cert


MEDAI = str(__import__("pathlib").Path(__import__("sys").executable).with_name("medai"))


def _medai(*args, cwd, stdin=""):
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["MEDAI_HOME"] = str(cwd / "home")
    return subprocess.run([MEDAI, *args], capture_output=True, text=True, input=stdin, env=env, cwd=cwd, timeout=60)


def test_cli_without_vault_vars_names_each_missing_field_and_exits_2(tmp_path):
    _inv(tmp_path)
    p = _medai("vault", "status", "--inventory", str(tmp_path / "site.yml"), cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "all.vars.medai_vault_operators: required for Vault" in lines[0]
    assert any("all.vars.medai_vault_threshold: required for Vault" in ln for ln in lines)
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "home").exists()  # nothing half-done


def test_cli_names_the_unreachable_member(tmp_path):
    import socket

    (tmp_path / "k.asc").write_text("k")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _inv(tmp_path, medai_vault_operators=[{"name": "a", "pgp_key": "k.asc"}, {"name": "b", "pgp_key": "k.asc"}],
         medai_vault_threshold=2, medai_vault_root_token_pgp_key="k.asc",
         medai_vault_members=[{"name": "vault-0", "addr": f"http://127.0.0.1:{port}"}])
    p = _medai("vault", "unseal", "--stdin", "--inventory", str(tmp_path / "site.yml"), cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith(f"error: vault vault-0 (http://127.0.0.1:{port}): read seal status: unreachable")
    st = _medai("vault", "status", "--inventory", str(tmp_path / "site.yml"), cwd=tmp_path)
    assert st.returncode == 3 and "vault-0" in st.stdout and "UNREACHABLE" in st.stdout
