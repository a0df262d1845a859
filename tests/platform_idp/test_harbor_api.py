"""Every Harbor request medai sends, checked against Harbor 2.13's swagger (no Harbor runs here: the answers come
from FakeHarbor, shaped and validated like Harbor's)."""
from __future__ import annotations

import json

import httpx
import pytest

from installer.deploy.harbor.client import HarborClient, HarborError
from installer.deploy.harbor.configure import configure_harbor, default_site
from installer.deploy.harbor.projects import ProjectSpec
from installer.deploy.harbor.robots import find_robot
from installer.deploy.secret_sink import SecretSink
from tests.platform_idp.harbor_contract import ContractError, DictSink, FakeHarbor, SwaggerContract

# the robots' passwords as the catalogue holds them (harbor/robots/<name> in Vault)
ROBOTS = {"cluster-pull": "PullFromTheCatalogue0123456789ab", "site-ci": "CiFromTheCatalogue0123456789abcd"}

REALM = "https://keycloak.radiology.internal/realms/medical-ai"


@pytest.fixture(scope="module")
def contract():
    return SwaggerContract()


def _client(fake):
    return HarborClient("https://harbor.test", "admin", "pw", transport=fake.transport())


def test_configure_sends_only_spec_valid_requests_and_is_idempotent(contract):
    fake = FakeHarbor(contract)
    site = default_site(REALM)
    with _client(fake) as c:
        first = configure_harbor(c, site, ROBOTS, oidc_client_secret="kc-secret")
    assert first.projects == {"platform": "created", "medical-ai": "created"}
    assert first.robots == {"cluster-pull": "created", "site-ci": "created"}
    assert "auth_mode" in first.oidc_changed
    for name in ("platform", "medical-ai"):
        meta = fake.projects[name]["metadata"]
        assert meta["enable_content_trust_cosign"] == "true" and meta["prevent_vul"] == "true"
        assert meta["severity"] == "high" and meta["public"] == "false"
    # the catalogue's secret is on each robot (FakeHarbor, like a Harbor that ignores RobotCreate.secret, made its
    # own: medai set the catalogue's with PATCH)
    assert {r["name"]: r["secret"] for r in fake.robots.values()} == {f"robot${k}": v for k, v in ROBOTS.items()}
    assert [r.secret_path for r in site.robots] == ["harbor/robots/cluster-pull", "harbor/robots/site-ci"]
    n = len(fake.requests)
    with _client(fake) as c:
        second = configure_harbor(c, site, ROBOTS, oidc_client_secret="kc-secret")
    assert second.projects == {"platform": "unchanged", "medical-ai": "unchanged"}
    assert second.robots == {"cluster-pull": "unchanged", "site-ci": "unchanged"}
    assert second.oidc_changed == []
    assert [r for r in fake.requests[n:] if r.method not in ("GET", "HEAD")] == []


def test_robots_are_least_privilege(contract):
    fake = FakeHarbor(contract)
    with _client(fake) as c:
        configure_harbor(c, default_site(None), ROBOTS)
        pull, ci = find_robot(c, "cluster-pull"), find_robot(c, "site-ci")
    actions = {(p["namespace"], a["resource"], a["action"]) for p in pull["permissions"] for a in p["access"]}
    assert {a for _, _, a in actions} <= {"pull", "read"}, actions
    assert {ns for ns, _, _ in actions} == {"platform", "medical-ai"}
    assert {p["namespace"] for p in ci["permissions"]} == {"medical-ai"}
    assert ("repository", "push") in {(a["resource"], a["action"]) for p in ci["permissions"] for a in p["access"]}


def test_drifted_project_and_robot_are_put_back(contract):
    fake = FakeHarbor(contract)
    site = default_site(None)
    with _client(fake) as c:
        configure_harbor(c, site, ROBOTS)
        fake.projects["platform"]["metadata"]["enable_content_trust_cosign"] = "false"
        rid = next(i for i, r in fake.robots.items() if r["name"] == "robot$cluster-pull")
        fake.robots[rid]["permissions"][0]["access"].append({"resource": "repository", "action": "push", "effect": "allow"})
        rep = configure_harbor(c, site, ROBOTS)
    assert rep.projects["platform"] == "updated" and rep.robots["cluster-pull"] == "updated"
    assert fake.projects["platform"]["metadata"]["enable_content_trust_cosign"] == "true"
    assert all(a["action"] != "push" for p in fake.robots[rid]["permissions"] for a in p["access"])


def test_a_robot_secret_new_in_the_catalogue_is_set_on_the_existing_robot(contract):
    """The catalogue made harbor/robots/site-ci in this run (Vault lost it) while the robot exists: PATCH it."""
    fake = FakeHarbor(contract)
    site = default_site(None)
    with _client(fake) as c:
        configure_harbor(c, site, ROBOTS)
        n = len(fake.requests)
        fresh = {**ROBOTS, "site-ci": "NewCatalogueSecret0123456789abcd"}
        rep = configure_harbor(c, site, fresh, reset=["site-ci"])
    assert rep.robots == {"cluster-pull": "unchanged", "site-ci": "secret-reset"}
    rid = next(i for i, r in fake.robots.items() if r["name"] == "robot$site-ci")
    assert fake.robots[rid]["secret"] == fresh["site-ci"]
    assert [(r.method, r.url.path) for r in fake.requests[n:] if r.method not in ("GET", "HEAD")] == [
        ("PATCH", f"/api/v2.0/robots/{rid}")]


def test_a_robot_without_its_catalogue_secret_is_refused_in_one_line(contract):
    no_secret = r"^harbor robot site-ci: no secret \(harbor/robots/site-ci expected from Vault\)$"
    with _client(FakeHarbor(contract)) as c, pytest.raises(HarborError, match=no_secret):
        configure_harbor(c, default_site(None), {"cluster-pull": ROBOTS["cluster-pull"]})


def test_dict_sink_satisfies_the_protocol():
    assert isinstance(DictSink(), SecretSink)


# --- the contract itself must be able to fail: otherwise the tests above prove nothing ---

def _req(method, path, body=None, params=None):
    return httpx.Request(method, "https://harbor.test/api/v2.0" + path, params=params,
                         content=json.dumps(body).encode() if body is not None else None)


@pytest.mark.parametrize(
    "method,path,body,params,why",
    [
        (
            "POST",
            "/projects",
            {"project_name": "p", "metadata": {"enable_content_trust_cosgin": "true"}},
            None,
            "enable_content_trust_cosgin",
        ),
        ("POST", "/projects", {"projectname": "p"}, None, "projectname"),
        ("POST", "/projects", {"project_name": "p", "metadata": {"prevent_vul": True}}, None, "prevent_vul"),
        (
            "POST",
            "/robots",
            {"name": "r", "permissions": [{"kind": "project", "namespace": "p", "access": [{"resource": "repository", "verb": "pull"}]}]},
            None,
            "verb",
        ),
        ("POST", "/project", {"project_name": "p"}, None, "no such path"),
        ("DELETE", "/robots", None, None, "no such path"),
        ("GET", "/robots", None, {"name": "x"}, "query parameter 'name'"),
        ("HEAD", "/projects", None, None, "required query parameter"),
        ("PUT", "/configurations", {"oidc_endpiont": "https://x"}, None, "oidc_endpiont"),
    ],
)
def test_contract_rejects_typos(contract, method, path, body, params, why):
    with pytest.raises(ContractError, match=why):
        contract.check(_req(method, path, body, params))


def test_client_reports_harbor_errors_in_one_line():
    t = httpx.MockTransport(lambda r: httpx.Response(403, json={"errors": [{"code": "FORBIDDEN", "message": "forbidden"}]}))
    with HarborClient("https://harbor.test", "admin", "hunter2", transport=t) as c, pytest.raises(HarborError) as e:
        c.get("/projects")
    assert "HTTP 403" in str(e.value) and "FORBIDDEN" in str(e.value) and "hunter2" not in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_severity_and_plain_http_are_refused():
    with pytest.raises(HarborError, match="severity 'urgent'"):
        ProjectSpec("platform", severity="urgent")
    with pytest.raises(HarborError, match="https://"):
        HarborClient("http://harbor.test", "admin", "pw")


def test_site_from_inventory_and_its_one_line_errors():
    from installer.core.errors import InventoryError
    from installer.deploy.harbor.configure import site_from_inventory
    from tests.platform_idp.site import SITE_VARS

    url, site = site_from_inventory(
        {**SITE_VARS, "medai_harbor_hostname": "harbor.radiology.internal", "medai_harbor_severity": "critical"}
    )
    assert url == "https://harbor.radiology.internal"
    assert {p.severity for p in site.projects} == {"critical"}
    assert site.oidc.endpoint == "https://keycloak.radiology.internal/realms/medical-ai"
    with pytest.raises(InventoryError, match=r"^site.yml: medai_harbor_hostname: 'https://h' must be"):
        site_from_inventory({**SITE_VARS, "medai_harbor_hostname": "https://h"}, "site.yml")
    with pytest.raises(InventoryError, match="medai_harbor_severity: 'severe'"):
        site_from_inventory({**SITE_VARS, "medai_harbor_hostname": "h", "medai_harbor_severity": "severe"}, "site.yml")
