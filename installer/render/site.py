"""The site's values for each platform release: the role's defaults (roles/<component>/defaults/main.yml), the
inventory's all.vars over them, computed where a default is null, rendered through the role's
templates/values.yaml.j2, and merged over the bundle manifest's values for the chart.

Each variable is documented in its role's defaults and meta/argument_specs.yml. The computed ones:
  medai_cilium_k8s_service_host   medai_api_vip, else the first server's address
  medai_cilium_operator_replicas  min(2, number of servers)
  medai_longhorn_replicas         min(3, storage nodes); storage nodes are all hosts but those with the host var
                                  medai_longhorn_storage: false; more than that is refused
The exact values returned here are what `medai render` writes and what the Helm apply passes: one function.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

import jinja2
import yaml

from installer.errors import InventoryError

# A chart whose site values live in a role of another name.
CHART_ROLES = {"keycloakx": "keycloak"}
# The order releases are applied in: nodes stay NotReady until the CNI runs, MetalLB and Longhorn need pods.
PLATFORM_ORDER = ("cilium", "metallb", "longhorn")
DRAIN_POLICIES = ("block-if-contains-last-replica", "allow-if-replica-is-stopped", "always-allow",
                  "block-for-eviction", "block-for-eviction-if-contains-last-replica")


def _roles_dir():
    from installer.deploy.runner import ROLES

    return ROLES


@functools.lru_cache(maxsize=None)
def role_defaults(role: str) -> dict[str, Any]:
    path = _roles_dir() / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def storage_nodes(inv) -> list[str]:
    return [n for n, h in inv.hosts.items() if h.vars.get("medai_longhorn_storage", True) is not False]


def _bad(inv, var: str, msg: str) -> InventoryError:
    return InventoryError(f"{inv.path}: all.vars.{var}: {msg}")


def role_vars(role: str, inv) -> dict[str, Any]:
    """The role's variables for this site: defaults, the inventory's all.vars over them, null ones computed."""
    if role == "vault":  # replicas by node count, the Transit seal: computed beside Vault's own client code
        from installer.deploy.vault.values import role_vars as vault_role_vars

        return vault_role_vars(inv)
    site = inv.site.model_dump()
    out = {k: site.get(k, v) for k, v in role_defaults(role).items()}
    if role == "cilium":
        if out.get("medai_cilium_k8s_service_host") is None:
            out["medai_cilium_k8s_service_host"] = inv.api_address
        if out.get("medai_cilium_operator_replicas") is None:
            out["medai_cilium_operator_replicas"] = min(2, len(inv.servers))
        for var in ("medai_cilium_operator_replicas", "medai_cilium_k8s_service_port"):
            if not isinstance(out[var], int) or isinstance(out[var], bool) or out[var] < 1:
                raise _bad(inv, var, f"{out[var]!r} must be a positive integer")
        if not isinstance(out["medai_cilium_kube_proxy_replacement"], bool):
            raise _bad(inv, "medai_cilium_kube_proxy_replacement", "must be true or false")
    if role == "longhorn":
        nodes = len(storage_nodes(inv))
        n = out.get("medai_longhorn_replicas")
        if n is None:
            n = max(1, min(3, nodes))
        elif not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _bad(inv, "medai_longhorn_replicas", f"{n!r} must be a positive integer")
        elif n > nodes:
            raise _bad(inv, "medai_longhorn_replicas", f"{n} replicas but only {nodes} storage node(s)")
        out["medai_longhorn_replicas"] = n
        if out["medai_longhorn_node_drain_policy"] not in DRAIN_POLICIES:
            raise _bad(inv, "medai_longhorn_node_drain_policy",
                       f"{out['medai_longhorn_node_drain_policy']!r} is not one of {', '.join(DRAIN_POLICIES)}")
    return out


def site_values(chart: str, inv) -> dict[str, Any]:
    """The values the site adds for one chart ({} for a chart without a role template)."""
    role = CHART_ROLES.get(chart, chart)
    template = _roles_dir() / role / "templates" / "values.yaml.j2"
    if not template.is_file():
        return {}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    env.filters["bool"] = _ansible_bool  # the roles' templates are Ansible templates too
    text = env.from_string(template.read_text()).render(**role_vars(role, inv))
    return yaml.safe_load(text) or {}


def _ansible_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


def merge(base: dict, over: dict) -> dict:
    """Deep merge as Helm merges values files: mappings merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def release_values(chart, inv) -> dict[str, Any]:
    """The bundle's values for the chart with the site's on top: exactly what render writes and apply passes."""
    return merge(chart.values or {}, site_values(chart.name, inv))


def site_objects(chart: str, inv, namespace: str) -> list[dict]:
    """Objects medai applies after a release is ready: the namespace's NetworkPolicies (installer.render.policies)
    and, for MetalLB, the pool and L2 advertisement (they need its CRDs)."""
    from installer.render.policies import namespace_policies

    policies = namespace_policies(chart, inv, namespace)
    if chart != "metallb":
        return policies
    name = role_vars("metallb", inv)["medai_metallb_pool_name"]
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "medai"}}
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": name, **meta}, "spec": {"addresses": [_pool_range(inv.site.medai_metallb_pool)]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
         "metadata": {"name": name, **meta}, "spec": {"ipAddressPools": [name]}},
    ] + policies


def _pool_range(text: str) -> str:
    """MetalLB accepts CIDRs and FIRST-LAST ranges; written without spaces."""
    return "-".join(p.strip() for p in text.split("-")) if "-" in text else text.strip()
