"""Vault's configuration after init: audit device, KV v2, one policy per component, Kubernetes auth, secrets.

Every step reads before it writes, so a rerun changes nothing that is already right.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

import hvac
import hvac.exceptions
import yaml

from installer.core.errors import VaultError
from installer.core.resources import state_dir
from installer.deploy.state import cluster_token, kubeconfig_path
from installer.deploy.vault.catalogue import BACKUP, TLS_SERVICES, Catalogue, Component, ensure, for_inventory
from installer.deploy.vault.client import Endpoint, vault_call
from installer.deploy.vault.kv_sink import VaultKvSink
from installer.deploy.vault.settings import VaultSettings

KUBERNETES_AUTH_MOUNT = "kubernetes"
AUDIT_DEVICE = "file"
TOKEN_TTL = "1h"


def policy_name(c: Component) -> str:
    return f"medai-{c.name}"


def policy_hcl(c: Component, kv_mount: str, pki_mount: str) -> str:
    """Read its own KV subtree; issue its own certificate when it has one. Nothing else."""
    rules = [
        f'path "{kv_mount}/data/{c.name}/*" {{\n  capabilities = ["read"]\n}}',
        f'path "{kv_mount}/metadata/{c.name}/*" {{\n  capabilities = ["read", "list"]\n}}',
    ]
    if c.name in TLS_SERVICES:
        rules.append(f'path "{pki_mount}/issue/{c.name}" {{\n  capabilities = ["update"]\n}}')
    if c.name == BACKUP:
        rules.append('path "sys/storage/raft/snapshot" {\n  capabilities = ["read"]\n}')
    return "\n".join(rules) + "\n"


@dataclass
class ConfigureReport:
    changed: list[str] = field(default_factory=list)
    secrets_created: list[str] = field(default_factory=list)
    secrets_kept: list[str] = field(default_factory=list)


def kubernetes_ca_pem(s: VaultSettings) -> str:
    """The API server's CA: medai_vault_kubernetes_ca_cert, else the fetched kubeconfig's CA."""
    if s.kubernetes_ca_cert:
        try:
            return s.kubernetes_ca_cert.read_text()
        except OSError as e:
            raise VaultError(f"{s.kubernetes_ca_cert}: medai_vault_kubernetes_ca_cert: {e.strerror}") from None
    kc = kubeconfig_path(s.cluster)
    try:
        doc = yaml.safe_load(kc.read_text())
        return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    except (OSError, KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
        raise VaultError(f"{kc}: no cluster CA to configure Vault's Kubernetes auth with; "
                         f"install the cluster first or set medai_vault_kubernetes_ca_cert") from None


def site_catalogue(s: VaultSettings) -> Catalogue:
    """The one secrets catalogue for this site (installer/deploy/vault/catalogue.py)."""
    return for_inventory(s.inventory, s.kv_mount)


def configure(s: VaultSettings, ep: Endpoint, client: hvac.Client) -> ConfigureReport:
    rep = ConfigureReport()
    cat = site_catalogue(s)
    with vault_call(ep, "audit device"):
        if f"{AUDIT_DEVICE}/" not in client.sys.list_enabled_audit_devices()["data"]:
            client.sys.enable_audit_device("file", path=AUDIT_DEVICE, options={"file_path": s.audit_file})
            rep.changed.append(f"audit device {AUDIT_DEVICE}/ -> {s.audit_file}")
    with vault_call(ep, "KV v2 mount"):
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if f"{s.kv_mount}/" not in mounts:
            client.sys.enable_secrets_engine("kv", path=s.kv_mount, options={"version": "2"},
                                             description="medai platform secrets")
            rep.changed.append(f"KV v2 at {s.kv_mount}/")
        elif (mounts[f"{s.kv_mount}/"].get("options") or {}).get("version") != "2":
            raise VaultError(f"vault {ep.name}: {s.kv_mount}/ is mounted but is not KV version 2")
    with vault_call(ep, "policies"):
        for c in cat.components:
            want = policy_hcl(c, s.kv_mount, s.pki_mount)
            try:
                have = client.sys.read_policy(policy_name(c))["data"]["rules"]
            except hvac.exceptions.InvalidPath:
                have = None
            if have != want:
                client.sys.create_or_update_policy(policy_name(c), want)
                rep.changed.append(f"policy {policy_name(c)}")
    ca_pem = kubernetes_ca_pem(s)
    with vault_call(ep, "kubernetes auth"):
        if f"{KUBERNETES_AUTH_MOUNT}/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("kubernetes", path=KUBERNETES_AUTH_MOUNT)
            rep.changed.append(f"auth method {KUBERNETES_AUTH_MOUNT}/")
        try:
            cfg = client.auth.kubernetes.read_config(mount_point=KUBERNETES_AUTH_MOUNT) or {}
        except hvac.exceptions.InvalidPath:
            cfg = {}
        if cfg.get("kubernetes_host") != s.kubernetes_host or cfg.get("kubernetes_ca_cert", "").strip() != ca_pem.strip():
            client.auth.kubernetes.configure(kubernetes_host=s.kubernetes_host, kubernetes_ca_cert=ca_pem,
                                             mount_point=KUBERNETES_AUTH_MOUNT)
            rep.changed.append("kubernetes auth config")
        for c in cat.components:
            if c.service_account is None:
                continue
            client.auth.kubernetes.create_role(
                name=c.name, bound_service_account_names=[c.service_account],
                bound_service_account_namespaces=[c.namespace], policies=[policy_name(c)],
                ttl=TOKEN_TTL, mount_point=KUBERNETES_AUTH_MOUNT)

    with vault_call(ep, "secrets catalogue"):
        rep.secrets_created, rep.secrets_kept = ensure(cat, VaultKvSink(client, s.kv_mount, ep),
                                                       k3s_token=lambda: cluster_token(s.cluster, state_dir()))
    return rep
