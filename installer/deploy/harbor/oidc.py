"""Harbor's login through Keycloak (OIDC): PUT /configurations with only the keys that differ.

Harbor never returns ``oidc_client_secret``; it is sent whenever any OIDC key changes (and on first setup).
Harbor refuses to switch ``auth_mode`` once local users other than admin exist, so this runs right after install.
"""
from __future__ import annotations

from dataclasses import dataclass

from installer.deploy.harbor.client import HarborClient


@dataclass(frozen=True)
class OIDCSpec:
    endpoint: str                 # https://keycloak.site/realms/medical-ai
    client_id: str = "harbor"
    name: str = "Keycloak"
    scope: str = "openid,profile,email,offline_access"
    groups_claim: str = "groups"
    admin_group: str = "platform-admin"
    user_claim: str = "preferred_username"
    verify_cert: bool = True
    auto_onboard: bool = True

    def settings(self) -> dict:
        return {
            "auth_mode": "oidc_auth",
            "oidc_name": self.name,
            "oidc_endpoint": self.endpoint,
            "oidc_client_id": self.client_id,
            "oidc_scope": self.scope,
            "oidc_groups_claim": self.groups_claim,
            "oidc_admin_group": self.admin_group,
            "oidc_user_claim": self.user_claim,
            "oidc_verify_cert": self.verify_cert,
            "oidc_auto_onboard": self.auto_onboard,
        }


def ensure_oidc(client: HarborClient, spec: OIDCSpec, client_secret: str) -> list[str]:
    """Returns the keys that were changed (empty: nothing sent)."""
    current = client.get("/configurations").json() or {}
    want = spec.settings()
    diff = sorted(k for k, v in want.items() if (current.get(k) or {}).get("value") != v)
    if not diff:
        return []
    client.put("/configurations", {**want, "oidc_client_secret": client_secret})
    return diff
