"""What exists on the cluster besides the render: what K3s makes, what operators make from rendered objects, and
what the install itself creates outside the render (passed in by the deploy layer, which owns the Vault catalogue:
installer.deploy.platform_step.made_outside_render). References and TLS checks look objects up here too."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from installer.core.resources import ANSIBLE_DIR
from installer.platform.coherence.model import containers, rows

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
K3S_DEFAULTS = Path("roles/k3s/defaults/main.yml")
# K3s's packaged manifests (server/manifests): RuntimeClasses for the runtimes it detects (runtimes.yaml), the
# built-in PriorityClasses, CoreDNS, metrics-server and, unless `disable: [local-storage]`, local-path.
K3S_RUNTIME_CLASSES = ("nvidia", "nvidia-experimental", "crun")
K3S_PRIORITY_CLASSES = ("system-node-critical", "system-cluster-critical")
K3S_SERVICES = {("default", "kubernetes"): {443}, ("kube-system", "kube-dns"): {53, 9153},
                ("kube-system", "metrics-server"): {443}}
LOCAL_PATH = "local-path"


@dataclass(frozen=True)
class Certificate:
    """A certificate the install issues: its Secret, and the names it carries (wildcards allowed)."""
    component: str
    namespace: str
    secret: str
    names: tuple[str, ...]
    site_names: tuple[str, ...] = ()  # the names the site's clients use (host names from the inventory)


@dataclass
class Outside:
    """Objects that exist without being rendered: {(kind, namespace or None, name)}, Services with their ports, the
    StorageClasses marked default, and the certificates the install issues."""
    objects: set[tuple[str, str | None, str]] = field(default_factory=set)
    services: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    default_classes: list[str] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    applied: list[tuple[str, dict]] = field(default_factory=list)  # (release, object) the release's hook applies
    pods: list[tuple[str, str, str, str, dict, list]] = field(default_factory=list)  # operators' pods: (release,
    # namespace, kind, object, labels, containers)
    unrendered: list[tuple[str, str, str, str]] = field(default_factory=list)  # (release, kind, object, why) of a
    # hook's object that could not be made
    why: dict[tuple[str, str | None, str], str] = field(default_factory=dict)

    def add(self, kind: str, namespace: str | None, name: str, why: str) -> None:
        self.objects.add((kind, namespace, name))
        self.why.setdefault((kind, namespace, name), why)

    def merge(self, other: Outside) -> Outside:
        self.objects |= other.objects
        for k, ports in other.services.items():
            self.services.setdefault(k, set()).update(ports)
        self.default_classes += other.default_classes
        self.certificates += other.certificates
        self.applied += other.applied
        self.unrendered += other.unrendered
        self.pods += other.pods
        for k, v in other.why.items():
            self.why.setdefault(k, v)
        return self


def k3s_disabled(inv) -> list[str]:
    """roles/k3s's `disable:` list for this site (the role's default, the inventory's all.vars over it)."""
    site = inv.site.model_dump()
    if "medai_k3s_disable" in site:
        return list(site["medai_k3s_disable"] or [])
    return list((yaml.safe_load((ANSIBLE_DIR / K3S_DEFAULTS).read_text()) or {}).get("medai_k3s_disable") or [])


def k3s_made(inv, namespaces: Iterable[str]) -> Outside:
    out = Outside()
    for ns in set(namespaces) | {"default", "kube-system"}:
        out.add("ServiceAccount", ns, "default", "every namespace's default ServiceAccount")
        out.add("ConfigMap", ns, "kube-root-ca.crt", "every namespace's cluster CA ConfigMap")
    for name in K3S_PRIORITY_CLASSES:
        out.add("PriorityClass", None, name, "Kubernetes built-in")
    for name in K3S_RUNTIME_CLASSES:
        out.add("RuntimeClass", None, name, "K3s runtimes.yaml")
    out.services.update({k: set(v) for k, v in K3S_SERVICES.items()})
    if "local-storage" not in k3s_disabled(inv):
        out.add("StorageClass", None, LOCAL_PATH, "K3s local-storage (roles/k3s does not disable it)")
        out.default_classes.append(f"{LOCAL_PATH} (K3s local-storage, marked default by K3s)")
    return out


def _embedded(obj: dict) -> Iterable[dict]:
    """Objects a chart ships as data for its operator to create (Longhorn's StorageClass in a ConfigMap)."""
    for text in (obj.get("data") or {}).values():
        if "kind:" not in str(text):
            continue
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "StorageClass":
            yield doc


# A CloudNativePG instance pod's ports (the operator's pod spec) and the roles it labels them with.
CNPG_PORTS = [{"name": "postgresql", "containerPort": 5432}, {"name": "metrics", "containerPort": 9187},
              {"name": "status", "containerPort": 8000}]
CNPG_ROLES = ("primary", "replica")

# Secrets a rendered workload makes at run time: (container env variable naming it, who).
SECRET_ENV = (("METALLB_ML_SECRET_NAME", "MetalLB's controller (memberlist key)"),)
# Cilium's certgen (hubble.tls.auto.method cronJob) writes these into its namespace.
CERTGEN_JOB = "hubble-generate-certs"
CERTGEN_SECRETS = ("hubble-server-certs", "hubble-relay-client-certs", "hubble-relay-server-certs")


def _made_by_workload(row, out: Outside) -> None:
    if row.kind in ("Job", "CronJob") and row.name == CERTGEN_JOB:
        for name in CERTGEN_SECRETS:
            out.add("Secret", row.namespace, name, f"Cilium's certgen ({row.kind} {row.ref})")
    for _, c in containers(row.template.spec):
        for e in c.get("env") or []:
            for var, who in SECRET_ENV:
                if e.get("name") == var and e.get("value"):
                    out.add("Secret", row.namespace, e["value"], f"{who}, {row.kind} {row.ref}")


def operator_made(site) -> Outside:
    """What operators create from rendered objects: CloudNativePG's Services and Secrets per Cluster, the
    StorageClass a ConfigMap carries for its manager, the Secrets workloads write (Cilium's certgen, MetalLB's
    memberlist key)."""
    out = Outside()
    for row in rows(site):
        if row.template is not None:
            _made_by_workload(row, out)
        if row.kind == "Cluster" and str(row.obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
            for suffix in ("rw", "ro", "r"):
                out.services.setdefault((row.namespace, f"{row.name}-{suffix}"), set()).add(5432)
            for suffix in ("ca", "server", "replication", "app"):
                out.add("Secret", row.namespace, f"{row.name}-{suffix}", f"CloudNativePG (Cluster {row.ref})")
            for role in CNPG_ROLES:
                labels = {"cnpg.io/cluster": row.name, "cnpg.io/podRole": "instance", "cnpg.io/instanceRole": role,
                          "role": role}
                out.pods.append((row.release, row.namespace, "Cluster", f"{row.ref} ({role})", labels,
                                 [{"name": "postgres", "ports": CNPG_PORTS}]))
        if row.kind == "ConfigMap":
            for sc in _embedded(row.obj):
                name = (sc.get("metadata") or {}).get("name", "?")
                out.add("StorageClass", None, name, f"ConfigMap {row.ref}")
                if ((sc.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS) == "true":
                    out.default_classes.append(f"{name} (ConfigMap {row.ref}, release {row.release})")
    return out
