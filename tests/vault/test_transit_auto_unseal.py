"""Auto-unseal through the Transit engine of another Vault, for real: two OpenBao servers on loopback.

The "other Vault" (a plain single-node OpenBao with a transit key) unseals the site Vault; medai's init then
makes recovery shares for the named operators instead of unseal shares, and they still build a root token.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import hvac
import pytest

from installer.deploy.inventory import load_inventory
from installer.deploy.vault.client import Endpoint
from installer.deploy.vault.init import initialize
from installer.deploy.vault.settings import vault_settings
from installer.deploy.vault.status import member_status
from installer.deploy.vault.token import root_session
from tests.vault.conftest import OPERATORS, THRESHOLD, _free_ports, bao_binary, write_inventory

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(120)]


def _start(binary: str, d: Path, port: int, extra: str = "") -> subprocess.Popen:
    cport = _free_ports(1)[0]
    (d / "raft").mkdir(parents=True, exist_ok=True)
    (d / "config.hcl").write_text(f'''disable_mlock = true
log_level = "warn"
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cport}"
storage "raft" {{
  path = "{d / 'raft'}"
  node_id = "{d.name}"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
  disable_unauthed_generate_root_endpoints = false
}}
{extra}''')
    proc = subprocess.Popen([binary, "server", f"-config={d / 'config.hcl'}"], stdout=open(d / "server.log", "ab"),
                            stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin", "HOME": str(d)})
    c = hvac.Client(url=f"http://127.0.0.1:{port}", token="")
    for _ in range(200):
        try:
            c.sys.read_seal_status()
            return proc
        except Exception:
            time.sleep(0.1)
    raise RuntimeError((d / "server.log").read_text()[-2000:])


@pytest.fixture
def transit_pair(tmp_path):
    binary = bao_binary()
    procs = []
    p_transit, p_site = _free_ports(2)
    procs.append(_start(binary, tmp_path / "transit", p_transit))
    t = hvac.Client(url=f"http://127.0.0.1:{p_transit}", token="")
    init = t.sys.initialize(secret_shares=1, secret_threshold=1)  # the other site's Vault, test-only keys
    t.sys.submit_unseal_key(init["keys"][0])
    t.token = init["root_token"]
    for _ in range(100):
        try:
            t.sys.enable_secrets_engine("transit", path="transit")
            break
        except hvac.exceptions.VaultError:
            time.sleep(0.1)
    t.secrets.transit.create_key("medai-unseal")
    t.sys.create_or_update_policy("unseal", 'path "transit/encrypt/medai-unseal" { capabilities = ["update"] }\n'
                                            'path "transit/decrypt/medai-unseal" { capabilities = ["update"] }\n')
    token = t.auth.token.create(policies=["unseal"], no_parent=True, period="24h")["auth"]["client_token"]
    seal = (f'seal "transit" {{\n  address = "http://127.0.0.1:{p_transit}"\n  token = "{token}"\n'
            f'  key_name = "medai-unseal"\n  mount_path = "transit/"\n}}\n')
    site_dir = tmp_path / "site"
    procs.append(_start(binary, site_dir, p_site, seal))
    yield {"binary": binary, "site_dir": site_dir, "port": p_site, "seal": seal, "procs": procs,
           "address": f"http://127.0.0.1:{p_transit}"}
    for p in procs:
        p.terminate()
        p.wait(10)


def test_transit_unseals_by_itself_and_operators_hold_recovery_shares(transit_pair, operators, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "home"))
    addr = f"http://127.0.0.1:{transit_pair['port']}"
    inv_path = tmp_path / "site.yml"

    class One:  # write_inventory wants a cluster; this one has a single member
        nodes = [type("N", (), {"name": "site1", "addr": addr})()]
        ca_cert = root_ca_dir = tmp_path
    write_inventory(inv_path, One, operators, medai_vault_transit={
        "address": transit_pair["address"], "key_name": "medai-unseal", "token_secret": "vault-transit-token"})
    s = vault_settings(load_inventory(inv_path))
    assert s.transit
    ep = Endpoint("site1", addr, True)
    res = initialize(s, ep)
    assert res.initialized_now and res.record["kind"] == "recovery"
    recovery = [operators.decrypt(f) for f in res.files[:len(OPERATORS)]]
    assert len(set(recovery)) == len(OPERATORS)

    for _ in range(100):  # no share typed: the transit seal unseals it
        if member_status(ep).sealed is False:
            break
        time.sleep(0.1)
    assert member_status(ep).sealed is False

    proc = transit_pair["procs"].pop()
    proc.terminate()
    proc.wait(10)
    transit_pair["procs"].append(_start(transit_pair["binary"], transit_pair["site_dir"], transit_pair["port"],
                                        transit_pair["seal"]))
    for _ in range(100):
        if member_status(ep).sealed is False:
            break
        time.sleep(0.1)
    assert member_status(ep).sealed is False, "a restarted auto-unseal Vault must come back unsealed"

    with root_session(ep, recovery[:THRESHOLD]) as root:
        assert "root" in root.auth.token.lookup_self()["data"]["policies"]
    assert not initialize(s, ep).initialized_now
