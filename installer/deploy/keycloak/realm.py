"""Render realm ``medical-ai`` (and the master-realm permanent admin) for keycloak-config-cli.

Secrets never appear in the documents: keycloak-config-cli substitutes ``$(env:NAME)`` at apply time
(``IMPORT_VARSUBSTITUTION_ENABLED=true``), NAME coming from a Kubernetes Secret that the keycloak role fills
from Vault. ``secret_env()`` lists those names with the catalogue entry each one is read from.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from installer.core.errors import MedaiError
from installer.deploy.keycloak.settings import CLIENT_IDS, KeycloakSite
from installer.deploy.vault.catalogue import KEYCLOAK, Catalogue, build, ensure, env_name

REALM = "medical-ai"
GROUPS = ("clinician", "researcher", "platform-admin")
TOTP = "CONFIGURE_TOTP"
_TEMPLATES = Path(__file__).with_name("templates")
_ENV_REF = re.compile(r"^\$\(env:[A-Z][A-Z0-9_]*\)$")


class RealmError(MedaiError):
    """The realm document breaks a rule medai guarantees (MFA, exact redirects, no inline secret)."""


@dataclass(frozen=True)
class SecretEnv:
    env: str          # variable keycloak-config-cli substitutes
    vault_path: str   # the catalogue entry (relative to the KV mount) it is read from
    key: str = "value"


def keycloak_catalogue(site: KeycloakSite):
    return build(keycloak={}, users=[u.username for u in site.users])


def secret_env(site: KeycloakSite) -> list[SecretEnv]:
    """keycloak-config-cli's variables, from the one catalogue's Secret keycloak-config-cli-env."""

    cat = keycloak_catalogue(site)
    env = next(s for s in cat.secrets if s.component == KEYCLOAK and s.name == "keycloak-config-cli-env")
    return [SecretEnv(name, path, fld) for name, (path, fld) in env.keys.items()]


def _env():
    e = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), undefined=jinja2.StrictUndefined,
                           keep_trailing_newline=True, autoescape=False)
    e.filters["env_name_secret"] = lambda c: env_name("CLIENT_SECRET", c)
    e.filters["env_name_user"] = lambda u: env_name("USER_PASSWORD", u)
    e.filters["group_path"] = lambda g: "/" + g
    e.filters["yaml_str"] = lambda v: yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
    return e


def render_realm(site: KeycloakSite) -> dict:
    text = _env().get_template("realm-medical-ai.yaml.j2").render(site=site, realm=REALM, groups=GROUPS,
                                                                 client_ids=CLIENT_IDS)
    doc = yaml.safe_load(text)
    check_realm(doc)
    return doc


def render_master_admin(username: str = "medai-admin") -> dict:
    """The permanent admin (master realm) that replaces the temporary bootstrap admin."""
    return yaml.safe_load(_env().get_template("realm-master-admin.yaml.j2").render(username=username))


def check_realm(doc: dict) -> None:
    """Raise RealmError on the first broken rule; run on every rendered document (and by the tests)."""
    where = f"realm {doc.get('realm')}"
    actions = {a.get("alias"): a for a in doc.get("requiredActions") or []}
    totp = actions.get(TOTP) or {}
    if not (totp.get("enabled") and totp.get("defaultAction")):
        raise RealmError(f"{where}: requiredActions.{TOTP} must be enabled and a default action for new users")
    for i, u in enumerate(doc.get("users") or []):
        if TOTP not in (u.get("requiredActions") or []):
            raise RealmError(f"{where}: users[{i}] ({u.get('username')}): requiredActions lacks {TOTP}")
        for j, c in enumerate(u.get("credentials") or []):
            if not _ENV_REF.match(str(c.get("value", ""))):
                raise RealmError(f"{where}: users[{i}].credentials[{j}].value is inline; use $(env:NAME)")
    for i, c in enumerate(doc.get("clients") or []):
        for key in ("redirectUris", "webOrigins"):
            for j, uri in enumerate(c.get(key) or []):
                if "*" in uri:
                    raise RealmError(f"{where}: clients[{i}] ({c.get('clientId')}).{key}[{j}] {uri!r} is a wildcard")
        if not c.get("publicClient") and not _ENV_REF.match(str(c.get("secret", ""))):
            raise RealmError(f"{where}: clients[{i}] ({c.get('clientId')}).secret is inline or missing; use $(env:NAME)")
    if doc.get("otpPolicyType") != "totp":
        raise RealmError(f"{where}: otpPolicyType must be totp")
    if not doc.get("bruteForceProtected"):
        raise RealmError(f"{where}: bruteForceProtected must be true")


def ensure_secrets(site: KeycloakSite, sink) -> list[str]:
    """Generate every keycloak/ entry of the catalogue that the sink (Vault) does not hold yet; returns the paths
    written (never the values). Existing secrets are kept, so reruns change nothing."""

    cat = keycloak_catalogue(site)
    mine = Catalogue(cat.kv_mount, cat.components, [e for e in cat.entries if e.component == KEYCLOAK])
    return ensure(mine, sink)[0]
