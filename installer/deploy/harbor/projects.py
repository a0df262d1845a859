"""Harbor projects: private, cosign-enforced, with a vulnerability gate. GET first; POST or PUT only what differs.

Harbor's cosign enforcement (``enable_content_trust_cosign``) only checks that SOME cosign signature is attached
to an artifact before it can be pulled; it does not check whose. medai therefore verifies every image against
the site key before pushing it (installer/deploy/harbor/seed.py) and records that in the evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.deploy.harbor.client import HarborClient, HarborError

SEVERITIES = ("none", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    severity: str = "high"          # pulls are refused at this severity and above
    auto_scan: bool = True
    storage_limit: int = -1         # bytes; -1 = unlimited

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise HarborError(f"harbor project {self.name}: severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    def metadata(self) -> dict[str, str]:
        """Harbor's metadata values are strings "true"/"false", not booleans."""
        return {
            "public": "false",
            "enable_content_trust_cosign": "true",
            "prevent_vul": "true",
            "severity": self.severity,
            "auto_scan": "true" if self.auto_scan else "false",
            "reuse_sys_cve_allowlist": "true",
        }


@dataclass
class ProjectResult:
    name: str
    action: str  # created | updated | unchanged
    changed_keys: list[str] = field(default_factory=list)


def get_project(client: HarborClient, name: str) -> dict | None:
    if client.request("HEAD", "/projects", params={"project_name": name}, ok=(200, 404)).status_code == 404:
        return None
    return client.get(f"/projects/{name}", by_name=True).json()


def ensure_project(client: HarborClient, spec: ProjectSpec) -> ProjectResult:
    current = get_project(client, spec.name)
    want = spec.metadata()
    if current is None:
        client.post("/projects", {"project_name": spec.name, "metadata": want, "storage_limit": spec.storage_limit})
        return ProjectResult(spec.name, "created", sorted(want))
    have = current.get("metadata") or {}
    diff = sorted(k for k, v in want.items() if str(have.get(k, "")).lower() != v)
    if not diff:
        return ProjectResult(spec.name, "unchanged")
    client.put(f"/projects/{spec.name}", {"metadata": want}, by_name=True)
    return ProjectResult(spec.name, "updated", diff)
