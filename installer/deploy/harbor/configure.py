"""The whole Harbor configuration medai applies after the chart is up: projects, robots, OIDC. Idempotent."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from installer.core.errors import InventoryError
from installer.deploy.harbor.client import HarborClient, HarborError
from installer.deploy.harbor.oidc import OIDCSpec, ensure_oidc
from installer.deploy.harbor.projects import SEVERITIES, ProjectSpec, ensure_project
from installer.deploy.harbor.robots import PULL, PUSH, RobotSpec, ensure_robot

PLATFORM_PROJECT = "platform"      # the bundle's images, seeded by `medai bundle push`
SITE_PROJECT = "medical-ai"        # the site's own applications, pushed by its CI


@dataclass
class HarborSite:
    projects: list[ProjectSpec]
    robots: list[RobotSpec]
    oidc: OIDCSpec | None = None


ROBOTS_PREFIX = "harbor/robots"  # the catalogue's entries harbor/robots/<name> (installer/deploy/vault/catalogue.py)


def default_site(keycloak_realm_url: str | None, severity: str = "high") -> HarborSite:
    """Two projects, a pull-only robot for the nodes and a push robot for the site's CI (their secrets are the
    catalogue's ``harbor/robots/<name>`` entries in Vault)."""
    base = ROBOTS_PREFIX
    return HarborSite(
        projects=[ProjectSpec(PLATFORM_PROJECT, severity=severity), ProjectSpec(SITE_PROJECT, severity=severity)],
        robots=[
            RobotSpec("cluster-pull", (PLATFORM_PROJECT, SITE_PROJECT), PULL, f"{base}/cluster-pull",
                      "containerd on every node: pull only"),
            RobotSpec("site-ci", (SITE_PROJECT,), PUSH, f"{base}/site-ci",
                      "the site's CI: push and pull in medical-ai only"),
        ],
        oidc=OIDCSpec(keycloak_realm_url) if keycloak_realm_url else None,
    )


@dataclass
class HarborReport:
    projects: dict[str, str] = field(default_factory=dict)
    robots: dict[str, str] = field(default_factory=dict)
    oidc_changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"projects": self.projects, "robots": self.robots, "oidcChanged": self.oidc_changed}


def configure_harbor(client: HarborClient, site: HarborSite, robot_secrets: Mapping[str, str],
                     oidc_client_secret: str | None = None, reset: Iterable[str] = ()) -> HarborReport:
    """robot_secrets: {robot name: password} from the catalogue's harbor/robots/<name>; reset: the robots whose
    catalogue entry was created in this run (an existing robot then gets it)."""
    report = HarborReport()
    reset = set(reset)
    for p in site.projects:
        report.projects[p.name] = ensure_project(client, p).action
    for r in site.robots:
        if not robot_secrets.get(r.name):
            raise HarborError(f"harbor robot {r.name}: no secret ({r.secret_path} expected from Vault)")
        report.robots[r.name] = ensure_robot(client, r, robot_secrets[r.name], r.name in reset).action
    if site.oidc is not None:
        if not oidc_client_secret:
            raise HarborError("harbor OIDC: no client secret for client 'harbor' (expected from Vault)")
        report.oidc_changed = ensure_oidc(client, site.oidc, oidc_client_secret)
    return report


def site_from_inventory(site_vars: dict, source: str = "inventory") -> tuple[str, HarborSite]:
    """(Harbor URL, HarborSite) from all.vars: medai_harbor_hostname, optional
    medai_harbor_severity (default high) and medai_keycloak_hostname (OIDC through realm medical-ai when set)."""

    host = site_vars.get("medai_harbor_hostname")
    if not host or not isinstance(host, str) or "/" in host or ":" in host:
        raise InventoryError(f"{source}: medai_harbor_hostname: {host!r} must be Harbor's DNS name (no scheme, no port)")
    severity = site_vars.get("medai_harbor_severity", "high")
    if severity not in SEVERITIES:
        raise InventoryError(f"{source}: medai_harbor_severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    kc = site_vars.get("medai_keycloak_hostname")
    realm = f"https://{kc}/realms/medical-ai" if kc else None
    return f"https://{host}", default_site(realm, severity)
