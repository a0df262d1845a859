"""The Vault KV v2 SecretSink against a real OpenBao server on loopback (the bao binary of tests/vault/conftest.py,
one in-memory server in dev mode with KV v2 mounts; HashiCorp's Vault binary is not run): the one catalogue's
entries land in KV once, reruns keep them, each component's policy reads what its Secrets reference and is denied
everything else, the install's Secret sync resolves, and no value is left in clear on the control host."""
from __future__ import annotations

import base64
import copy
import os
import secrets
import subprocess
import time

import hvac
import hvac.exceptions
import pytest

from installer.core.errors import VaultError
from installer.deploy.harbor.client import HarborClient
from installer.deploy.harbor.configure import configure_harbor, default_site
from installer.deploy.keycloak.realm import ensure_secrets
from installer.deploy.keycloak.settings import keycloak_site
from installer.deploy.secret_sink import SecretSink
from installer.deploy.vault.kv_sink import VaultKvSink
from tests.platform_idp.harbor_contract import FakeHarbor, SwaggerContract
from tests.platform_idp.site import SITE_VARS
from tests.support.kube import RecordedKube
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
        sink.put_secret("medai/c1/harbor/admin", {"password": "x"})


def _values(client, prefix: str, mount: str = "medai") -> dict[str, dict]:
    out = {}

    def walk(p):
        for k in client.secrets.kv.v2.list_secrets(path=p, mount_point=mount)["data"]["keys"]:
            if k.endswith("/"):
                walk(p + k)
            else:
                out[p + k] = client.secrets.kv.v2.read_secret_version(path=p + k, mount_point=mount,
                                                                      raise_on_deleted_version=True)["data"]["data"]
    walk(prefix)
    return out


def _site_inventory(tmp_path, cluster: str):
    import yaml

    from installer.deploy.inventory import load_inventory
    from tests.support.fixture_charts import ROOT

    doc = yaml.safe_load((ROOT / "inventories" / "example" / "site.yml").read_text())
    doc["all"]["vars"]["medai_cluster_name"] = cluster
    doc["all"]["vars"].update({k: v for k, v in SITE_VARS.items() if k.startswith("medai_keycloak_")})
    (tmp_path / "site.yml").write_text(yaml.safe_dump(doc))
    return load_inventory(tmp_path / "site.yml")


def _fresh_mount(client, mount: str) -> None:
    """Each test its own KV mount: the catalogue has no cluster in its paths (one Vault per cluster)."""
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})


def _pki_made(client, cat, mount: str) -> None:
    """Stand-ins for the entries Vault's PKI writes (issued by `medai vault setup`, tested in test_openbao_cluster)."""
    from installer.deploy.vault.catalogue import PKI

    for e in cat.entries:
        if e.made_by == PKI:
            client.secrets.kv.v2.create_or_update_secret(path=e.path, mount_point=mount, secret={
                "certificate": f"CERT-{e.component}", "private_key": f"KEY-{e.component}-" + secrets.token_hex(16),
                "ca_chain": "CHAIN"})


def test_generated_platform_secrets_land_in_kv_and_nothing_in_clear_stays(bao, tmp_path, monkeypatch):
    from installer.deploy.vault.catalogue import ensure, for_inventory, secret_objects

    client, bao_home = bao
    home = tmp_path / "medai-home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    _fresh_mount(client, "kvgen")
    sink = VaultKvSink(client, "kvgen")
    cat = for_inventory(_site_inventory(tmp_path, CLUSTER), "kvgen")
    created, kept = ensure(cat, sink)
    assert kept == [] and len(created) == len(cat.generated()) >= 20
    # the realm's client secret for Harbor is the one catalogue entry; Harbor's OIDC gets it from there
    oidc = sink.read_secret("keycloak/clients/harbor")["secret"]
    robots = {n: sink.read_secret(f"harbor/robots/{n}")["password"] for n in ("cluster-pull", "site-ci")}
    fake = FakeHarbor(SwaggerContract())
    site = default_site("https://keycloak.radiology.internal/realms/medical-ai")
    with HarborClient("https://harbor.test", "admin", sink.read_secret("harbor/admin")["password"],
                      transport=fake.transport()) as c:
        report = configure_harbor(c, site, robots, oidc_client_secret=oidc, reset=[])
    assert report.robots == {"cluster-pull": "created", "site-ci": "created"}
    assert fake.last_oidc_secret == oidc
    assert {r["name"]: r["secret"] for r in fake.robots.values()} == {f"robot${k}": v for k, v in robots.items()}

    stored = _values(client, "", "kvgen")
    assert set(stored) == set(created)  # no path with a cluster name, nothing outside the catalogue
    assert stored["harbor/robots/cluster-pull"]["username"] == "robot$cluster-pull"
    assert stored["harbor/admin"]["username"] == "admin" and len(stored["harbor/admin"]["password"]) == 32
    assert len(stored["keycloak/db"]["password"]) == 32 and stored["keycloak/db"]["username"] == "keycloak"
    # Harbor's admin password exists once: one entry, one field, one value
    harbor_pw = stored["harbor/admin"]["password"]
    assert [(p, k) for p, d in stored.items() for k, v in d.items() if v == harbor_pw] == [("harbor/admin", "password")]
    # Harbor's Redis password: Redis's own `requirepass` line holds the same value; both reach the cluster only
    # as the Secret the install syncs (charts/medai-harbor-redis mounts one key, Harbor's clients read the other)
    redis = stored["harbor/redis"]
    assert redis["requirepass.conf"] == f"requirepass {redis['password']}\n" and len(redis["password"]) == 32
    only = type(cat)(cat.kv_mount, cat.components, cat.entries, [cat.secret("medai-harbor-redis", "harbor")])
    (synced,) = secret_objects(only, sink.read_secret)
    assert {k: base64.b64decode(v).decode() for k, v in synced["data"].items()} == redis

    # reruns keep every value (no new version anywhere)
    assert ensure(cat, sink) == ([], created)
    with HarborClient("https://harbor.test", "admin", "pw", transport=fake.transport()) as c:
        assert configure_harbor(c, site, robots, oidc_client_secret=oidc).robots == {"cluster-pull": "unchanged",
                                                                                     "site-ci": "unchanged"}
    assert ensure_secrets(keycloak_site(copy.deepcopy(SITE_VARS), "site.yml"), sink) == []
    assert _values(client, "", "kvgen") == stored
    for p in stored:
        assert client.secrets.kv.v2.read_secret_metadata(path=p, mount_point="kvgen")["data"]["current_version"] == 1

    # nothing in clear on the control host: not in MEDAI_HOME, the working directory or the server's directory
    values = [v for d in stored.values() for k, v in d.items() if k != "username" and len(v) >= 12]
    assert len(values) >= 20
    for root in (tmp_path, bao_home):
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            assert not [v for v in values if v.encode() in data], f"a secret is in clear in {path}"


def _snapshot_forbidden(client: hvac.Client) -> bool:
    try:
        client.sys.take_raft_snapshot()
    except hvac.exceptions.Forbidden:
        return True
    except hvac.exceptions.VaultError:
        return False  # allowed past the policy (a server without raft storage then refuses the snapshot itself)
    return False


def test_each_components_policy_reads_what_its_secrets_reference_and_nothing_else(bao, tmp_path):
    """The policies `medai vault configure` writes (policy_hcl over the catalogue's components), against OpenBao:
    a token of component X reads every entry X's Kubernetes Secrets are synced from, and is denied every entry
    of every other component, and every write."""
    from installer.deploy.vault.catalogue import BACKUP, ensure, for_inventory
    from installer.deploy.vault.configure import policy_hcl, policy_name

    client, _ = bao
    mount = "kvpol"
    _fresh_mount(client, mount)
    cat = for_inventory(_site_inventory(tmp_path, "policy-test"), mount)
    ensure(cat, VaultKvSink(client, mount))
    _pki_made(client, cat, mount)
    # the K3s token copy (made from the control host's join token by `medai vault setup`)
    client.secrets.kv.v2.create_or_update_secret(path="k3s/cluster-token", mount_point=mount, secret={"token": "t"})
    tokens = {}
    for c in cat.components:
        client.sys.create_or_update_policy(f"{policy_name(c)}-{mount}", policy_hcl(c, mount, "pki_int"))
        tokens[c.name] = client.auth.token.create(policies=[f"{policy_name(c)}-{mount}"], ttl="10m")["auth"]["client_token"]
    for c in cat.components:  # only the backup CronJob's role may take a raft snapshot
        assert _snapshot_forbidden(hvac.Client(url=client.url, token=tokens[c.name])) is (c.name != BACKUP), c.name
    checked = 0
    for c in cat.components:
        mine = hvac.Client(url=client.url, token=tokens[c.name])
        referenced = {p for s in cat.secrets if s.component == c.name for p in s.paths}
        own = {e.path for e in cat.entries if e.component == c.name}
        assert referenced <= own, (c.name, referenced - own)
        for path in sorted(own):
            mine.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
            checked += 1
            with pytest.raises(hvac.exceptions.Forbidden):
                mine.secrets.kv.v2.create_or_update_secret(path=path, secret={"x": "y"}, mount_point=mount)
        for e in cat.entries:
            if e.component != c.name:
                with pytest.raises(hvac.exceptions.Forbidden):
                    mine.secrets.kv.v2.read_secret_version(path=e.path, mount_point=mount, raise_on_deleted_version=True)
                checked += 1
    assert checked >= len(cat.entries) * len(cat.components)
    # every Secret the install syncs resolves from Vault with the component's own token (what the injector uses)
    from installer.deploy.vault.catalogue import secret_objects

    for c in cat.components:
        mine = VaultKvSink(hvac.Client(url=client.url, token=tokens[c.name]), mount)
        own = [s for s in cat.secrets if s.component == c.name]
        sub = type(cat)(cat.kv_mount, cat.components, cat.entries, own)
        assert len(secret_objects(sub, mine.read_secret)) == len(own)


def test_install_step_generates_into_vault_and_syncs_the_kubernetes_secrets(bao, tmp_path):
    import base64

    from installer.deploy.vault.catalogue import for_inventory
    from installer.deploy.vault.install_step import HeldSecrets, platform_secrets_into_vault

    client, _ = bao
    mount = "medai"  # the install's sink: paths relative to the mount
    inv = _site_inventory(tmp_path, "sync-test")
    cat = for_inventory(inv)
    _pki_made(client, cat, mount)
    sink, kube, held = VaultKvSink(client, mount), RecordedKube(), HeldSecrets()
    first = platform_secrets_into_vault(inv, sink, kube, held)
    assert len(first["created"]) == len(cat.generated())
    assert [o["metadata"]["name"] for o in kube.applied if o["kind"] == "Namespace"] == ["keycloak", "harbor",
                                                                                        "medai-inference"]
    assert kube.applied.index(next(o for o in kube.applied if o["kind"] == "Secret")) == 3  # namespaces first
    by_name = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in kube.applied if o["kind"] == "Secret"}
    assert set(by_name) == {(s.namespace, s.name) for s in cat.secrets}
    db = by_name[("keycloak", "keycloak-db-credentials")]
    assert db["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(db["data"]["password"]).decode() == sink.read_secret("keycloak/db")["password"]
    admin = by_name[("harbor", "medai-harbor-admin")]
    assert base64.b64decode(admin["data"]["password"]).decode() == sink.read_secret("harbor/admin")["password"]
    assert held.get("harbor/admin", "password") == sink.read_secret("harbor/admin")["password"]
    pull = by_name[("harbor", "medai-harbor-trivy-db-pull")]
    assert base64.b64decode(pull["data"]["password"]).decode() == held.get("harbor/robots/cluster-pull", "password")
    env = by_name[("keycloak", "keycloak-config-cli-env")]
    assert base64.b64decode(env["data"]["KC_CLIENT_SECRET_HARBOR"]).decode() == held.get("keycloak/clients/harbor", "secret")
    key = by_name[("medai-inference", "medai-inference-api-key")]
    assert base64.b64decode(key["data"]["api-key"]).decode() == sink.read_secret("inference/api-key")["api-key"]
    again = platform_secrets_into_vault(inv, sink, RecordedKube())
    assert again["created"] == [] and again["synced"] == first["synced"]  # a rerun keeps every value
    without = platform_secrets_into_vault(inv, sink, RecordedKube(), bootstrap=False)
    assert set(first["synced"]) - set(without["synced"]) == {"keycloak/keycloak-bootstrap-admin"}
