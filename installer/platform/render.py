"""Render everything the install applies for a site: one Release per chart of the bundle, in apply order.

Inputs come only from the bundle (manifest.yaml, charts/*.tgz checked against index.json, oci/ for the gate)
and the inventory. The same function serves `medai render` (which writes the files) and install and the Helm
apply (which use the objects and values): what render shows is what is applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from installer.bundle.layout import BundleLayout, archive_name
from installer.bundle.manifest import BundleManifest, Chart, load_manifest
from installer.core.atomic import atomic_write_text
from installer.core.errors import BundleError
from installer.core.hashing import sha256_file
from installer.platform.flows import KUBE_SYSTEM, policies
from installer.platform.order import ordered
from installer.platform.site_flows import declared
from installer.platform.values import chart_enabled, release_values, role_vars, site_objects
from installer.render.gate import ImagePlan, carried_images, check_bundle_images, plan_images
from installer.render.helm import k3s_kube_version, render_chart
from installer.render.podsecurity import LEVELS, least_level, pod_template
from installer.render.validate import crd_schemas, schema_version, validate_release

PSA = "pod-security.kubernetes.io/"
# A bundle without K3s (a lab demo) is still validated: at the Kubernetes minor medai's platform.yaml ships.
DEFAULT_KUBE_VERSION = "1.34.0"


@dataclass
class Release:
    name: str
    chart: Chart
    archive: Path
    namespace: str
    values: dict[str, Any]
    objects: list[dict]  # what helm renders (hooks and CRDs included)
    site_objects: list[dict] = field(default_factory=list)  # what medai applies once the release is ready


@dataclass
class SiteRender:
    releases: list[Release]
    plan: ImagePlan
    kube_version: str | None
    schema_version: str | None
    counts: dict[str, dict[str, int]]

    def summary(self) -> str:
        """The one line install and upgrade print once the render, validation and gate passed."""
        at = f"Kubernetes {self.kube_version}" if self.kube_version else "helm's default Kubernetes (no K3s in the bundle)"
        return f"{len(self.releases)} release(s) valid at {at}, {len(self.plan.needed)} images all in the bundle"


def apply_order(charts: list[Chart]) -> list[Chart]:
    """The manifest's charts in the one order (installer.platform.order), by release name."""
    return ordered(charts, lambda c: c.releaseName or c.name)


def bundle_manifest(layout: BundleLayout) -> BundleManifest:
    if not layout.manifest.is_file():
        raise BundleError(f"{layout.manifest}: missing: the bundle carries no manifest")
    return load_manifest(layout.manifest)


def chart_archive(layout: BundleLayout, chart: Chart, index: dict) -> Path:
    """charts/NAME-VERSION.tgz, present and with the sha256 index.json records (never a repository)."""
    rel = f"charts/{archive_name(chart)}"
    entry = next((f for f in index["files"] if f.get("path") == rel), None)
    path = layout.root / rel
    if entry is None:
        raise BundleError(f"{layout.index}: lists no {rel} for chart {chart.name} {chart.version}")
    if not path.is_file():
        raise BundleError(f"{path}: missing (chart {chart.name} {chart.version})")
    if sha256_file(path) != entry["sha256"]:
        raise BundleError(f"{path}: sha256 differs from index.json: the bundle was altered")
    return path


def harbor_prefixes(manifest: BundleManifest, inv) -> tuple[str, ...]:
    """The site Harbor's platform project, when the bundle installs Harbor (roles/harbor: Trivy's databases)."""
    if not any(c.name == "harbor" for c in manifest.spec.charts):
        return ()
    host = role_vars("harbor", inv).get("medai_harbor_hostname")
    return (f"{host}/platform/",) if host else ()


def _namespace_of(obj: dict, default: str) -> str:
    return (obj.get("metadata") or {}).get("namespace") or default


def pod_security_level(objects: list[dict]) -> str:
    """The least Pod Security level admitting every pod template of a namespace. A Helm test hook is left out: the
    install never runs `helm test`, so that pod is never created."""
    hooks = lambda o: ((o.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")  # noqa: E731
    needed = [least_level(o) for o in objects if pod_template(o) is not None and "test" not in hooks(o).split(",")]
    return min(needed, key=LEVELS.index, default="restricted")  # LEVELS: the most permissive first


def namespace_object(name: str, level: str) -> dict:
    """Enforce the least level the namespace's workloads need; warn and audit at restricted, so every deviation
    from restricted stays visible in kubectl's warnings and the audit log."""
    labels = {"app.kubernetes.io/managed-by": "medai", f"{PSA}enforce": level, f"{PSA}enforce-version": "latest",
              f"{PSA}warn": "restricted", f"{PSA}warn-version": "latest",
              f"{PSA}audit": "restricted", f"{PSA}audit-version": "latest"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def add_namespaces(releases: list[Release], inv) -> None:
    """Put first in the site objects of the first release using each platform namespace (kube-system aside) its
    Namespace, labelled at the least Pod Security level its pod templates need, and its NetworkPolicies, rendered
    from the declared flows (installer.platform.flows). The applier applies both before the release itself."""
    flows = declared(inv)
    templates: dict[str, list[dict]] = {}
    for r in releases:
        for o in r.objects + r.site_objects:
            templates.setdefault(_namespace_of(o, r.namespace), []).append(o)
    seen = {KUBE_SYSTEM}
    for r in releases:
        head: list[dict] = []
        for ns in dict.fromkeys([r.namespace] + [_namespace_of(o, r.namespace) for o in r.site_objects]):
            if ns not in seen:
                seen.add(ns)
                head += [namespace_object(ns, pod_security_level(templates.get(ns, [])))] + policies(flows, ns, inv)
        r.site_objects = head + r.site_objects


def render_site(inv, bundle: str | Path, check_images: bool = True) -> SiteRender:
    """Render, validate and gate every release of the bundle for this site. One-line MedaiError on any failure."""
    layout = BundleLayout.at(bundle)
    index = layout.read_index()
    manifest = bundle_manifest(layout)
    kube = k3s_kube_version(manifest.spec)
    releases: list[Release] = []
    for c in apply_order(manifest.spec.charts):
        if not chart_enabled(c.name, inv):
            continue
        values = release_values(c, inv, index)
        archive = chart_archive(layout, c, index)
        objects = render_chart(c.name, c.version, archive, values, c.namespace, kube, c.releaseName)
        name = c.releaseName or c.name
        releases.append(Release(name, c, archive, c.namespace, values, objects,
                                site_objects(c.name, name, inv, c.namespace, index)))
    add_namespaces(releases, inv)
    crds = crd_schemas(o for r in releases for o in r.objects)
    version = kube or DEFAULT_KUBE_VERSION
    counts = {r.name: validate_release(r.name, r.objects + r.site_objects, version, crds) for r in releases}
    plan = plan_images(manifest.spec, {r.chart.name: r.objects + r.site_objects for r in releases})
    if check_images:
        carried = carried_images(layout.oci) if (layout.oci / "index.json").is_file() else {}
        check_bundle_images(plan, carried, harbor_prefixes(manifest, inv), {r.chart.name: r.name for r in releases})
    return SiteRender(releases, plan, kube, schema_version(version), counts)


def _dump(objects: list[dict]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)


def write_site(result: SiteRender, out: str | Path) -> list[Path]:
    """OUT/NN-RELEASE.yaml (the release's objects), OUT/NN-RELEASE.values.yaml (the values helm gets) and, where
    there are any, OUT/NN-RELEASE.site.yaml (objects medai applies after the release is ready)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, r in enumerate(result.releases, 1):
        stem = f"{i:02d}-{r.name}"
        head = (f"# release {r.name}, chart {r.chart.name} {r.chart.version}, namespace {r.namespace}, "
                f"Kubernetes {result.kube_version or 'helm default'}; rendered by medai render\n")
        files = {f"{stem}.yaml": head + _dump(r.objects),
                 f"{stem}.values.yaml": yaml.safe_dump(r.values, sort_keys=True)}
        if r.site_objects:
            files[f"{stem}.site.yaml"] = (f"# applied by medai after release {r.name} is ready\n" + _dump(r.site_objects))
        for name, text in files.items():
            atomic_write_text(out / name, text)
            written.append(out / name)
    return written
