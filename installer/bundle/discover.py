"""Find the images a chart will run: render it with its values (hooks and CRDs included) and read every pod
template in the output.

Pod templates are found by shape, not by a list of kinds alone: Pods (spec), workload kinds
(spec.template.spec), CronJobs (spec.jobTemplate.spec.template.spec), and any other kind that carries a pod
spec under spec.template.spec (operators' custom resources often do).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterable

from installer.bundle.manifest import Chart
from installer.bundle.sources.charts import allow_listed_helm
from installer.bundle.sources.oci import parse_ref
from installer.errors import RegistryError, SourceError

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

def normalize_ref(ref: str) -> str:
    """Docker's reading of an image reference, written out in full, exactly as the OCI client names images.

    'nginx' -> 'docker.io/library/nginx:latest'; 'org/app:1' -> 'docker.io/org/app:1'. Raises ValueError.
    """
    try:
        return parse_ref(ref).name
    except RegistryError as e:
        raise ValueError(str(e)) from None


def _pod_specs(doc: dict) -> Iterable[dict]:
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return
    if doc.get("kind") == "Pod":
        yield spec
    tmpl = spec.get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        yield tmpl["spec"]
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        jspec = job.get("spec") or {}
        jt = jspec.get("template") if isinstance(jspec, dict) else None
        if isinstance(jt, dict) and isinstance(jt.get("spec"), dict):
            yield jt["spec"]


def images_in_document(doc: Any) -> set[str]:
    """Image references (as written) in one Kubernetes object; List kinds are walked."""
    found: set[str] = set()
    if not isinstance(doc, dict):
        return found
    if isinstance(doc.get("items"), list) and str(doc.get("kind", "")).endswith("List"):
        for item in doc["items"]:
            found |= images_in_document(item)
        return found
    for pod in _pod_specs(doc):
        for key in CONTAINER_LISTS:
            for c in pod.get(key) or []:
                if isinstance(c, dict) and isinstance(c.get("image"), str) and c["image"].strip():
                    found.add(c["image"].strip())
    return found


def render_chart(chart: Chart, archive: Path) -> list[dict]:
    """helm template ARCHIVE with the chart's values, hooks and CRDs included; every document parsed."""
    from pyhelm3 import Command

    cmd = Command(executable=allow_listed_helm())
    release = chart.releaseName or chart.name
    try:
        docs = list(asyncio.run(cmd.template(release, archive, chart.values or None,
                                             include_crds=True, namespace=chart.namespace)))
    except Exception as e:  # pyhelm3.errors.Error: str() is helm's stderr; yaml errors for bad output
        text = str(e).strip().splitlines()
        detail = text[-1].removeprefix("Error: ") if text else type(e).__name__
        raise SourceError(f"chart {chart.name} {chart.version}: cannot render with its values: {detail}") from None
    return [d for d in docs if d]


def discover_images(rendered: dict[str, list[dict]]) -> dict[str, list[str]]:
    """{chart name: rendered documents} -> {normalised image ref: sorted chart names that need it}."""
    needed: dict[str, set[str]] = {}
    for chart_name, docs in rendered.items():
        for doc in docs:
            for raw in images_in_document(doc):
                try:
                    ref = normalize_ref(raw)
                except ValueError as e:
                    raise SourceError(f"chart {chart_name}: image {raw!r} in {doc.get('kind')} "
                                      f"{(doc.get('metadata') or {}).get('name')}: {e}") from None
                needed.setdefault(ref, set()).add(chart_name)
    return {ref: sorted(names) for ref, names in sorted(needed.items())}
