"""medai's Vault code against a real three-node OpenBao 2.7 Raft cluster on loopback (HashiCorp's Vault
binary itself is not run here; only API paths both implement are used).

The tests run in file order on one cluster: init (killed, then rerun), decrypt, threshold, setup, policies,
Kubernetes auth, PKI, restart + unseal, rerun, and last the leak check over everything that was written.
"""
from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from installer.deploy.vault.client import Endpoint
from installer.deploy.vault.token import root_session
from tests.vault.conftest import OPERATORS, THRESHOLD, write_inventory

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(240)]

MEDAI = str(Path(sys.executable).with_name("medai"))


class Run:
    """Shared across the module: the inventory, MEDAI_HOME, and every byte medai printed."""

    def __init__(self, base: Path, cluster, ops):
        self.base, self.cluster, self.ops = base, cluster, ops
        self.home = base / "medai-home"
        self.inventory = write_inventory(base / "site.yml", cluster, ops,
                                         medai_vault_kubernetes_host="https://10.99.0.10:6443",
                                         medai_vault_kubernetes_ca_cert=str(cluster.ca_cert),
                                         medai_harbor_hostname="harbor.test.internal")
        self.outputs: list[bytes] = []
        self.secrets: dict[str, str] = {}

    def medai(self, *args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
        e = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        e.update({"MEDAI_HOME": str(self.home), **(env or {})})
        p = subprocess.run([MEDAI, *args, "--inventory", str(self.inventory)], input=stdin.encode(),
                           capture_output=True, env=e, cwd=self.base, timeout=120)
        self.outputs += [p.stdout, p.stderr]
        return p

    @property
    def vault_dir(self) -> Path:
        return self.home / "vault" / "vaulttest"

    def shares(self) -> list[str]:
        return [self.ops.decrypt(self.vault_dir / "shares" / f"{n}.gpg") for n in OPERATORS]

    def endpoint(self, i: int = 0) -> Endpoint:
        n = self.cluster.nodes[i]
        return Endpoint(n.name, n.addr, str(self.cluster.ca_cert))


@pytest.fixture(scope="module")
def run(tmp_path_factory, bao_cluster, operators):
    return Run(tmp_path_factory.mktemp("vault-run"), bao_cluster, operators)


def test_init_killed_right_after_the_response_loses_no_share_and_rerun_does_not_reinit(run):
    killed = run.medai("vault", "init", env={"MEDAI_VAULT_TEST_KILL_AFTER_INIT": "1"})
    assert killed.returncode == -9, killed.stderr.decode()
    record = run.vault_dir / "init.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    before = record.read_bytes()
    doc = json.loads(before)
    assert [o["name"] for o in doc["operators"]] == OPERATORS and doc["threshold"] == THRESHOLD
    assert not (run.vault_dir / "shares").exists()  # killed before the per-operator files

    again = run.medai("vault", "init")
    assert again.returncode == 0, again.stderr.decode()
    assert b"already initialised (not re-initialised)" in again.stdout
    assert record.read_bytes() == before  # init was not repeated
    for n in OPERATORS:
        f = run.vault_dir / "shares" / f"{n}.gpg"
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(run.vault_dir.stat().st_mode) == 0o700
    assert run.endpoint().client().sys.is_initialized()


def test_init_refuses_when_vault_is_initialised_but_the_record_is_gone(run):
    record = run.vault_dir / "init.json"
    moved = record.with_name("init.json.away")
    record.rename(moved)
    try:
        p = run.medai("vault", "init")
    finally:
        moved.rename(record)
    assert p.returncode == 2
    assert f"is already initialised but {run.vault_dir}/init.json is missing: medai will not re-init" in p.stderr.decode()


def test_a_vault_certificate_from_another_ca_is_refused_naming_the_setting(run, tmp_path):
    from installer.deploy.vault import pki

    other = pki.root_ca(tmp_path / "other-ca", "other")
    inv = write_inventory(tmp_path / "site.yml", run.cluster, run.ops, medai_vault_ca_cert=str(other.cert_path))
    p = subprocess.run([MEDAI, "vault", "init", "--inventory", str(inv)], capture_output=True, text=True,
                       env={**os.environ, "MEDAI_HOME": str(tmp_path / "home")}, timeout=60)
    run.outputs += [p.stdout.encode(), p.stderr.encode()]
    assert p.returncode == 2
    assert "read init status: TLS verification failed" in p.stderr and "check medai_vault_ca_cert" in p.stderr


def test_each_share_decrypts_with_its_operators_private_key(run):
    shares = run.shares()
    assert len(set(shares)) == len(OPERATORS)
    assert all(len(s) == 66 and int(s, 16) >= 0 for s in shares)  # hex of a 33-byte Shamir share
    root_token = run.ops.decrypt(run.vault_dir / "root-token.gpg")
    assert root_token.startswith("s.")
    run.secrets.update({f"share-{i}": s for i, s in enumerate(shares)}, initial_root=root_token)


def test_fewer_shares_than_the_threshold_do_not_unseal(run):
    c = run.endpoint().client()
    st = c.sys.submit_unseal_key(key=run.shares()[0])
    assert st["sealed"] and st["progress"] == 1 and st["t"] == THRESHOLD
    c.sys.submit_unseal_key(reset=True)
    wrong = run.medai("vault", "unseal", "--stdin", stdin=run.shares()[0] + "\n")
    assert wrong.returncode != 0
    assert b"stdin ended after 1 of 2 unseal shares" in wrong.stderr
    assert c.sys.read_seal_status()["sealed"]


def test_setup_unseals_every_member_and_configures(run):
    p = run.medai("vault", "setup", "--stdin", stdin="\n".join(run.shares()[1:]) + "\n")
    assert p.returncode == 0, p.stderr.decode() + p.stdout.decode()
    out = p.stdout.decode()
    assert "unsealed: bao1, bao2, bao3" in out
    assert "secrets created: k3s/cluster-token, keycloak/db, harbor/db, keycloak/bootstrap-admin, keycloak/admin" in out
    assert "root tokens revoked: 1" in out
    for i in range(3):
        assert not run.endpoint(i).client().sys.read_seal_status()["sealed"]
    runs = list((run.home / "runs").glob("*-vault-setup-*/run.json"))
    assert json.loads(runs[0].read_text())["result"] == "ok"


def test_initial_root_token_is_revoked(run):
    with pytest.raises(hvac.exceptions.Forbidden):
        run.endpoint().client(run.secrets["initial_root"]).auth.token.lookup_self()


def test_kv_reads_and_policy_denials_are_as_configured(run):
    ep = run.endpoint()
    with root_session(ep, run.shares()[:THRESHOLD]) as root:
        tok = root.auth.token.create(policies=["medai-keycloak"], ttl="10m", no_parent=True)["auth"]["client_token"]
        from installer.deploy.vault.catalogue import MEDAI, default_catalogue

        for e in default_catalogue().entries:
            if e.made_by != MEDAI or e.component == "inference":  # this site has no gpu hosts
                continue
            data = root.secrets.kv.v2.read_secret_version(path=e.path, mount_point="medai", raise_on_deleted_version=True)
            for k, v in data["data"]["data"].items():
                if k not in ("username", "tls.crt"):
                    run.secrets[f"{e.path}.{k}"] = v
        data = root.secrets.kv.v2.read_secret_version(path="k3s/cluster-token", mount_point="medai", raise_on_deleted_version=True)
        run.secrets["k3s/cluster-token.token"] = data["data"]["data"]["token"]
        for svc in ("vault", "keycloak", "harbor", "inference"):
            tls = root.secrets.kv.v2.read_secret_version(path=f"{svc}/tls", mount_point="medai", raise_on_deleted_version=True)
            run.secrets[f"{svc}.key"] = tls["data"]["data"]["private_key"]
        run.secrets["generated_root"] = root.token
    kc = ep.client(tok)
    admin = kc.secrets.kv.v2.read_secret_version(path="keycloak/admin", mount_point="medai", raise_on_deleted_version=True)
    assert admin["data"]["data"]["username"] == "medai-admin"
    assert admin["data"]["data"]["password"] == run.secrets["keycloak/admin.password"]
    with pytest.raises(hvac.exceptions.Forbidden):
        kc.secrets.kv.v2.read_secret_version(path="harbor/admin", mount_point="medai", raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        kc.secrets.kv.v2.create_or_update_secret(path="keycloak/admin", secret={"password": "x"}, mount_point="medai")
    with pytest.raises(hvac.exceptions.Forbidden):
        kc.sys.list_policies()
    kc.secrets.pki.generate_certificate("keycloak", "keycloak.test.internal", mount_point="pki_int")
    with pytest.raises(hvac.exceptions.Forbidden):
        kc.secrets.pki.generate_certificate("harbor", "harbor.test.internal", mount_point="pki_int")
    # the generated root token of that session is revoked on the way out
    with pytest.raises(hvac.exceptions.Forbidden):
        ep.client(run.secrets["generated_root"]).auth.token.lookup_self()


def test_kubernetes_auth_accepts_its_configuration(run):
    with root_session(run.endpoint(), run.shares()[:THRESHOLD]) as root:
        cfg = root.auth.kubernetes.read_config()
        role = root.auth.kubernetes.read_role("harbor")
        backup = root.auth.kubernetes.read_role("backup")
        roles = root.auth.kubernetes.list_roles()["keys"]
    assert cfg["kubernetes_host"] == "https://10.99.0.10:6443"
    assert cfg["kubernetes_ca_cert"].strip() == run.cluster.ca_cert.read_text().strip()
    assert role["bound_service_account_names"] == ["harbor-core"]
    assert role["bound_service_account_namespaces"] == ["harbor"]
    assert role["policies"] == ["medai-harbor"]
    assert sorted(roles) == ["backup", "harbor", "inference", "keycloak", "vault"]
    # the backup CronJob's ServiceAccount in Vault's namespace (installer/platform/components/backup_schedules.py)
    assert (backup["bound_service_account_names"], backup["bound_service_account_namespaces"], backup["policies"]) == (
        ["medai-backup"], ["vault"], ["medai-backup"])


def _openssl_verify(run, pem_chain: str, cert_pem: str, where: Path) -> subprocess.CompletedProcess:
    where.mkdir(exist_ok=True)
    (where / "cert.pem").write_text(cert_pem)
    (where / "intermediate.pem").write_text(pem_chain)
    return subprocess.run(["openssl", "verify", "-CAfile", str(run.cluster.ca_cert), "-untrusted",
                           str(where / "intermediate.pem"), str(where / "cert.pem")], capture_output=True, text=True)


def test_issued_certificate_chains_to_the_offline_root_and_rotates(run, tmp_path):
    ep = run.endpoint()
    with root_session(ep, run.shares()[:THRESHOLD]) as root:
        tls = root.secrets.kv.v2.read_secret_version(path="keycloak/tls", mount_point="medai",
                                                     raise_on_deleted_version=True)["data"]["data"]
        inter = root.secrets.pki.read_ca_certificate(mount_point="pki_int")
    v = _openssl_verify(run, inter, tls["certificate"], tmp_path / "a")
    assert v.returncode == 0 and v.stdout.strip().endswith("OK"), v.stdout + v.stderr
    no_inter = subprocess.run(
        ["openssl", "verify", "-CAfile", str(run.cluster.ca_cert), str(tmp_path / "a" / "cert.pem")], capture_output=True, text=True
    )
    assert no_inter.returncode != 0  # the root signs the intermediate, not the service certificate
    assert not (run.cluster.root_ca_dir / "root-ca.key").stat().st_mode & 0o077

    p = run.medai("vault", "rotate-cert", "keycloak", "--stdin", "--yes", stdin="\n".join(run.shares()[:THRESHOLD]) + "\n")
    assert p.returncode == 0, p.stderr.decode()
    with root_session(ep, run.shares()[:THRESHOLD]) as root:
        new = root.secrets.kv.v2.read_secret_version(path="keycloak/tls", mount_point="medai", raise_on_deleted_version=True)["data"]
        run.secrets["keycloak.key.rotated"] = new["data"]["private_key"]
    assert new["metadata"]["version"] == 2 and new["data"]["certificate"] != tls["certificate"]
    assert _openssl_verify(run, inter, new["data"]["certificate"], tmp_path / "b").returncode == 0


def test_configuration_through_the_service_address_reaches_the_leader_from_a_follower(run, tmp_path):
    follower = next(n for n in run.cluster.nodes if n.name == "bao3")  # plain HTTP listener, a Raft follower
    inv = write_inventory(tmp_path / "site.yml", run.cluster, run.ops, medai_vault_addr=follower.addr)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    p = subprocess.run(
        [MEDAI, "vault", "rotate-cert", "harbor", "--stdin", "--yes", "--inventory", str(inv)],
        input="\n".join(run.shares()[:THRESHOLD]) + "\n",
        capture_output=True,
        text=True,
        env={**e, "MEDAI_HOME": str(run.home)},
        timeout=60,
    )
    run.outputs += [p.stdout.encode(), p.stderr.encode()]
    assert p.returncode == 0, p.stderr
    assert "harbor: new certificate serial" in p.stdout and "medai/harbor/tls" in p.stdout
    with root_session(run.endpoint(), run.shares()[:THRESHOLD]) as root:
        new = root.secrets.kv.v2.read_secret_version(path="harbor/tls", mount_point="medai", raise_on_deleted_version=True)["data"]
        run.secrets["harbor.key.rotated"] = new["data"]["private_key"]
    assert new["metadata"]["version"] == 2


def test_a_restarted_node_comes_back_sealed_and_unseal_brings_it_back(run):
    node = run.cluster.nodes[1]
    run.cluster.stop(node)
    run.cluster.start(node)
    st = run.medai("vault", "status")
    assert st.returncode == 3, st.stderr.decode()
    assert b"SEALED (0/2 shares entered)" in st.stdout and b"bao1" in st.stdout
    u = run.medai("vault", "unseal", "--stdin", stdin="\n".join(run.shares()[::2]) + "\n")
    assert u.returncode == 0, u.stderr.decode() + u.stdout.decode()
    assert b"bao2             unsealed" in u.stdout
    after = run.medai("vault", "status", "--json")
    doc = json.loads(after.stdout)
    assert after.returncode == 0 and doc["leader"] in ("bao1", "bao3")
    assert all(not m["sealed"] for m in doc["members"])


def _unseal_on_a_terminal(run, shares: list[str]) -> bytes:
    """`medai vault unseal` on a pseudo-terminal, as an operator types: what the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as its controlling terminal (getpass opens /dev/tty)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["MEDAI_HOME"] = str(run.home)
        os.chdir(run.base)
        os.execve(MEDAI, [MEDAI, "vault", "unseal", "--inventory", str(run.inventory)], env)
    screen = b""
    pending = list(shares)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
        if pending and screen.rstrip().endswith(b"(not echoed):"):
            time.sleep(0.3)  # type as a person does, once getpass has the terminal (typed earlier is flushed)
            os.write(fd, pending.pop(0).encode() + b"\n")
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(f"medai vault unseal on a terminal did not finish: {screen.decode(errors='replace')[-2000:]}")
    _, status = os.waitpid(pid, 0)
    run.outputs.append(screen)
    assert os.waitstatus_to_exitcode(status) == 0, screen.decode(errors="replace")
    return screen


def test_unseal_prompts_without_echo_on_a_terminal(run):
    node = run.cluster.nodes[2]
    run.cluster.stop(node)
    run.cluster.start(node)
    assert run.endpoint(2).client().sys.read_seal_status()["sealed"]
    shares = run.shares()[1:]
    screen = _unseal_on_a_terminal(run, shares)
    assert b"Unseal share 1 of 2 (not echoed):" in screen and b"Unseal share 2 of 2" in screen
    assert b"bao3             unsealed" in screen
    for sh in shares:
        assert sh.encode() not in screen and sh[:12].encode() not in screen
    assert not run.endpoint(2).client().sys.read_seal_status()["sealed"]


def test_status_lists_raft_peers_with_a_token(run):
    with root_session(run.endpoint(), run.shares()[:THRESHOLD]) as root:
        st = run.medai("vault", "status", "--json", "--token-stdin", stdin=root.token + "\n")
    peers = json.loads(st.stdout)["peers"]
    assert sorted(p["id"] for p in peers) == ["bao1", "bao2", "bao3"]
    assert sum(bool(p["leader"]) for p in peers) == 1


def test_setup_rerun_changes_nothing(run):
    p = run.medai("vault", "setup", "--stdin", stdin="\n".join(run.shares()[:THRESHOLD]) + "\n")
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode()
    assert "already initialised" in out and "configured:" not in out
    assert "secrets created: none" in out and "certificates issued: none" in out


def test_no_share_token_password_or_key_in_any_output_log_or_file(run):
    # 3 shares, 2 root tokens, 6 TLS keys, the catalogue's generated values (passwords, client secrets, Harbor's
    # component secrets and token key, robot passwords) and the K3s token copy
    assert len(run.secrets) >= 30, sorted(run.secrets)
    haystacks: dict[str, bytes] = {f"output[{i}]": b for i, b in enumerate(run.outputs)}
    k3s_token_file = run.home / "secrets" / "vaulttest" / "token"
    for root_dir in (run.home, run.base):
        for f in root_dir.rglob("*"):
            if f.is_file() and f != k3s_token_file:
                haystacks[str(f)] = f.read_bytes()
    for log in run.cluster.logs + run.cluster.audit_logs:
        if log.is_file():
            haystacks[str(log)] = log.read_bytes()
    assert sum(f.stat().st_size for f in run.cluster.audit_logs if f.is_file()) > 10_000  # the audit device wrote
    assert any(k.endswith("run.json") for k in haystacks) and any(k.endswith("init.json") for k in haystacks)
    assert any(k.endswith("audit.log") for k in haystacks) and len(run.outputs) >= 20
    for name, secret in run.secrets.items():
        needles = {secret.encode()}
        if name.endswith(".key"):
            needles = {ln.encode() for ln in secret.splitlines() if len(ln) > 40}
        for where, hay in haystacks.items():
            for needle in needles:
                assert needle not in hay, f"{name} found in {where}"
