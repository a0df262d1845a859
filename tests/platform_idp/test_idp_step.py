"""The install's Keycloak and Harbor steps (installer/deploy/idp_step.py), decided from recorded API answers.

NOT executed here: Keycloak, Harbor and K3s themselves (none runs on these machines). Harbor's answers come from
FakeHarbor (every request validated against Harbor 2.13's swagger); Keycloak's admin API answers are recorded
shapes (token, users query, delete); the Kubernetes API is a recording stand-in for KubeApi's get/apply/delete.
The same hooks run against a real cluster in tests/deploy/test_e2e_vault_idp.py (MEDAI_E2E_K3S)."""
from __future__ import annotations

import copy
import json

import httpx
import pytest
import yaml

from installer.core.errors import InstallError
from installer.deploy.idp_step import (
    CONFIG_CLI_IMAGE,
    STATE_CONFIGMAP,
    config_cli_image,
    harbor_after_release,
    keycloak_after_release,
    realm_job_objects,
    without_bootstrap_env,
)
from installer.deploy.vault.install_step import HeldSecrets
from installer.platform.apply import ApplyOptions, apply_platform
from tests.platform_idp.harbor_contract import FakeHarbor, SwaggerContract
from tests.platform_idp.site import SITE_VARS
from tests.support.fixture_charts import ROOT
from tests.support.kube import RecordedKube

INDEX = {"artifacts": [{"kind": "image", "ref": f"{CONFIG_CLI_IMAGE}:6.5.1-26.0.5", "digest": "sha256:" + "cd" * 32}]}
_BOOTSTRAP = "keycloak-bootstrap-admin"
VALUES = {"extraEnv": yaml.safe_dump([
    {"name": "KC_HOSTNAME", "value": "https://kc"},
    {"name": "KC_BOOTSTRAP_ADMIN_USERNAME", "valueFrom": {"secretKeyRef": {"name": _BOOTSTRAP, "key": "username"}}},
    {"name": "KC_BOOTSTRAP_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": _BOOTSTRAP, "key": "password"}}},
])}


@pytest.fixture(scope="module")
def inv(tmp_path_factory):
    from installer.deploy.inventory import load_inventory

    d = tmp_path_factory.mktemp("idp-inv")
    doc = yaml.safe_load((ROOT / "inventories" / "example" / "site.yml").read_text())
    doc["all"]["vars"].update({k: v for k, v in SITE_VARS.items() if k.startswith("medai_keycloak_")})
    (d / "site.yml").write_text(yaml.safe_dump(doc))
    return load_inventory(d / "site.yml")


def _held(created=()) -> HeldSecrets:
    h = HeldSecrets()
    h.keep("harbor/admin", {"username": "admin", "password": "HarborAdminFromVault1"})
    h.keep("harbor/robots/cluster-pull", {"username": "robot$cluster-pull", "password": "PullFromVault0123456789abcdefABCD"})
    h.keep("harbor/robots/site-ci", {"username": "robot$site-ci", "password": "CiFromVault0123456789abcdefABCDE"})
    h.keep("keycloak/clients/harbor", {"secret": "OidcFromVault0123456789"})
    h.keep("keycloak/admin", {"username": "medai-admin", "password": "KcAdminFromVault1!"})
    h.created = list(created)
    return h


class Kube(RecordedKube):
    """The recording stand-in at the API seam (tests/support/kube.py); Jobs complete (or fail) as the test says."""

    def __init__(self, job_condition="Complete"):
        super().__init__()
        self.job_condition = job_condition

    def apply(self, obj):
        if obj["kind"] == "Job":
            failed = self.job_condition == "Failed"
            obj = {**obj, "status": {"conditions": [{
                "type": self.job_condition, "status": "True", "reason": "BackoffLimitExceeded" if failed else None,
                "message": "Job has reached the specified backoff limit" if failed else ""}]}}
        super().apply(obj)

    @property
    def objects(self) -> dict[tuple, dict]:
        """(kind, namespace, name) -> the object as the API holds it now."""
        return {(kind, (o["metadata"]).get("namespace"), o["metadata"]["name"]): o
                for (_, kind), items in self.lists.items() for o in items}

    @property
    def log(self) -> list[tuple[str, str, str]]:
        return [(verb, kind, name) for verb, kind, _ns, name in self.calls]


class Helm:
    def __init__(self):
        self.calls: list[dict] = []
        self.deployed: dict | None = None

    def listed(self, release, namespace):
        return None if self.deployed is None else {"name": release, "namespace": namespace, "status": "deployed",
                                                   "chart": "keycloakx-7.0.1", "revision": len(self.calls)}

    def values(self, release, namespace):
        return self.deployed

    def upgrade_install(self, release, archive, values, namespace, timeout_s, wait=True):
        self.calls.append(values)
        self.deployed = values


class Keycloak:
    """Recorded answers of Keycloak 26's token endpoint and admin users API."""

    def __init__(self, users=({"id": "0b1c", "username": "temp-admin"},)):
        self.users = list(users)
        self.requests: list[httpx.Request] = []

    def transport(self):
        return httpx.MockTransport(self.handle)

    def handle(self, r: httpx.Request) -> httpx.Response:
        self.requests.append(r)
        if r.url.path == "/realms/master/protocol/openid-connect/token" and r.method == "POST":
            form = dict(x.split("=", 1) for x in r.content.decode().split("&"))
            if form.get("username") != "medai-admin":
                return httpx.Response(401, json={"error": "invalid_grant"})
            return httpx.Response(200, json={"access_token": "eyJ.recorded.token", "expires_in": 60, "token_type": "Bearer"})
        assert r.headers["Authorization"] == "Bearer eyJ.recorded.token"
        if r.url.path == "/admin/realms/master/users" and r.method == "GET":
            assert r.url.params["username"] == "temp-admin" and r.url.params["exact"] == "true"
            return httpx.Response(200, json=[u for u in self.users if u["username"] == "temp-admin"])
        if r.url.path.startswith("/admin/realms/master/users/") and r.method == "DELETE":
            self.users = [u for u in self.users if u["id"] != r.url.path.rsplit("/", 1)[1]]
            return httpx.Response(204)
        return httpx.Response(404)


class Release:
    name, namespace, archive = "keycloakx", "keycloak", "keycloakx-7.0.1.tgz"

    def __init__(self):
        self.values = copy.deepcopy(VALUES)
        self.site_objects: list = []
        self.chart = type("C", (), {"name": "keycloakx", "version": "7.0.1"})()


# ------------------------------------------------------------------------------------------------ Keycloak


def test_realm_job_uses_the_bundles_image_by_digest_and_the_admin_it_is_told(inv):
    with_bootstrap = realm_job_objects(inv, INDEX, True)
    after = realm_job_objects(inv, INDEX, False)
    job = next(o for o in with_bootstrap if o["kind"] == "Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == f"{CONFIG_CLI_IMAGE}:6.5.1-26.0.5@sha256:" + "cd" * 32
    users = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert users["KEYCLOAK_USER"] == "keycloak-bootstrap-admin"
    c2 = next(o for o in after if o["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in c2["env"] if "valueFrom" in e} == {"keycloak-permanent-admin"}
    cm = next(o for o in with_bootstrap if o["kind"] == "ConfigMap")
    realm = yaml.safe_load(cm["data"]["medical-ai.yaml"])
    assert realm["realm"] == "medical-ai" and "$(env:KC_CLIENT_SECRET_HARBOR)" in json.dumps(realm)


def test_a_bundle_without_the_config_cli_image_is_refused_in_one_line():
    with pytest.raises(InstallError, match=r"^index.json: no docker.io/adorsys/keycloak-config-cli image: release keycloakx"):
        config_cli_image({"artifacts": []})


def test_install_checks_the_realm_job_image_before_any_host_only_when_it_will_apply_the_job():
    from types import SimpleNamespace

    from installer.deploy.idp_step import check_job_images

    def site(*charts):
        return SimpleNamespace(releases=[SimpleNamespace(name=c, chart=SimpleNamespace(name=c)) for c in charts])

    with pytest.raises(InstallError, match=r"^index.json: no docker.io/adorsys/keycloak-config-cli image"):
        check_job_images(site("vault", "keycloakx"), {"artifacts": []})
    check_job_images(site("keycloakx"), {"artifacts": []})  # no Vault: Keycloak is not configured by medai
    check_job_images(site("vault", "harbor"), {"artifacts": []})


def test_without_bootstrap_env_drops_only_the_bootstrap_admin():
    env = yaml.safe_load(without_bootstrap_env(VALUES)["extraEnv"])
    assert [e["name"] for e in env] == ["KC_HOSTNAME"]


def test_keycloak_step_applies_the_realm_removes_the_bootstrap_admin_once_and_reruns_change_nothing(inv):
    kube, helm, kc, lines = Kube(), Helm(), Keycloak(), []
    hook = keycloak_after_release(inv, kube, helm, INDEX, _held(), lambda: "unused", lines.append,
                                  http_transport=kc.transport(), job_timeout_s=1)
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keycloak-bootstrap-admin", "namespace": "keycloak"}})
    hook(Release())
    assert kc.users == []  # temp-admin deleted through the admin API, as the permanent admin
    assert [(r.method, r.url.path) for r in kc.requests] == [
        ("POST", "/realms/master/protocol/openid-connect/token"), ("GET", "/admin/realms/master/users"),
        ("DELETE", "/admin/realms/master/users/0b1c")]
    assert ("Secret", "keycloak", "keycloak-bootstrap-admin") not in kube.objects
    assert kube.objects[("ConfigMap", "keycloak", STATE_CONFIGMAP)]["data"] == {"bootstrapAdminRemoved": "true"}
    assert len(helm.calls) == 1 and "KC_BOOTSTRAP" not in helm.calls[0]["extraEnv"]
    # order: realm ConfigMap and Job, then the Secret's removal, then the state record
    order = [(a, k) for a, k, _ in kube.log]
    assert order.index(("apply", "Job")) < order.index(("delete", "Secret")) < len(order) - 1
    assert any("temporary bootstrap admin removed (1 user(s) deleted" in ln for ln in lines)
    # rerun: the realm Job runs again (it applies differences), nothing else is sent
    n_kc, n_helm = len(kc.requests), len(helm.calls)
    first_job = next(k[2] for k in kube.objects if k[0] == "Job")
    hook(Release())
    assert len(kc.requests) == n_kc and len(helm.calls) == n_helm
    # a Job's template is immutable: logging in as the permanent admin is a Job of another name
    rerun_job = next(o for k, o in kube.objects.items() if k[0] == "Job" and k[2] != first_job)
    jobs = sum(1 for k in kube.objects if k[0] == "Job")
    hook(Release())  # and an unchanged rerun re-applies that same Job
    assert sum(1 for k in kube.objects if k[0] == "Job") == jobs == 2
    env = rerun_job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e} == {"keycloak-permanent-admin"}


def test_platform_apply_uses_the_values_without_bootstrap_once_removed_so_a_rerun_is_unchanged(inv):
    from installer.deploy.idp_step import bootstrap_removed

    kube, helm = Kube(), Helm()
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": STATE_CONFIGMAP, "namespace": "keycloak"},
                "data": {"bootstrapAdminRemoved": "true"}})
    helm.deployed = without_bootstrap_env(VALUES)
    opts = ApplyOptions(values_for={"keycloakx": lambda r: without_bootstrap_env(r.values)
                                    if bootstrap_removed(kube, r.namespace) else r.values})
    site = type("S", (), {"releases": [Release()]})()
    assert [o.action for o in apply_platform(site, helm, kube, opts)] == ["unchanged"]
    assert helm.calls == []
    kube.delete("v1", "ConfigMap", STATE_CONFIGMAP, "keycloak")  # without the record: the rendered values
    assert [o.action for o in apply_platform(site, helm, kube, opts)] == ["upgrade"]


def test_a_failed_realm_job_is_one_line_naming_release_step_and_job(inv):
    hook = keycloak_after_release(inv, Kube("Failed"), Helm(), INDEX, _held(), lambda: "unused", print,
                                  http_transport=Keycloak().transport(), job_timeout_s=1)
    with pytest.raises(InstallError) as e:
        hook(Release())
    msg = str(e.value)
    assert msg.startswith("release keycloakx: step realm: Job keycloak/keycloak-config-cli-") and "BackoffLimitExceeded" in msg
    assert "\n" not in msg


def test_a_refused_admin_login_is_one_line_without_the_password(inv):
    held = _held()
    held.keep("keycloak/admin", {"username": "someone-else", "password": "KcAdminFromVault1!"})
    hook = keycloak_after_release(inv, Kube(), Helm(), INDEX, held, lambda: "unused", print,
                                  http_transport=Keycloak().transport(), job_timeout_s=1)
    with pytest.raises(InstallError) as e:
        hook(Release())
    assert str(e.value) == ("release keycloakx: step bootstrap-admin: POST /realms/master/protocol/openid-connect/token: "
                            "HTTP 401")


# ------------------------------------------------------------------------------------------------ Harbor


def test_harbor_step_configures_projects_robots_and_oidc_with_the_catalogues_secrets(inv):
    fake, lines = FakeHarbor(SwaggerContract()), []
    rec = type("R", (), {"data": {}, "save": lambda self: None})()
    hook = harbor_after_release(inv, _held(), lambda: "unused", lines.append, rec, transport=fake.transport())
    hook(None)
    assert rec.data["harbor"]["projects"] == {"platform": "created", "medical-ai": "created"}
    for p in fake.projects.values():
        assert p["metadata"]["enable_content_trust_cosign"] == "true" and p["metadata"]["prevent_vul"] == "true"
    assert {r["name"]: r["secret"] for r in fake.robots.values()} == {
        "robot$cluster-pull": "PullFromVault0123456789abcdefABCD", "robot$site-ci": "CiFromVault0123456789abcdefABCDE"}
    assert fake.last_oidc_secret == "OidcFromVault0123456789"
    assert fake.config["oidc_endpoint"]["value"] == "https://keycloak.radiology.internal/realms/medical-ai"
    assert fake.requests[0].headers["Authorization"].startswith("Basic ")
    n = len(fake.requests)
    hook(None)  # rerun: reads only
    assert [r for r in fake.requests[n:] if r.method not in ("GET", "HEAD")] == []
    assert "robots cluster-pull unchanged, site-ci unchanged; OIDC unchanged" in lines[-1]
    for secret in ("HarborAdminFromVault1", "PullFromVault", "OidcFromVault"):
        assert not any(secret in ln for ln in lines) and secret not in json.dumps(rec.data)


def test_harbor_refusal_is_one_line_naming_release_step_and_request(inv):
    t = httpx.MockTransport(lambda r: httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]}))
    hook = harbor_after_release(inv, _held(), lambda: "unused", print, transport=t)
    with pytest.raises(InstallError) as e:
        hook(None)
    msg = str(e.value)
    assert msg.startswith("release harbor: step api-configuration: HEAD /api/v2.0/projects: HTTP 401")
    assert "HarborAdminFromVault1" not in msg and "\n" not in msg


def test_held_secrets_never_show_a_value():
    h = _held()
    assert "HarborAdminFromVault1" not in repr(h) and "harbor/admin" in repr(h)
    with pytest.raises(InstallError, match=r"^secrets catalogue: grafana/admin \(password\) was not read from Vault"):
        h.get("grafana/admin", "password")
