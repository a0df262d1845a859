"""The Vault KV v2 SecretSink against a real OpenBao server on loopback (the bao binary of tests/vault/conftest.py,
one in-memory server in dev mode with KV v2 mounted at medai/; HashiCorp's Vault binary is not run): the Harbor
robot secrets and the Keycloak secrets their ensure_* functions generate land in KV, reruns keep them, and no
value is left in clear on the control host."""
from __future__ import annotations

import copy
import os
import secrets
import subprocess
import time

import hvac
import pytest

from installer.core.errors import VaultError
from installer.deploy.harbor.client import HarborClient
from installer.deploy.harbor.configure import configure_harbor, default_site
from installer.deploy.keycloak.realm import ensure_secrets
from installer.deploy.keycloak.settings import keycloak_site
from installer.deploy.platform_secrets import ensure_harbor_secrets, ensure_postgres_passwords
from installer.deploy.secret_sink import SecretSink
from installer.deploy.vault.kv_sink import VaultKvSink
from tests.platform_idp.harbor_contract import FakeHarbor, SwaggerContract
from tests.platform_idp.site import SITE_VARS
from tests.vault.conftest import _free_ports, bao_binary

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(120)]
CLUSTER = "radiology-prod"


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    binary = bao_binary()
    home = tmp_path_factory.mktemp("bao-dev")
    port = _free_ports(1)[0]
    root = secrets.token_hex(16)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([binary, "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
                             f"-dev-root-token-id={root}", "-dev-no-store-token"],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={"PATH": os.environ["PATH"], "HOME": str(home)})
    client = hvac.Client(url=f"http://127.0.0.1:{port}", token=root)
    deadline = time.monotonic() + 20
    while True:
        try:
            if client.sys.read_health_status(method="GET").get("initialized"):
                break
        except Exception:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, (home / "server.log").read_text()[-2000:]
        time.sleep(0.2)
    client.sys.enable_secrets_engine("kv", path="medai", options={"version": "2"})
    try:
        yield client, home
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_sink_satisfies_the_protocol_and_round_trips(bao):
    client, _ = bao
    sink = VaultKvSink(client, "medai")
    assert isinstance(sink, SecretSink)
    assert not sink.has_secret("medai/c1/x/y")
    sink.put_secret("medai/c1/x/y", {"password": "p1"})
    assert sink.has_secret("medai/c1/x/y") and sink.read_secret("medai/c1/x/y") == {"password": "p1"}
    # the path below the mount: medai/data/c1/x/y
    assert client.secrets.kv.v2.read_secret_version(path="c1/x/y", mount_point="medai",
                                                    raise_on_deleted_version=True)["data"]["data"] == {"password": "p1"}
    client.secrets.kv.v2.delete_latest_version_of_secret(path="c1/x/y", mount_point="medai")
    assert not sink.has_secret("medai/c1/x/y")  # a deleted current version holds nothing
    with pytest.raises(VaultError, match=r"secret path 'medai/../etc'"):
        sink.put_secret("medai/../etc", {"k": "v"})


def test_a_token_without_rights_is_one_line_naming_the_path(bao):
    client, _ = bao
    weak = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    sink = VaultKvSink(hvac.Client(url=client.url, token=weak), "medai")
    with pytest.raises(VaultError, match=r"write medai/c1/harbor/admin: permission denied"):
        sink.put_secret("medai/c1/harbor/admin", {"HARBOR_ADMIN_PASSWORD": "x"})


def _values(client, prefix: str) -> dict[str, dict]:
    out = {}

    def walk(p):
        for k in client.secrets.kv.v2.list_secrets(path=p, mount_point="medai")["data"]["keys"]:
            if k.endswith("/"):
                walk(p + k)
            else:
                out[p + k] = client.secrets.kv.v2.read_secret_version(path=p + k, mount_point="medai",
                                                                      raise_on_deleted_version=True)["data"]["data"]
    walk(prefix)
    return out


def test_generated_platform_secrets_land_in_kv_and_nothing_in_clear_stays(bao, tmp_path, monkeypatch):
    client, bao_home = bao
    home = tmp_path / "medai-home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    sink = VaultKvSink(client, "medai")
    fake = FakeHarbor(SwaggerContract())
    site = default_site(CLUSTER, "https://keycloak.radiology.internal/realms/medical-ai")
    kc = keycloak_site(copy.deepcopy(SITE_VARS), "site.yml")
    written = ensure_secrets(CLUSTER, kc, sink)
    assert f"medai/{CLUSTER}/keycloak/clients/harbor" in written
    # Harbor's OIDC client secret is read back from Vault, as the install does
    oidc = sink.read_secret(f"medai/{CLUSTER}/keycloak/clients/harbor")["secret"]
    with HarborClient("https://harbor.test", "admin", "pw", transport=fake.transport()) as c:
        report = configure_harbor(c, site, sink, oidc_client_secret=oidc)
    assert report.robots == {"cluster-pull": "created", "site-ci": "created"}
    assert fake.last_oidc_secret == oidc
    made = ensure_harbor_secrets(CLUSTER, sink) + ensure_postgres_passwords(CLUSTER, ["keycloak", "harbor"], sink)
    assert len(made) == 9

    stored = _values(client, f"{CLUSTER}/")
    robots = {r["name"]: r for r in fake.robots.values()} if isinstance(fake.robots, dict) else \
        {r["name"]: r for r in fake.robots}
    pull = stored[f"{CLUSTER}/harbor/robots/cluster-pull"]
    assert pull["username"] == "robot$cluster-pull"
    assert pull["password"] == next(r["secret"] for n, r in robots.items() if n.endswith("cluster-pull"))
    assert len(stored[f"{CLUSTER}/keycloak/clients/harbor"]["secret"]) >= 32
    assert len(stored[f"{CLUSTER}/postgres/keycloak"]["password"]) == 32

    # reruns keep every value (no new version anywhere)
    with HarborClient("https://harbor.test", "admin", "pw", transport=fake.transport()) as c:
        assert configure_harbor(c, site, sink, oidc_client_secret=oidc).robots == {"cluster-pull": "unchanged", "site-ci": "unchanged"}
    assert ensure_secrets(CLUSTER, kc, sink) == [] and ensure_harbor_secrets(CLUSTER, sink) == []
    assert _values(client, f"{CLUSTER}/") == stored

    # nothing in clear on the control host: not in MEDAI_HOME, the working directory or the temp dirs
    values = [v for d in stored.values() for v in d.values() if len(v) >= 12]
    assert len(values) >= 12
    for root in (tmp_path, bao_home):
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            assert not [v for v in values if v.encode() in data], f"a secret is in clear in {path}"


class RecordingKube:
    def __init__(self):
        self.applied: list[dict] = []

    def apply(self, obj):
        self.applied.append(obj)


def test_install_step_generates_into_vault_and_syncs_the_kubernetes_secrets(bao, tmp_path):
    import base64

    from installer.deploy.inventory import load_inventory
    from installer.deploy.vault.install_step import platform_secrets_into_vault
    from tests.support.fixture_charts import ROOT

    client, _ = bao
    import yaml
    doc = yaml.safe_load((ROOT / "inventories" / "example" / "site.yml").read_text())
    doc["all"]["vars"]["medai_cluster_name"] = "sync-test"  # a cluster of its own on the shared server
    (tmp_path / "site.yml").write_text(yaml.safe_dump(doc))
    inv = load_inventory(tmp_path / "site.yml")
    sink, kube = VaultKvSink(client, "medai"), RecordingKube()
    first = platform_secrets_into_vault(inv, sink, kube)
    assert len(first["created"]) == 10  # 2 databases, 7 Harbor secrets, the inference API key (the example has gpu hosts)
    assert [o["metadata"]["name"] for o in kube.applied if o["kind"] == "Namespace"] == ["keycloak", "harbor",
                                                                                        "medai-inference"]
    assert kube.applied.index(next(o for o in kube.applied if o["kind"] == "Secret")) == 3  # namespaces first
    by_name = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in kube.applied if o["kind"] == "Secret"}
    db = by_name[("keycloak", "keycloak-db-credentials")]
    assert db["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(db["data"]["password"]).decode() == \
        sink.read_secret(f"medai/{inv.cluster}/postgres/keycloak")["password"]
    admin = by_name[("harbor", "medai-harbor-admin")]
    assert base64.b64decode(admin["data"]["HARBOR_ADMIN_PASSWORD"]).decode() == \
        sink.read_secret(f"medai/{inv.cluster}/harbor/admin")["HARBOR_ADMIN_PASSWORD"]
    key = by_name[("medai-inference", "medai-inference-api-key")]
    assert base64.b64decode(key["data"]["api-key"]).decode() == \
        sink.read_secret(f"medai/{inv.cluster}/inference/api-key")["api-key"]
    assert len(by_name) == 2 + 7 + 1
    again = platform_secrets_into_vault(inv, sink, RecordingKube())
    assert again["created"] == [] and again["synced"] == first["synced"]  # a rerun keeps every value
