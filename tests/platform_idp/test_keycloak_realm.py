"""Realm medical-ai as rendered for keycloak-config-cli: MFA for everyone, exact redirects, no inline secret.
(Keycloak itself does not run here; the document is what keycloak-config-cli would apply.)"""
from __future__ import annotations

import copy
import json
import re

import pytest

from installer.core.errors import InventoryError, MedaiError
from installer.deploy.keycloak.realm import RealmError, check_realm, ensure_secrets, render_master_admin, render_realm, secret_env
from installer.deploy.keycloak.settings import keycloak_site
from tests.platform_idp.harbor_contract import DictSink
from tests.platform_idp.site import SITE_VARS

ENV_REF = re.compile(r"^\$\(env:[A-Z0-9_]+\)$")


@pytest.fixture
def site():
    return keycloak_site(copy.deepcopy(SITE_VARS), "site.yml")


@pytest.fixture
def realm(site):
    return render_realm(site)


def test_totp_is_required_for_new_and_for_every_imported_user(realm):
    totp = next(a for a in realm["requiredActions"] if a["alias"] == "CONFIGURE_TOTP")
    assert totp["enabled"] is True and totp["defaultAction"] is True
    assert len(realm["users"]) == 3
    for u in realm["users"]:
        assert "CONFIGURE_TOTP" in u["requiredActions"], u["username"]
    # and the login flow asks for the code every time, not only from users who configured one
    flows = {f["alias"]: f for f in realm["authenticationFlows"]}
    assert realm["browserFlow"] == "medai-browser"
    forms = {e["authenticator"]: e["requirement"] for e in flows["medai-browser-forms"]["authenticationExecutions"]}
    assert forms == {"auth-username-password-form": "REQUIRED", "auth-otp-form": "REQUIRED"}


def test_otp_password_bruteforce_and_token_policy(realm, site):
    assert (realm["otpPolicyType"], realm["otpPolicyAlgorithm"], realm["otpPolicyDigits"], realm["otpPolicyPeriod"]) == \
        ("totp", "HmacSHA256", 6, 30)
    assert "length(14)" in realm["passwordPolicy"] and "passwordHistory(5)" in realm["passwordPolicy"]
    assert realm["bruteForceProtected"] is True and realm["failureFactor"] == 5
    assert realm["accessTokenLifespan"] == 300 and realm["sslRequired"] == "all"
    assert realm["registrationAllowed"] is False


def test_site_can_override_the_otp_policy():
    v = {**copy.deepcopy(SITE_VARS), "medai_keycloak_otp": {"algorithm": "HmacSHA512", "digits": 8, "period": 60}}
    r = render_realm(keycloak_site(v))
    assert (r["otpPolicyAlgorithm"], r["otpPolicyDigits"], r["otpPolicyPeriod"]) == ("HmacSHA512", 8, 60)
    with pytest.raises(InventoryError, match=r"medai_keycloak_otp.digits"):
        keycloak_site({**copy.deepcopy(SITE_VARS), "medai_keycloak_otp": {"digits": 7}}, "site.yml")


def test_clients_have_exact_redirects_and_env_referenced_secrets(realm):
    clients = {c["clientId"]: c for c in realm["clients"]}
    assert set(clients) == {"harbor", "medical-ai-api", "medical-ai-web"}
    assert clients["harbor"]["redirectUris"] == ["https://harbor.radiology.internal/c/oidc/callback"]
    for c in clients.values():
        assert c["publicClient"] is False and ENV_REF.match(c["secret"]), c["clientId"]
        assert not any("*" in u for u in c["redirectUris"] + c["webOrigins"])
        assert "medai-groups" in c["defaultClientScopes"]
    assert clients["medical-ai-web"]["attributes"]["pkce.code.challenge.method"] == "S256"


def test_no_secret_value_appears_anywhere_in_the_documents(realm, site):
    sink = DictSink()
    written = ensure_secrets(site, sink)
    # 3 client secrets, 3 user passwords, the permanent admin (the env keycloak-config-cli substitutes), plus the
    # bootstrap admin (read by Keycloak's own env, not substituted)
    assert len(secret_env(site)) == 7 and len(written) == 8
    assert {s.vault_path for s in secret_env(site)} | {"keycloak/bootstrap-admin"} == set(written)
    text = json.dumps(realm) + json.dumps(render_master_admin())
    for data in sink.data.values():
        for key, value in data.items():
            if key != "username":  # user names are not secret (medai-admin is named in the document)
                assert value not in text
    for u in realm["users"]:
        assert all(ENV_REF.match(c["value"]) for c in u["credentials"])
    assert ensure_secrets(site, sink) == []  # rerun keeps what Vault holds


def test_groups_roles_and_token_mappers(realm):
    assert {g["name"]: g["realmRoles"] for g in realm["groups"]} == {
        "clinician": ["clinician"], "researcher": ["researcher"], "platform-admin": ["platform-admin"]}
    scope = next(s for s in realm["clientScopes"] if s["name"] == "medai-groups")
    mappers = {m["protocolMapper"]: m["config"] for m in scope["protocolMappers"]}
    assert mappers["oidc-group-membership-mapper"]["claim.name"] == "groups"
    assert mappers["oidc-group-membership-mapper"]["access.token.claim"] == "true"
    assert mappers["oidc-usermodel-realm-role-mapper"]["claim.name"] == "roles"
    assert {u["username"]: u["groups"] for u in realm["users"]}["dr.grey"] == ["/clinician"]


@pytest.mark.parametrize("uri", ["https://ai.radiology.internal/*", "*", "https://*.radiology.internal/cb"])
def test_wildcard_redirect_is_refused_naming_the_field(uri):
    v = copy.deepcopy(SITE_VARS)
    v["medai_keycloak_clients"]["medical-ai-web"]["redirect_uris"] = ["https://ok.internal/cb", uri]
    with pytest.raises(InventoryError) as e:
        keycloak_site(v, "site.yml")
    assert str(e.value).startswith("site.yml: medai_keycloak_clients.medical-ai-web.redirect_uris[1]: ")
    assert "wildcard" in str(e.value) and "\n" not in str(e.value)


def test_missing_client_and_plain_http_are_refused():
    v = copy.deepcopy(SITE_VARS)
    del v["medai_keycloak_clients"]["harbor"]
    with pytest.raises(InventoryError, match="medai_keycloak_clients: .*missing client.*harbor"):
        keycloak_site(v, "site.yml")
    v = copy.deepcopy(SITE_VARS)
    v["medai_keycloak_clients"]["harbor"]["redirect_uris"] = ["http://harbor/c/oidc/callback"]
    with pytest.raises(InventoryError, match=r"harbor.redirect_uris\[0\].*https://"):
        keycloak_site(v, "site.yml")


# The guard that runs on every rendered document must catch each broken rule (so the tests above can fail).
@pytest.mark.parametrize("breakit,msg", [
    (lambda r: r["users"][1]["requiredActions"].remove("CONFIGURE_TOTP"), r"users\[1\] \(r.chen\).*CONFIGURE_TOTP"),
    (lambda r: r["requiredActions"][0].update(defaultAction=False), "default action"),
    (lambda r: r["clients"][2]["redirectUris"].append("https://ai.radiology.internal/*"), "wildcard"),
    (lambda r: r["clients"][0].update(secret="s3cr3t-inline"), r"harbor\)\.secret is inline"),
    (lambda r: r["users"][0]["credentials"][0].update(value="Passw0rd!"), "credentials.*inline"),
    (lambda r: r.update(bruteForceProtected=False), "bruteForce"),
])
def test_check_realm_catches_each_broken_rule(realm, breakit, msg):
    broken = copy.deepcopy(realm)
    breakit(broken)
    with pytest.raises(RealmError, match=msg):
        check_realm(broken)
    assert issubclass(RealmError, MedaiError)
