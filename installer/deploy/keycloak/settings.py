"""The site's Keycloak choices, read from the inventory (all.vars ``medai_keycloak_*``), checked strictly."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from installer.core.errors import InventoryError
from installer.core.yamldoc import field_path
from installer.platform.components import keycloak

CLIENT_IDS = ("harbor", "medical-ai-api", "medical-ai-web")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OTPPolicy(_Strict):
    algorithm: Literal["HmacSHA1", "HmacSHA256", "HmacSHA512"] = "HmacSHA256"
    digits: Literal[6, 8] = 6
    period: int = Field(30, ge=15, le=120)
    look_ahead: int = Field(1, ge=0, le=3)


class ClientSettings(_Strict):
    redirect_uris: list[str] = Field(min_length=1)
    web_origins: list[str] = Field(default_factory=list)


class ImportedUser(_Strict):
    username: str
    email: str
    first_name: str = ""
    last_name: str = ""
    groups: list[Literal["clinician", "researcher", "platform-admin"]] = Field(default_factory=list)

    @field_validator("username")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _USERNAME.match(v):
            raise ValueError(f"{v!r}: lower-case letters, digits, '.', '_', '-' (at most 63)")
        return v


class KeycloakSite(_Strict):
    hostname: str
    clients: dict[Literal["harbor", "medical-ai-api", "medical-ai-web"], ClientSettings]
    otp: OTPPolicy = Field(default_factory=OTPPolicy)
    users: list[ImportedUser] = Field(default_factory=list)
    access_token_lifespan: int = Field(300, ge=60, le=900, description="seconds; short on purpose")
    sso_session_idle: int = Field(1800, ge=300)
    sso_session_max: int = Field(36000, ge=1800)
    password_policy: str = ("length(14) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1) "
                            "and notUsername(undefined) and notEmail(undefined) and passwordHistory(5)")
    brute_force_failures: int = Field(5, ge=3, le=20)

    @field_validator("clients")
    @classmethod
    def _all_clients(cls, v: dict) -> dict:
        missing = [c for c in CLIENT_IDS if c not in v]
        if missing:
            raise ValueError(f"missing client(s) {', '.join(missing)}")
        return v


def _redirect_problem(uri: str) -> str | None:
    if "*" in uri:
        return f"{uri!r} is a wildcard; give the exact redirect URI"
    if not uri.startswith("https://"):
        return f"{uri!r} must be https://"
    return None


def keycloak_site(site_vars: dict, source: str = "inventory") -> KeycloakSite:
    """Build KeycloakSite from ``medai_keycloak_*`` vars; one-line InventoryError naming file and field."""
    # the chart-side variables (installer/platform/components/keycloak.py) are the deployment's, not the realm's
    chart_side = set(keycloak.DEFAULTS) - {"medai_keycloak_hostname"}
    raw = {k.removeprefix("medai_keycloak_"): v for k, v in site_vars.items()
           if k.startswith("medai_keycloak_") and k not in chart_side}
    for cid, c in (raw.get("clients") or {}).items():
        for key in ("redirect_uris", "web_origins"):
            for i, uri in enumerate((c or {}).get(key) or []):
                if key == "web_origins" and "*" not in str(uri):
                    continue
                problem = _redirect_problem(str(uri))
                if problem:
                    raise InventoryError(f"{source}: medai_keycloak_clients.{cid}.{key}[{i}]: {problem}")
    try:
        return KeycloakSite(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise InventoryError(f"{source}: medai_keycloak_{field_path(err['loc'])}: {err['msg']}") from None
