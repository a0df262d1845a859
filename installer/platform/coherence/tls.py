"""TLS names: every certificate the install issues covers every name its clients use for it: each in-cluster name
an https URL of the render uses for a Service whose pods mount the certificate's Secret, and the site's host names
for the component (installer.platform.coherence.outside.Certificate.site_names)."""
from __future__ import annotations

from collections.abc import Iterator

from installer.platform.coherence.model import Finding, Row, pod_rows, rows
from installer.platform.coherence.outside import Certificate, Outside
from installer.platform.coherence.references import URL, Cluster, strings_in
from installer.render.labels import selector_matches

CHECK = "tls"
TLS_SCHEMES = ("https", "wss", "grpcs")


def covers(names: tuple[str, ...], host: str) -> bool:
    """A certificate's names cover HOST: the same name, or a wildcard standing for exactly its first label."""
    host = host.lower().rstrip(".")
    for n in (n.lower() for n in names):
        if n == host or (n.startswith("*.") and "." in host and host.split(".", 1)[1] == n[2:]):
            return True
    return False


def _mounts(row: Row, secret: str) -> bool:
    for v in row.template.spec.get("volumes") or []:
        if (v.get("secret") or {}).get("secretName") == secret:
            return True
        if any((s.get("secret") or {}).get("name") == secret for s in (v.get("projected") or {}).get("sources") or []):
            return True
    return False


def served_by(site, cert: Certificate) -> set[tuple[str, str]]:
    """(namespace, Service) of every Service selecting pods that mount the certificate's Secret."""
    labels = [r.template.metadata.get("labels") or {} for r in pod_rows(site)
              if r.namespace == cert.namespace and _mounts(r, cert.secret)]
    out = set()
    for row in rows(site):
        selector = (row.obj.get("spec") or {}).get("selector") if row.kind == "Service" else None
        if row.namespace == cert.namespace and selector and any(
                selector_matches({"matchLabels": selector}, pod) for pod in labels):
            out.add((row.namespace, row.name))
    return out


def client_names(site, cluster: Cluster) -> Iterator[tuple[Row, str, str, tuple[str, str]]]:
    """(row, field, host as written, (namespace, Service)) for every TLS URL of the render naming a Service."""
    for row in rows(site):
        for path, text, _ in strings_in(row):
            for m in URL.finditer(text):
                if m.group(1) not in TLS_SCHEMES:
                    continue
                target = cluster.service_of(m.group(2), row.namespace or "default")
                if target is None and "." not in m.group(2):
                    target = (row.namespace or "default", m.group(2).lower())
                if target is not None:
                    yield row, path, m.group(2), target


def check(site, inv, outside: Outside) -> list[Finding]:
    cluster = Cluster(site, outside)
    uses = list(client_names(site, cluster))
    out: list[Finding] = []
    served = {r.namespace for r in pod_rows(site)}
    for cert in outside.certificates:
        if cert.namespace not in served:
            continue  # its component is not in this render
        where = f"Secret {cert.namespace}/{cert.secret}"
        for name in cert.site_names:
            if not covers(cert.names, name):
                out.append(Finding(CHECK, cert.component, "Certificate", f"{cert.namespace}/{cert.secret}", "names",
                                   f"the site host name {name} is not among {', '.join(cert.names)}"))
        services = served_by(site, cert)
        for row, path, host, target in uses:
            if target in services and not covers(cert.names, host):
                out.append(row.finding(CHECK, path, f"{host}: Service {target[0]}/{target[1]} serves the certificate "
                                       f"of {where}, whose names ({', '.join(cert.names)}) do not cover it"))
    return out
