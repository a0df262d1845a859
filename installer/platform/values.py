"""The site's values and objects for each platform release: a component's DEFAULTS (installer/platform/components),
the inventory's all.vars over them, the computed ones filled in, turned into chart values merged over the bundle
manifest's, and into the objects medai applies after the release.

Computed when left null:
  medai_cilium_operator_replicas  min(2, number of servers)
  medai_cilium_image_digests      the platform manifest the bundle carries for each of Cilium's images
  medai_vault_replicas            3 with >= 3 nodes (GPU agents aside), else 1 (an odd number no larger than that)
  medai_longhorn_replicas         min(3, storage nodes); storage nodes are all hosts but those with the host var
                                  medai_longhorn_storage: false; more than that is refused
  medai_postgres_instances        min(3, number of hosts)
  medai_keycloak_replicas         min(2, number of servers)
  medai_harbor_trivy_*_repository the site Harbor's platform project
The exact values returned here are what `medai render` writes and what the one applier passes: one function.
"""
from __future__ import annotations

import copy
from typing import Any

from installer.bundle.artifacts import BundleIndex
from installer.core.errors import InventoryError
from installer.inference.plan import inference_extravars
from installer.platform.components import BY_CHART, BY_NAME, backup_schedules, cilium, harbor, keycloak, longhorn, metallb, postgres

# Left out of a site with no host in group gpu (docs/inference.md: why no CPU fallback).
GPU_CHARTS = ("nvidia-device-plugin", "medai-inference")


def storage_nodes(inv) -> list[str]:
    return [n for n, h in inv.hosts.items() if h.vars.get("medai_longhorn_storage", True) is not False]


def _bad(inv, var: str, msg: str) -> InventoryError:
    return InventoryError(f"{inv.path}: all.vars.{var}: {msg}")


def chart_enabled(chart: str, inv) -> bool:
    return chart not in GPU_CHARTS or bool(inv.gpu)


def index_image(index: dict | None, repository: str) -> str | None:
    """REPOSITORY:TAG@DIGEST of the bundle's one image of that repository (None without an index or the image)."""
    return BundleIndex.of(index).pinned_image(repository)


def defaults(component: str) -> dict[str, Any]:
    """A component's variables as they are without a site (a copy)."""
    return copy.deepcopy(BY_NAME[component].DEFAULTS)


def _positive(inv, out: dict, var: str) -> None:
    if not isinstance(out[var], int) or isinstance(out[var], bool) or out[var] < 1:
        raise _bad(inv, var, f"{out[var]!r} must be a positive integer")


def role_vars(component: str, inv, index: dict | None = None) -> dict[str, Any]:
    """The component's variables for this site: defaults, the inventory's all.vars over them, null ones computed.
    index: the verified bundle index, for what only it knows (image digests, model weight lists)."""
    site = inv.site.model_dump()
    out = {k: copy.deepcopy(site.get(k, v)) for k, v in defaults(component).items()}
    extra = f"medai_{component}_extra_values"
    if site.get(extra):
        out[extra] = site[extra]
    if component == "cilium":
        if out["medai_cilium_operator_replicas"] is None:
            out["medai_cilium_operator_replicas"] = min(2, len(inv.servers))
        for var in ("medai_cilium_operator_replicas", "medai_cilium_k8s_service_port"):
            _positive(inv, out, var)
        if not isinstance(out["medai_cilium_kube_proxy_replacement"], bool):
            raise _bad(inv, "medai_cilium_kube_proxy_replacement", "must be true or false")
        if index is not None:
            out["medai_cilium_image_digests"] = cilium.image_digests(BundleIndex.of(index))
        unknown = sorted(set(out["medai_cilium_image_digests"]) - set(cilium.IMAGES))
        if unknown:
            raise _bad(inv, f"medai_cilium_image_digests.{unknown[0]}", f"not one of the chart's images ({', '.join(cilium.IMAGES)})")
    elif component == "longhorn":
        _longhorn(inv, out)
    elif component == "vault":
        _vault(inv, out)
    elif component == "inference" and index is not None and inv.gpu:
        out.update(inference_extravars(index, out["medai_inference_models"]))
    elif component == "harbor":
        harbor.computed(out)
    elif component == "keycloak":
        if out["medai_keycloak_replicas"] is None:
            out["medai_keycloak_replicas"] = min(2, len(inv.servers))
        _positive(inv, out, "medai_keycloak_replicas")
    elif component == "postgres":
        if out["medai_postgres_instances"] is None:
            out["medai_postgres_instances"] = min(3, len(inv.hosts))
        _positive(inv, out, "medai_postgres_instances")
        if out["medai_postgres_image"] and "@sha256:" not in out["medai_postgres_image"]:
            raise _bad(inv, "medai_postgres_image", f"{out['medai_postgres_image']!r} must be pinned by digest "
                       "(REPOSITORY:TAG@sha256:...): K3s's mirror serves only what the bundle pins")
        if not out["medai_postgres_image"]:
            found = index_image(index, postgres.IMAGE)
            if index is not None and found is None:
                raise InventoryError(f"index.json: no {postgres.IMAGE} image: the PostgreSQL Clusters need it "
                                     "(spec.images of the bundle manifest)")
            out["medai_postgres_image"] = found or f"{postgres.IMAGE}:unknown"
    return out


def _longhorn(inv, out: dict) -> None:
    nodes = len(storage_nodes(inv))
    n = out["medai_longhorn_replicas"]
    if n is None:
        n = max(1, min(3, nodes))
    elif not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise _bad(inv, "medai_longhorn_replicas", f"{n!r} must be a positive integer")
    elif n > nodes:
        raise _bad(inv, "medai_longhorn_replicas", f"{n} replicas but only {nodes} storage node(s)")
    out["medai_longhorn_replicas"] = n
    if out["medai_longhorn_node_drain_policy"] not in longhorn.DRAIN_POLICIES:
        raise _bad(inv, "medai_longhorn_node_drain_policy",
                   f"{out['medai_longhorn_node_drain_policy']!r} is not one of {', '.join(longhorn.DRAIN_POLICIES)}")


def _vault(inv, out: dict) -> None:
    # Vault's pods keep apart by a required anti-affinity and do not tolerate the GPU agents' taint
    nodes = len(inv.servers) + len([a for a in inv.agents if a not in inv.gpu])
    n = out["medai_vault_replicas"]
    if n is None:
        n = 3 if nodes >= 3 else 1
    elif not isinstance(n, int) or isinstance(n, bool) or n < 1 or n % 2 == 0:
        raise _bad(inv, "medai_vault_replicas", f"{n!r} must be 1 or an odd number (Raft quorum)")
    elif n > nodes:
        raise _bad(inv, "medai_vault_replicas", f"{n} replicas but only {nodes} node(s) without the GPU taint")
    out["medai_vault_replicas"] = n
    transit = out["medai_vault_transit"]
    if transit is not None:
        if not isinstance(transit, dict):
            raise _bad(inv, "medai_vault_transit", "must be a mapping (address, key_name, token_secret)")
        for key in ("address", "key_name", "token_secret"):
            if not transit.get(key):
                raise _bad(inv, f"medai_vault_transit.{key}", "required for Transit auto-unseal")


def site_values(chart: str, inv, index: dict | None = None) -> dict[str, Any]:
    """The values the site adds for one chart ({} for a chart medai adds nothing to)."""
    module = BY_CHART.get(chart)
    if module is None:
        return {}
    if chart == "harbor" and not inv.site.model_dump().get("medai_harbor_hostname"):
        raise _bad(inv, "medai_harbor_hostname", "required for the harbor release: Harbor's DNS name")
    rv = role_vars(module.NAME, inv, index)
    return merge(module.values(rv), rv.get(f"medai_{module.NAME}_extra_values") or {})


def merge(base: dict, over: dict) -> dict:
    """Deep merge as Helm merges values files: mappings merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def release_values(chart, inv, index: dict | None = None) -> dict[str, Any]:
    """The bundle's values for the chart with the site's on top: exactly what render writes and apply passes."""
    return merge(chart.values or {}, site_values(chart.name, inv, index))


def namespaces(inv) -> dict[str, str]:
    """Component -> the namespace it runs in on this site (its medai_<name>_namespace where it has one)."""
    out = {}
    for module in BY_CHART.values():
        out[module.NAME] = role_vars(module.NAME, inv).get(f"medai_{module.NAME}_namespace") or module.NAMESPACE
    return out


def site_objects(chart: str, release: str, inv, namespace: str, index: dict | None = None) -> list[dict]:
    """The component's objects (below) and, with medai_backup_nfs, its in-site backup schedules (backup_schedules)."""
    pg = role_vars("postgres", inv, index) if chart == "cloudnative-pg" else None
    extra = backup_schedules.site_objects(chart, inv.site.model_dump(), namespace, pg, index_image(index, "hashicorp/vault") or "")
    return [o for o in _component_objects(chart, release, inv, namespace, index) if not (extra and backup_schedules.replaced(o))] + extra


def _component_objects(chart: str, release: str, inv, namespace: str, index: dict | None = None) -> list[dict]:
    """Objects a component adds after its release is ready: for MetalLB the pool and L2 advertisement, for
    CloudNativePG the Clusters (they need the CRDs), for Keycloak its HTTPS LoadBalancer Service, for Longhorn the
    LimitRange giving its containers requests. The Namespaces
    and NetworkPolicies every release gets come from installer.platform.render (they need the whole render)."""
    if chart == "cloudnative-pg":
        return postgres.objects(role_vars("postgres", inv, index))
    if chart == "metallb":
        return metallb.objects(role_vars("metallb", inv), inv.site.medai_metallb_pool, namespace)
    if chart == keycloak.CHART:
        return keycloak.objects(role_vars("keycloak", inv), release, namespace)
    if chart == "longhorn":
        return longhorn.objects(role_vars("longhorn", inv), namespace)
    return []


def release_timeouts(inv) -> dict[str, int]:
    """medai_<component>_release_timeout for each chart (defaults, the inventory over them)."""
    out = {}
    for chart, module in BY_CHART.items():
        v = role_vars(module.NAME, inv).get(f"medai_{module.NAME}_release_timeout")
        if v is not None:
            out[chart] = int(v)
    return out
