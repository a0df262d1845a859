"""The coherence gate of `medai render`, `medai install` and `medai upgrade`, before any host is touched:
installer.platform.coherence.check_site on the site render, with the flows the site declares and the one list of
what the install creates outside the render (made_outside_render):

  - every Kubernetes Secret synced from Vault (the one secrets catalogue, installer/deploy/vault/catalogue.py);
  - Vault's first TLS Secret (roles/vault, from the offline site root);
  - the certificates issued for the site: Vault's own (installer.platform.components.vault.server_names) and
    those Vault's PKI issues (installer.deploy.vault.pki_engine.issued_names), with the site host names their
    clients use;
  - the objects the releases' hooks apply (Keycloak's realm ConfigMap and keycloak-config-cli Job).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from installer.core.errors import MedaiError
from installer.deploy.idp_step import CONFIG_CLI_IMAGE, realm_documents
from installer.deploy.vault import catalogue
from installer.deploy.vault.pki_engine import issued_names
from installer.platform.coherence import Certificate, CoherenceError, Finding, Outside, check_site
from installer.platform.components import keycloak, vault
from installer.platform.site_flows import declared
from installer.platform.values import index_image, role_vars

# The inventory variable naming the host each component's site clients use (its certificate must carry it).
SITE_HOSTNAMES = {catalogue.KEYCLOAK: "medai_keycloak_hostname", catalogue.HARBOR: "medai_harbor_hostname"}
VAULT_SECRET_WHY = "roles/vault (Vault's first certificate, from the offline site root)"


def _vault_site_names(inv) -> tuple[str, ...]:
    extra = inv.site.model_extra or {}
    addrs = [extra.get("medai_vault_addr")] + [m.get("addr") for m in extra.get("medai_vault_members") or []
                                               if isinstance(m, dict)]
    return tuple(sorted({urlsplit(a).hostname for a in addrs if a and urlsplit(a).hostname}))


def certificates(inv, cat: catalogue.Catalogue) -> list[Certificate]:
    """Every certificate the install issues, its Secret, its names and the site names its clients use."""
    v = role_vars("vault", inv)
    out = [Certificate("vault", v["medai_vault_namespace"], v["medai_vault_tls_secret"], tuple(vault.server_names(v)),
                       _vault_site_names(inv))]
    domain = (inv.site.model_extra or {}).get("medai_vault_domain") or "cluster.local"
    site = inv.site.model_dump()
    for s in cat.secrets:
        if s.type == "kubernetes.io/tls":
            host = site.get(SITE_HOSTNAMES.get(s.component, ""))
            out.append(Certificate(s.component, s.namespace, s.name, tuple(issued_names(domain, s.component)),
                                   (host,) if host else ()))
    return out


def made_outside_render(inv, site, index: dict | None = None) -> Outside:
    """The one list of what the install creates outside the render (see the module's docstring)."""
    cat = catalogue.for_inventory(inv)
    out = Outside()
    for s in cat.secrets:
        out.add("Secret", s.namespace, s.name, f"synced from Vault ({s.component})")
    v = role_vars("vault", inv)
    out.add("Secret", v["medai_vault_namespace"], v["medai_vault_tls_secret"], VAULT_SECRET_WHY)
    out.certificates = certificates(inv, cat)
    for r in site.releases:
        if r.chart.name == keycloak.CHART:
            # the image a bundle lacks is refused by name by idp_step.check_job_images; the Job is checked either way
            image = index_image(index, CONFIG_CLI_IMAGE) or CONFIG_CLI_IMAGE
            try:
                job = keycloak.realm_job(role_vars("keycloak", inv), r.name, r.namespace, realm_documents(inv), image,
                                         True)
                out.applied += [(r.name, o) for o in job]
            except MedaiError as e:  # reported as a finding with the rest
                out.unrendered.append((r.name, "Job", f"{r.namespace}/keycloak-config-cli", str(e)))
    return out


def findings(inv, site, index: dict | None = None) -> list[Finding]:
    """Every coherence finding for the site render."""
    return check_site(site, inv, declared(inv), made_outside_render(inv, site, index))


def refuse_incoherent(inv, site, index: dict | None = None) -> None:
    """Raise CoherenceError (every finding, one line each) unless the platform can come up as rendered."""
    found = findings(inv, site, index)
    if found:
        raise CoherenceError(found)
