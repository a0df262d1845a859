"""The site's values for HashiCorp's vault chart: roles/vault defaults, the inventory's all.vars over them,
the computed ones filled in, rendered through roles/vault/templates/values.yaml.j2.

Computed: medai_vault_replicas = 3 when the cluster has >= 3 nodes, else 1. Also here: the names Vault's
certificate must carry (pods, services, the port-forward's 127.0.0.1) and the TLS Secret the chart mounts.
"""
from __future__ import annotations

import base64
from typing import Any

import jinja2
import yaml

from installer.core.errors import InventoryError
from installer.core.resources import ANSIBLE_DIR

ROLE = "vault"


def _role_dir():
    return ANSIBLE_DIR / "roles" / ROLE


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((_role_dir() / "defaults" / "main.yml").read_text()) or {}


def role_vars(inv) -> dict[str, Any]:
    site = inv.site.model_dump()
    out = {k: site.get(k, v) for k, v in role_defaults().items()}
    nodes = len(inv.servers) + len(inv.agents)
    n = out.get("medai_vault_replicas")
    if n is None:
        n = 3 if nodes >= 3 else 1
    elif not isinstance(n, int) or isinstance(n, bool) or n < 1 or n % 2 == 0:
        raise InventoryError(f"{inv.path}: all.vars.medai_vault_replicas: {n!r} must be 1 or an odd number (Raft quorum)")
    elif n > nodes:
        raise InventoryError(f"{inv.path}: all.vars.medai_vault_replicas: {n} replicas but only {nodes} node(s)")
    out["medai_vault_replicas"] = n
    transit = out.get("medai_vault_transit")
    if transit is not None:
        if not isinstance(transit, dict):
            raise InventoryError(f"{inv.path}: all.vars.medai_vault_transit: must be a mapping (address, key_name, token_secret)")
        for key in ("address", "key_name", "token_secret"):
            if not transit.get(key):
                raise InventoryError(f"{inv.path}: all.vars.medai_vault_transit.{key}: required for Transit auto-unseal")
    return out


def site_values(inv) -> dict[str, Any]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_role_dir() / "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    text = env.get_template("values.yaml.j2").render(**role_vars(inv))
    return yaml.safe_load(text)


def server_names(inv) -> list[str]:
    """Names in Vault's server certificate: the first one is its common name."""
    v = role_vars(inv)
    ns = v["medai_vault_namespace"]
    names = ["vault", f"vault.{ns}", f"vault.{ns}.svc", f"vault.{ns}.svc.cluster.local",
             f"vault-active.{ns}.svc", "*.vault-internal", f"*.vault-internal.{ns}.svc",
             f"*.vault-internal.{ns}.svc.cluster.local"]
    names += [f"vault-{i}.vault-internal" for i in range(v["medai_vault_replicas"])]
    names += list(v.get("medai_vault_extra_sans") or [])
    names.append("127.0.0.1")  # `medai vault` reaches each pod through kubectl port-forward on loopback
    return names


def tls_secret(inv, cert_chain_pem: bytes, key_pem: bytes, root_pem: bytes) -> dict:
    """The Secret the chart mounts; applied with the kubernetes client, never written to disk."""
    v = role_vars(inv)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": v["medai_vault_tls_secret"], "namespace": v["medai_vault_namespace"],
                         "labels": {"app.kubernetes.io/managed-by": "medai"}},
            "data": {"tls.crt": b64(cert_chain_pem), "tls.key": b64(key_pem), "ca.crt": b64(root_pem)}}
