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

from installer.core.errors import InventoryError

# A chart whose site values live in a role of another name.
CHART_ROLES = {"keycloakx": "keycloak", "cloudnative-pg": "postgres", "medai-inference": "inference"}
# A role whose chart values are not in templates/values.yaml.j2.
CHART_TEMPLATES = {"postgres": "operator-values.yaml.j2"}
# The order releases are applied in: nodes stay NotReady until the CNI runs, MetalLB and Longhorn need pods;
# Vault (Raft on Longhorn volumes) holds the platform secrets; the PostgreSQL operator and its Clusters come
# before Keycloak and Harbor, which keep their data there; the device plugin before the vLLM pods ask for GPUs.
PLATFORM_ORDER = ("cilium", "metallb", "longhorn", "vault", "cloudnative-pg", "keycloakx", "harbor",
                  "nvidia-device-plugin", "medai-inference")
# Left out of a site with no host in group gpu (docs/inference.md: why no CPU fallback).
GPU_CHARTS = ("nvidia-device-plugin", "medai-inference")
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql"
DRAIN_POLICIES = ("block-if-contains-last-replica", "allow-if-replica-is-stopped", "always-allow",
                  "block-for-eviction", "block-for-eviction-if-contains-last-replica")


def _roles_dir():
    from installer.deploy.runner import ROLES

    return ROLES


@functools.cache
def role_defaults(role: str) -> dict[str, Any]:
    path = _roles_dir() / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def storage_nodes(inv) -> list[str]:
    return [n for n, h in inv.hosts.items() if h.vars.get("medai_longhorn_storage", True) is not False]


def _bad(inv, var: str, msg: str) -> InventoryError:
    return InventoryError(f"{inv.path}: all.vars.{var}: {msg}")


def chart_enabled(chart: str, inv) -> bool:
    return chart not in GPU_CHARTS or bool(inv.gpu)


def _index_image(index: dict | None, repository: str) -> str | None:
    """REPOSITORY:TAG@DIGEST of the bundle's one image of that repository (None without an index or the image)."""
    for a in (index or {}).get("artifacts", []):
        ref = str(a.get("ref", "")).split("@")[0]
        if a.get("kind") == "image" and ref.rsplit(":", 1)[0] == repository and a.get("digest"):
            return f"{ref}@{a['digest']}"
    return None


def role_vars(role: str, inv, index: dict | None = None) -> dict[str, Any]:
    """The role's variables for this site: defaults, the inventory's all.vars over them, null ones computed.
    index: the verified bundle index, for what only it knows (image digests, model weight lists)."""
    if role == "vault":  # replicas by node count, the Transit seal: computed beside Vault's own client code
        from installer.deploy.vault.values import role_vars as vault_role_vars

        return vault_role_vars(inv)
    site = inv.site.model_dump()
    out = _resolve({k: site.get(k, v) for k, v in role_defaults(role).items()}, inv)
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
    if role == "inference" and index is not None and inv.gpu:
        from installer.inference.plan import inference_extravars

        out.update(inference_extravars(index, out["medai_inference_models"]))
    if role == "harbor" and not out.get("medai_harbor_hostname"):
        raise _bad(inv, "medai_harbor_hostname", "required for the harbor release: Harbor's DNS name")
    if role == "postgres":
        if not isinstance(out.get("medai_postgres_instances"), int):  # the default is an Ansible expression
            out["medai_postgres_instances"] = min(3, len(inv.hosts))
        if not out.get("medai_postgres_image"):
            found = _index_image(index, POSTGRES_IMAGE)
            if index is not None and found is None:
                raise InventoryError(f"index.json: no {POSTGRES_IMAGE} image: the PostgreSQL Clusters need it "
                                     "(spec.images of the bundle manifest)")
            out["medai_postgres_image"] = found or f"{POSTGRES_IMAGE}:unknown"
    return out


def _groups(inv) -> dict[str, list[str]]:
    return {"all": list(inv.hosts), "servers": list(inv.servers), "agents": list(inv.agents), "gpu": list(inv.gpu)}


def _resolve(values: dict[str, Any], inv) -> dict[str, Any]:
    """Role defaults written as Ansible expressions of other variables or of the inventory's groups (e.g.
    "{{ [groups['servers'] | length, 2] | min }}"), evaluated to native values as Ansible would."""
    from jinja2.nativetypes import NativeEnvironment

    env = NativeEnvironment(undefined=jinja2.StrictUndefined)
    env.filters["bool"] = _ansible_bool
    out = dict(values)
    for _ in range(3):  # a default may name another default that is an expression too
        pending = {k: v for k, v in out.items() if isinstance(v, str) and "{{" in v}
        if not pending:
            break
        for k, v in pending.items():
            try:
                out[k] = env.from_string(v).render(**out, groups=_groups(inv))
            except jinja2.TemplateError:
                pass  # an Ansible-only filter or fact: left as written; site_values refuses "{{" in its result
    return out


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    env.filters["bool"] = _ansible_bool  # the roles' templates are Ansible templates too
    return env


def site_values(chart: str, inv, index: dict | None = None) -> dict[str, Any]:
    """The values the site adds for one chart ({} for a chart without a role template)."""
    role = CHART_ROLES.get(chart, chart)
    template = _roles_dir() / role / "templates" / CHART_TEMPLATES.get(role, "values.yaml.j2")
    if not template.is_file():
        return {}
    rv = role_vars(role, inv, index)
    text = _env().from_string(template.read_text()).render(**rv)
    if "{{" in text:
        raise InventoryError(f"{template}: a variable is left unevaluated for chart {chart}: "
                             f"{next(ln.strip() for ln in text.splitlines() if '{{' in ln)}")
    return merge(yaml.safe_load(text) or {}, rv.get(f"medai_{role}_extra_values") or {})


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


def release_values(chart, inv, index: dict | None = None) -> dict[str, Any]:
    """The bundle's values for the chart with the site's on top: exactly what render writes and apply passes."""
    return merge(chart.values or {}, site_values(chart.name, inv, index))


def postgres_objects(inv, index: dict | None) -> list[dict]:
    """The database namespaces, one CNPG Cluster and ScheduledBackup per database (roles/postgres templates):
    applied once the operator's CRDs exist. The owner credentials Secrets come from Vault (the install's Vault step)."""
    rv = role_vars("postgres", inv, index)
    env, base = _env(), _roles_dir() / "postgres" / "templates"
    out: list[dict] = []
    for ns in dict.fromkeys(d["namespace"] for d in rv["medai_postgres_databases"]):
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": "medai"}}})
    for item in rv["medai_postgres_databases"]:
        for name in ("cluster.yaml.j2", "scheduled-backup.yaml.j2"):
            out.append(yaml.safe_load(env.from_string((base / name).read_text()).render(**rv, item=item)))
    return out


def site_objects(chart: str, inv, namespace: str, index: dict | None = None) -> list[dict]:
    """Objects medai applies after a release is ready: the namespace's NetworkPolicies (installer.render.policies),
    for MetalLB the pool and L2 advertisement, for CloudNativePG the Clusters (they need the CRDs)."""
    from installer.render.policies import namespace_policies

    policies = namespace_policies(chart, inv, namespace)
    if chart == "cloudnative-pg":
        return postgres_objects(inv, index) + policies
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
