"""References resolve: every in-cluster host name and port a rendered object uses is a Service with that port;
every Secret, ConfigMap, ServiceAccount, PVC, StorageClass, PriorityClass and RuntimeClass referenced exists in
the render or outside it (installer.platform.coherence.outside); never two default StorageClasses, and exactly one
when a claim names none.

Where names are read: containers' env values, args and command, ConfigMap data, the fields of custom resources,
webhooks' clientConfig.service. A name counts as in-cluster when it is written SERVICE.NAMESPACE.svc[.cluster.local]
(or POD.SERVICE.NAMESPACE.svc...), SERVICE.NAMESPACE with a namespace the cluster has, POD.SERVICE with a Service of
the object's namespace, or a single label after a URL scheme (http://harbor-core) or as HOST:PORT naming a Service
of the object's namespace; the value of an env variable or ConfigMap key named *_HOST too (its port from *_PORT).
Names the site declares (the inventory's *_hostname values, medai_tls_san) are outside the cluster."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from installer.platform.coherence.model import Finding, Row, containers, rows, walk
from installer.platform.coherence.outside import DEFAULT_CLASS, Outside

CHECK = "references"
SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "redis": 6379, "rediss": 6379, "postgres": 5432,
                "postgresql": 5432, "grpc": None, "tcp": None}
EMPTY_URL = re.compile(r"\b(https?)://(?=$|[/\s\"'])")
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(?:[^/\s@\"']+@)?([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(\d{1,5}))?")
HOST_PORT = re.compile(r"(?<![\w./:@-])([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?):(\d{1,5})(?![\w.])")
CORE_GROUPS = ("v1", "apps/", "batch/", "rbac.authorization.k8s.io/", "policy/", "networking.k8s.io/",
               "storage.k8s.io/", "scheduling.k8s.io/", "node.k8s.io/", "admissionregistration.k8s.io/",
               "apiextensions.k8s.io/", "coordination.k8s.io/", "autoscaling/", "discovery.k8s.io/")


class Cluster:
    """The render plus what exists outside it, indexed for look-ups."""

    def __init__(self, site, outside: Outside):
        self.outside = outside
        self.objects: set[tuple[str, str | None, str]] = set(outside.objects)
        self.services: dict[tuple[str, str], set[int]] = {k: set(v) for k, v in outside.services.items()}
        self.headless: set[tuple[str, str]] = set()
        self.namespaces = {r.namespace for r in site.releases} | {"default", "kube-system"}
        for row in rows(site):
            self.objects.add((row.kind, row.namespace, row.name))
            if row.kind == "Namespace":
                self.namespaces.add(row.name)
            if row.kind == "Service":
                spec = row.obj.get("spec") or {}
                self.services.setdefault((row.namespace, row.name), set()).update(
                    int(p["port"]) for p in spec.get("ports") or [] if "port" in p)
                if spec.get("clusterIP") == "None":
                    self.headless.add((row.namespace, row.name))
        self.namespaces |= {ns for _, ns in self.services}

    def has(self, kind: str, namespace: str | None, name: str) -> bool:
        return (kind, namespace, name) in self.objects

    def service_of(self, host: str, namespace: str) -> tuple[str, str] | None:
        """(namespace, Service) an in-cluster host name stands for; None for a name outside the cluster."""
        labels = host.lower().rstrip(".").split(".")
        for suffix in (["svc", "cluster", "local"], ["svc"]):
            if labels[-len(suffix):] == suffix and len(labels) > len(suffix) + 1:
                base = labels[:-len(suffix)]
                return base[-1], base[-2]
        if len(labels) == 2:
            if (namespace, labels[1]) in self.services:  # POD.SERVICE (a StatefulSet pod behind its Service)
                return namespace, labels[1]
            if labels[1] in self.namespaces:
                return labels[1], labels[0]
        return None


def _ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def site_names(inv) -> set[str]:
    site = inv.site.model_dump()
    names = {str(v).lower() for k, v in site.items() if k.endswith("_hostname") and v}
    return names | {str(n).lower() for n in site.get("medai_tls_san") or []}


def host_uses(text: str, cluster: Cluster, namespace: str) -> Iterator[tuple[str, int | None, bool]]:
    """(host, port or None, strict) for every in-cluster-looking host a string names; strict: a single label that
    must be a Service (written after a URL scheme)."""
    for m in URL.finditer(text):
        scheme, host, port = m.group(1), m.group(2), m.group(3)
        if _ip(host) or host == "localhost" or scheme in ("unix", "file"):
            continue
        yield host, int(port) if port else SCHEME_PORTS.get(scheme), "." not in host
    for m in HOST_PORT.finditer(URL.sub(" ", text)):
        host, port = m.group(1), int(m.group(2))
        if _ip(host) or host == "localhost":
            continue
        if "." in host or (namespace, host) in cluster.services:
            yield host, port, False


def strings_in(row: Row) -> Iterator[tuple[str, str, dict | None]]:
    """(field path, text, sibling mapping for *_HOST/*_PORT pairs) of the fields references are read from."""
    tpl = row.template
    if tpl is not None:
        for where, c in containers(tpl.spec):
            base = f"{tpl.path}spec.{where}"
            env = {e.get("name"): e.get("value") for e in c.get("env") or [] if isinstance(e.get("value"), str)}
            for i, e in enumerate(c.get("env") or []):
                if isinstance(e.get("value"), str):
                    yield f"{base}.env[{i}].value ({e.get('name')})", e["value"], {"key": e.get("name"), "all": env}
            for key in ("command", "args"):
                for i, a in enumerate(c.get(key) or []):
                    yield f"{base}.{key}[{i}]", str(a), None
    elif row.kind == "ConfigMap":
        data = row.obj.get("data") or {}
        for k, v in data.items():
            yield f"data.{k}", str(v), {"key": k, "all": data}
    elif not str(row.obj.get("apiVersion", "")).startswith(CORE_GROUPS):
        for path, text in walk({k: v for k, v in row.obj.items() if k not in ("metadata", "apiVersion", "kind")}):
            yield path, text, None


def _paired_host(text: str, sib: dict | None) -> tuple[str, int | None] | None:
    key = str((sib or {}).get("key") or "")
    if not key.endswith("_HOST") or not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", text) or _ip(text):
        return None
    port = str((sib["all"] or {}).get(key[:-len("_HOST")] + "_PORT") or "")
    return text, int(port) if port.isdigit() else None


NGINX_UPSTREAM = re.compile(r"\bupstream\s+([A-Za-z0-9_.-]+)\s*\{")


def _hosts(row: Row, cluster: Cluster, external: set[str]) -> Iterator[Finding]:
    ns = row.namespace or "default"
    for path, text, sib in strings_in(row):
        if EMPTY_URL.search(text):
            yield row.finding(CHECK, path, f"{text!r} names no host")
        local = set(NGINX_UPSTREAM.findall(text))  # nginx upstream blocks: names the same file defines
        uses = [u for u in host_uses(text, cluster, ns) if u[0] not in local]
        paired = _paired_host(text, sib)
        if paired:
            uses.append((paired[0], paired[1], True))
        for host, port, strict in uses:
            if host.lower() in external:
                continue
            target = cluster.service_of(host, ns) or ((ns, host.lower()) if strict else None)
            if target is None:
                continue
            ports = cluster.services.get(target)
            if ports is None:
                yield row.finding(CHECK, path, f"{host}: no Service {target[1]} in namespace {target[0]}")
            elif port is not None and port not in ports:
                yield row.finding(CHECK, path, f"{host}:{port}: Service {target[0]}/{target[1]} has no port {port} "
                                  f"(it has {', '.join(map(str, sorted(ports))) or 'none'})")


def _pod_refs(row: Row) -> Iterator[tuple[str, str, str]]:
    """(kind, name, field path) of every object a pod template references (optional ones left out)."""
    tpl = row.template
    spec, base = tpl.spec, f"{tpl.path}spec"
    yield "ServiceAccount", spec.get("serviceAccountName") or spec.get("serviceAccount") or "default", \
        f"{base}.serviceAccountName"
    for key, kind in (("priorityClassName", "PriorityClass"), ("runtimeClassName", "RuntimeClass")):
        if spec.get(key):
            yield kind, spec[key], f"{base}.{key}"
    for i, s in enumerate(spec.get("imagePullSecrets") or []):
        yield "Secret", s.get("name"), f"{base}.imagePullSecrets[{i}]"
    claims = {t.get("metadata", {}).get("name") for t in (row.obj.get("spec") or {}).get("volumeClaimTemplates") or []}
    for i, v in enumerate(spec.get("volumes") or []):
        at = f"{base}.volumes[{i}]"
        if (v.get("secret") or {}).get("secretName") and not v["secret"].get("optional"):
            yield "Secret", v["secret"]["secretName"], f"{at}.secret.secretName"
        if (v.get("configMap") or {}).get("name") and not v["configMap"].get("optional"):
            yield "ConfigMap", v["configMap"]["name"], f"{at}.configMap.name"
        pvc = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if pvc and pvc not in claims:
            yield "PersistentVolumeClaim", pvc, f"{at}.persistentVolumeClaim.claimName"
        for j, src in enumerate((v.get("projected") or {}).get("sources") or []):
            for key, kind in (("secret", "Secret"), ("configMap", "ConfigMap")):
                if (src.get(key) or {}).get("name") and not src[key].get("optional"):
                    yield kind, src[key]["name"], f"{at}.projected.sources[{j}].{key}.name"
    for where, c in containers(spec):
        for i, e in enumerate(c.get("env") or []):
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                ref = (e.get("valueFrom") or {}).get(key)
                if ref and ref.get("name") and not ref.get("optional"):
                    yield kind, ref["name"], f"{base}.{where}.env[{i}].valueFrom.{key}.name ({e.get('name')})"
        for i, e in enumerate(c.get("envFrom") or []):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                ref = e.get(key)
                if ref and ref.get("name") and not ref.get("optional"):
                    yield kind, ref["name"], f"{base}.{where}.envFrom[{i}].{key}.name"


def _storage_refs(row: Row) -> Iterator[tuple[str, str, str]]:
    spec = row.obj.get("spec") or {}
    if row.kind == "PersistentVolumeClaim" and spec.get("storageClassName"):
        yield "StorageClass", spec["storageClassName"], "spec.storageClassName"
    for i, t in enumerate(spec.get("volumeClaimTemplates") or [] if row.kind == "StatefulSet" else []):
        if (t.get("spec") or {}).get("storageClassName"):
            yield "StorageClass", t["spec"]["storageClassName"], f"spec.volumeClaimTemplates[{i}].spec.storageClassName"
    if row.kind == "Cluster" and str(row.obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
        for key in ("storage", "walStorage"):
            if (spec.get(key) or {}).get("storageClass"):
                yield "StorageClass", spec[key]["storageClass"], f"spec.{key}.storageClass"
        secret = (((spec.get("bootstrap") or {}).get("initdb") or {}).get("secret") or {}).get("name")
        if secret:
            yield "Secret", secret, "spec.bootstrap.initdb.secret.name"


def _webhook_services(row: Row, cluster: Cluster) -> Iterator[Finding]:
    hooks = [(f"webhooks[{i}].clientConfig.service", (w.get("clientConfig") or {}).get("service"))
             for i, w in enumerate(row.obj.get("webhooks") or [])]
    conv = (((row.obj.get("spec") or {}).get("conversion") or {}).get("webhook") or {}).get("clientConfig") or {}
    hooks.append(("spec.conversion.webhook.clientConfig.service", conv.get("service")))
    for path, svc in hooks:
        if not svc:
            continue
        key, port = (svc.get("namespace"), svc.get("name")), int(svc.get("port") or 443)
        if key not in cluster.services:
            yield row.finding(CHECK, path, f"no Service {key[1]} in namespace {key[0]}")
        elif port not in cluster.services[key]:
            yield row.finding(CHECK, path, f"Service {key[0]}/{key[1]} has no port {port}")


def default_classes(site, outside: Outside) -> list[str]:
    out = list(outside.default_classes)
    for row in rows(site):
        if row.kind == "StorageClass" and ((row.obj.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS) == "true":
            out.append(f"{row.name} (release {row.release})")
    return out


def check(site, inv, outside: Outside) -> list[Finding]:
    cluster = Cluster(site, outside)
    external = site_names(inv)
    out: list[Finding] = []
    for row in rows(site):
        out += _hosts(row, cluster, external)
        out += _webhook_services(row, cluster)
        refs = list(_storage_refs(row)) + (list(_pod_refs(row)) if row.template is not None else [])
        for kind, name, path in refs:
            ns = None if kind in ("StorageClass", "PriorityClass", "RuntimeClass") else row.namespace
            if not cluster.has(kind, ns, name):
                where = f" in namespace {ns}" if ns else ""
                out.append(row.finding(CHECK, path, f"{kind} {name} is neither rendered nor created by the install{where}"))
    out += [Finding(CHECK, rel, kind, name, "(applied by the release's hook)", f"cannot be made: {why}")
            for rel, kind, name, why in outside.unrendered]
    classes = default_classes(site, outside)
    relying = [f"{row.kind} {row.ref}" for row in rows(site) if _uses_default_class(row)]
    if len(classes) > 1 or (not classes and relying):
        need = f" ({', '.join(relying[:3])}{' ...' if len(relying) > 3 else ''} name none)" if relying else ""
        out.append(Finding(CHECK, "(cluster)", "StorageClass", "(default)", f"annotations.{DEFAULT_CLASS}",
                           f"{len(classes)} default StorageClasses, exactly one is needed{need}: "
                           f"{', '.join(classes) or 'none'}"))
    return out


def _uses_default_class(row: Row) -> bool:
    """A claim that names no StorageClass (it gets the cluster's default)."""
    spec = row.obj.get("spec") or {}
    if row.kind == "PersistentVolumeClaim":
        return "storageClassName" not in spec
    if row.kind == "StatefulSet":
        return any("storageClassName" not in (t.get("spec") or {}) for t in spec.get("volumeClaimTemplates") or [])
    if row.kind == "Cluster" and str(row.obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
        return not (spec.get("storage") or {}).get("storageClass")
    return False
