"""The build policy: which registries images may come from (spec.policy.registries, an allow-list).

Every image that goes into the bundle is signed with the site key, so an image a chart merely names (its
default values, a subchart) must not slip in from an arbitrary registry. An entry is a registry host
(``registry.k8s.io``, ``127.0.0.1:5000``) or a host with a path prefix (``ghcr.io/cilium``); ``docker.io``
matches Docker Hub references written without a host.
"""
from __future__ import annotations

from installer.bundle.manifest import Spec
from installer.core.errors import ManifestError
from installer.oci.refs import normalize_ref, parse_ref


def allowed(ref: str, registries: list[str]) -> bool:
    p = parse_ref(ref)
    full = f"{p.registry}/{p.repository}"
    for entry in registries:
        e = entry.strip().rstrip("/").lower()
        if p.registry.lower() == e or full.lower().startswith(e + "/"):
            return True
    return False


def listed_refs(spec: Spec) -> set[str]:
    """Images the manifest names itself (spec.images and each chart's extraImages), normalised."""

    out = {normalize_ref(im.ref) for im in spec.images}
    for c in spec.charts:
        out |= {normalize_ref(r) for r in c.extraImages}
    return out


def check_registries(spec: Spec, needed_by: dict[str, list[str]]) -> None:
    """Refuse the build when an image comes from a registry outside spec.policy.registries (if set)."""
    regs = spec.policy.registries
    if regs is None:
        return
    listed = listed_refs(spec)
    for ref, charts in needed_by.items():
        if not allowed(ref, regs):
            who = f"chart {', '.join(charts)} names image {ref}" if charts and ref not in listed else f"image {ref}"
            raise ManifestError(f"spec.policy.registries: {who} from registry {parse_ref(ref).registry}, which is not "
                                f"allowed ({', '.join(regs) or 'empty list'}): refused (mirror it, or add the registry)")


def chart_only_images(spec: Spec, needed_by: dict[str, list[str]]) -> dict[str, list[str]]:
    """{ref: charts} for images only chart discovery found (the manifest does not name them)."""
    listed = listed_refs(spec)
    return {ref: charts for ref, charts in needed_by.items() if charts and ref not in listed}
