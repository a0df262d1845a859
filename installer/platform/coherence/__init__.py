"""The platform coherence check: the full site render read as one system before any host is touched.

    check_site(render, inv, flows, installed)  ->  [Finding]   (empty: the platform can come up)

One module per check: references (host names, ports and object references resolve; one default StorageClass),
tls (certificates cover the names their clients use), admission (Pod Security at each namespace's level),
network (default deny, declared flows allowed, undeclared ones denied), scheduling (every pod fits a node;
Longhorn's storage nodes), resources (CPU and memory requests). Each finding is one line naming check, release,
kind, object, field and what is missing. `medai render`, `medai install` and `medai upgrade` refuse a render with
findings (installer.deploy.platform_step.coherence).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from installer.core.errors import MedaiError
from installer.platform.coherence import admission, network, references, resources, scheduling, tls
from installer.platform.coherence.model import Finding, platform_namespaces
from installer.platform.coherence.outside import Certificate, Outside, k3s_made, operator_made
from installer.platform.flows import Flow

__all__ = ["CHECKS", "Certificate", "CoherenceError", "Finding", "Outside", "check_site", "with_applied"]

CHECKS = ("references", "tls", "podsecurity", "network", "scheduling", "resources")


class CoherenceError(MedaiError):
    """The platform cannot come up as rendered: one line per finding."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__(f"the platform cannot come up as rendered ({len(findings)} finding(s), none fixed by "
                         "retrying; `medai render --explain` shows the tables):\n" + "\n".join(map(str, findings)))


def with_applied(site, outside: Outside):
    """The render with the objects the releases' hooks apply (outside.applied) among their site objects."""
    if not outside.applied:
        return site
    extra: dict[str, list[dict]] = {}
    for release, obj in outside.applied:
        extra.setdefault(release, []).append(obj)
    releases = [dataclasses.replace(r, site_objects=r.site_objects + extra.get(r.name, [])) for r in site.releases]
    return dataclasses.replace(site, releases=releases)


def check_site(render, inv, flows: Iterable[Flow], installed: Outside | None = None) -> list[Finding]:
    """Every finding of every check for a site render (installer.platform.render.SiteRender) and its inventory.
    flows: the flows the site declares (installer.platform.flows); installed: what the install creates outside
    the render (Secrets from Vault, the certificates it issues, the hooks' objects), from the deploy layer."""
    site = with_applied(render, installed or Outside())
    outside = Outside().merge(installed or Outside()).merge(k3s_made(inv, platform_namespaces(site)))
    outside.merge(operator_made(site))
    out = references.check(site, inv, outside) + tls.check(site, inv, outside) + admission.check(site, inv, outside)
    out += network.check(site, inv, outside, list(flows))
    out += scheduling.check(site, inv, outside) + resources.check(site, inv, outside)
    return out
