"""Keycloak's realm and Harbor's API configuration inside `medai install`'s platform step (after each release is
ready; only when K3s really runs):

  keycloakx ready   the realm ConfigMap and the keycloak-config-cli Job (roles/keycloak/templates/config-cli-job.yaml.j2,
                    its image by digest from the verified bundle) are applied and awaited; then the temporary
                    bootstrap admin is deleted through the admin API as the permanent admin, its Secret deleted,
                    the state ConfigMap ``medai-keycloak-state`` records it, and the release is upgraded without
                    the KC_BOOTSTRAP_ADMIN_* env (later installs apply those values from the start: no new revision)
  harbor ready      projects, robots (their secrets: the catalogue's harbor/robots/<name>), OIDC through Keycloak,
                    through Harbor's REST API (installer/deploy/harbor/configure.py)

Each failure is one line naming the release, the step and the object. Secrets come from HeldSecrets (read
from Vault while the install held its short-lived token), never from files. Not executed here (no K3s,
Keycloak or Harbor on these machines): tests/deploy/test_e2e_vault_idp.py runs it with MEDAI_E2E_K3S; the
decisions are unit-tested from recorded responses (tests/platform_idp/test_idp_step.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import yaml

from installer.bundle.layout import BundleLayout
from installer.core.errors import InstallError
from installer.deploy.harbor.client import HarborClient, HarborError
from installer.deploy.harbor.configure import configure_harbor, site_from_inventory
from installer.deploy.keycloak.realm import render_master_admin, render_realm
from installer.deploy.keycloak.settings import keycloak_site
from installer.deploy.vault.bootstrap_tls import root_ca_dir
from installer.deploy.vault.catalogue import KC_BOOTSTRAP_USER
from installer.deploy.vault.install_step import HeldSecrets, has_vault, vault_after_release
from installer.deploy.vault.pki import ROOT_CERT
from installer.deploy.vault.settings import vault_settings
from installer.platform.apply import HelmError
from installer.platform.components import keycloak
from installer.platform.values import index_image, role_vars

CONFIG_CLI_IMAGE = "docker.io/adorsys/keycloak-config-cli"
STATE_CONFIGMAP = "medai-keycloak-state"
BOOTSTRAP_ENV = ("KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD")


# ------------------------------------------------------------------------------------------------ Keycloak


def config_cli_image(index: dict | None) -> str:
    """keycloak-config-cli by digest from the verified bundle index; one line when the bundle lacks it."""
    found = index_image(index, CONFIG_CLI_IMAGE)
    if found is None:
        raise InstallError(f"index.json: no {CONFIG_CLI_IMAGE} image: release keycloakx's realm Job needs it "
                           "(spec.images of the bundle manifest)")
    return found


def check_job_images(site, index: dict) -> None:
    """The images of the Jobs medai applies beside the charts (keycloak-config-cli), checked against the verified
    index when the install will apply them, so a bundle that lacks one is refused before any host is touched."""

    if has_vault(site) and any(r.name == "keycloakx" for r in site.releases):
        config_cli_image(index)


def realm_documents(inv) -> dict[str, str]:
    site = keycloak_site(inv.site.model_dump(), str(inv.path))
    kc = _role_vars(inv)
    return {"medical-ai.yaml": yaml.safe_dump(render_realm(site), sort_keys=False),
            "master-admin.yaml": yaml.safe_dump(render_master_admin(kc["medai_keycloak_admin_username"]), sort_keys=False)}


def _role_vars(inv) -> dict:
    return role_vars("keycloak", inv)


def realm_job_objects(inv, index: dict | None, bootstrap: bool, release: str = keycloak.CHART,
                      namespace: str | None = None) -> list[dict]:
    """The ConfigMap with the realm documents and the keycloak-config-cli Job (installer/platform/components/keycloak.py)."""
    kc = _role_vars(inv)
    return keycloak.realm_job(kc, release, namespace or kc["medai_keycloak_namespace"], realm_documents(inv),
                              config_cli_image(index), bootstrap)


def without_bootstrap_env(values: dict) -> dict:
    """The keycloakx values with the KC_BOOTSTRAP_ADMIN_* entries taken out of extraEnv (a YAML string)."""
    out = dict(values)
    env = yaml.safe_load(values.get("extraEnv") or "[]") or []
    out["extraEnv"] = yaml.safe_dump([e for e in env if e.get("name") not in BOOTSTRAP_ENV], sort_keys=False)
    return out


def bootstrap_removed(kube, namespace: str) -> bool:
    cm = kube.get("v1", "ConfigMap", STATE_CONFIGMAP, namespace)
    return bool(cm) and (cm.get("data") or {}).get("bootstrapAdminRemoved") == "true"


def wait_job(kube, name: str, namespace: str, timeout_s: int, sleep=time.sleep) -> None:
    """Complete, else one line naming the Job and its failed condition or the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = kube.get("batch/v1", "Job", name, namespace) or {}
        for c in (job.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Complete" and c.get("status") == "True":
                return
            if c.get("type") == "Failed" and c.get("status") == "True":
                raise InstallError(f"release keycloakx: step realm: Job {namespace}/{name} failed: "
                                   f"{c.get('reason')}: {(c.get('message') or '').strip()} "
                                   f"(kubectl -n {namespace} logs job/{name})")
        if time.monotonic() > deadline:
            raise InstallError(f"release keycloakx: step realm: Job {namespace}/{name} not complete after {timeout_s}s")
        sleep(5)


def remove_bootstrap_admin(http: httpx.Client, admin_user: str, admin_password: str, temp_user: str) -> int:
    """As the permanent admin: delete every master-realm user named ``temp_user``; returns how many."""
    def call(method: str, path: str, **kw) -> httpx.Response:
        try:
            r = http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise InstallError(f"release keycloakx: step bootstrap-admin: {method} {path}: {type(e).__name__}") from None
        if r.status_code >= 300:
            raise InstallError(f"release keycloakx: step bootstrap-admin: {method} {path}: HTTP {r.status_code}")
        return r

    token = call("POST", "/realms/master/protocol/openid-connect/token",
                 data={"grant_type": "password", "client_id": "admin-cli", "username": admin_user,
                       "password": admin_password}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    users = call("GET", "/admin/realms/master/users", params={"username": temp_user, "exact": "true"},
                 headers=auth).json()
    for u in users:
        call("DELETE", f"/admin/realms/master/users/{u['id']}", headers=auth)
    return len(users)


def keycloak_after_release(inv, kube, helm, index, held, ca_file: Callable[[], str], echo: Callable[[str], None],
                           http_transport: httpx.BaseTransport | None = None, job_timeout_s: int = 900):
    """The platform step's hook for release keycloakx (ApplyOptions.after)."""

    def hook(release) -> None:
        kc = _role_vars(inv)
        ns = release.namespace
        removed = bootstrap_removed(kube, ns)
        objs = realm_job_objects(inv, index, not removed, release.name, ns)
        for o in objs:
            kube.apply(o)
        job = next(o for o in objs if o["kind"] == "Job")["metadata"]["name"]
        wait_job(kube, job, ns, job_timeout_s)
        echo(f"realm medical-ai applied (Job {ns}/{job})")
        if removed:
            return
        with httpx.Client(base_url=f"https://{kc['medai_keycloak_hostname']}", transport=http_transport,
                          verify=True if http_transport else _ssl(ca_file()), timeout=30) as http:
            n = remove_bootstrap_admin(http, held.get("keycloak/admin", "username"),
                                       held.get("keycloak/admin", "password"), KC_BOOTSTRAP_USER)
        kube.delete("v1", "Secret", kc["medai_keycloak_bootstrap_secret"], ns)
        values = without_bootstrap_env(release.values)

        try:
            helm.upgrade_install(release.name, release.archive, values, ns, 900)
        except HelmError as e:
            raise InstallError(f"release keycloakx: step bootstrap-admin: helm upgrade without the bootstrap env: "
                               f"{str(e).strip().splitlines()[-1] if str(e).strip() else 'failed'}") from None
        kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": STATE_CONFIGMAP, "namespace": ns,
                                 "labels": {"app.kubernetes.io/managed-by": "medai"}},
                    "data": {"bootstrapAdminRemoved": "true"}})
        echo(f"temporary bootstrap admin removed ({n} user(s) deleted, Secret {ns}/"
             f"{kc['medai_keycloak_bootstrap_secret']} deleted, release upgraded without it)")
    return hook


def _ssl(ca_file: str):
    import ssl

    return ssl.create_default_context(cafile=ca_file)


# ------------------------------------------------------------------------------------------------ Harbor


def harbor_after_release(inv, held, ca_file: Callable[[], str], echo: Callable[[str], None], record=None,
                         transport: httpx.BaseTransport | None = None):
    """The platform step's hook for release harbor: projects, robots, OIDC through Harbor's API."""

    def hook(release) -> None:
        url, site = site_from_inventory(inv.site.model_dump(), str(inv.path))
        robots = {r.name: held.get(r.secret_path, "password") for r in site.robots}
        reset = [r.name for r in site.robots if r.secret_path in held.created]
        oidc = held.get("keycloak/clients/harbor", "secret") if site.oidc else None
        try:
            with HarborClient(url, "admin", held.get("harbor/admin", "password"),
                              ca_file=None if transport else ca_file(), transport=transport) as c:
                rep = configure_harbor(c, site, robots, oidc, reset=reset)
        except HarborError as e:
            raise InstallError(f"release harbor: step api-configuration: {e}") from None
        if record is not None:
            record.data["harbor"] = rep.to_dict()
            record.save()
        echo("harbor: projects " + ", ".join(f"{k} {v}" for k, v in rep.projects.items())
             + "; robots " + ", ".join(f"{k} {v}" for k, v in rep.robots.items())
             + f"; OIDC {'changed: ' + ', '.join(rep.oidc_changed) if rep.oidc_changed else 'unchanged'}")
    return hook


# ------------------------------------------------------------------------------------------------ wiring


def site_root_ca_file(inv) -> str:
    """The site root CA certificate (public) Harbor's and Keycloak's certificates chain to."""

    return str(root_ca_dir(inv, vault_settings(inv).root_ca_dir) / ROOT_CERT)


def wire(opts, inv, site, kube, helm, record, bundle, echo: Callable[[str], None]) -> None:
    """Register the platform step's hooks: Vault (init, unseal, configure, the catalogue into KV and the Secret
    sync), then after keycloakx the realm Job and the bootstrap admin's removal, after harbor its API
    configuration. Keycloak and Harbor need Vault's secrets: without a vault release they are not configured."""

    if not has_vault(site):
        return
    names = {r.name for r in site.releases}
    held = HeldSecrets()
    kc_ns = next((r.namespace for r in site.releases if r.name == "keycloakx"), None)
    opts.after["vault"] = vault_after_release(
        inv, kube, record, lambda line: echo(f"vault {line}"), held=held,
        bootstrap=lambda: not (kc_ns and bootstrap_removed(kube, kc_ns)))
    if "keycloakx" in names:
        index = BundleLayout.at(bundle).read_index()
        config_cli_image(index)  # refused before anything is applied when the bundle lacks the Job's image
        opts.values_for["keycloakx"] = lambda r: without_bootstrap_env(r.values) if bootstrap_removed(kube, r.namespace) else r.values
        opts.after["keycloakx"] = keycloak_after_release(inv, kube, helm, index, held, lambda: site_root_ca_file(inv),
                                                         lambda line: echo(f"keycloak {line}"))
    if "harbor" in names:
        opts.after["harbor"] = harbor_after_release(inv, held, lambda: site_root_ca_file(inv),
                                                    lambda line: echo(line), record)
