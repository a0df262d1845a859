"""The completeness gate: which images a bundle must carry, and whether it carries them.

One function decides, for every caller (`bundle build` before it downloads anything but the charts,
`medai render`, install): :func:`plan_images` turns the rendered charts into the set of images the site will
pull, and :func:`check_bundle_images` proves each one is in the bundle's OCI layout by manifest digest.

Rules: every reference discovery finds counts (see discover.py); ``latest`` and untagged references are refused
(K3s's embedded registry mirror serves only what the bundle pins); a chart's ``extraImages`` lists images no
rendered object names at all (listing one that discovery finds is refused, so hand lists do not go stale), and
``ignoreImages`` waives a false positive with a reason (a waiver that matches nothing is refused).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.core.errors import RegistryError
from installer.oci.layout import OCILayout
from installer.oci.refs import parse_ref
from installer.render.discover import Finding, find_images
from installer.render.errors import ImageGateError


@dataclass
class ImagePlan:
    needed: dict[str, list[str]] = field(default_factory=dict)  # normalised ref -> charts needing it ([]: spec.images)
    findings: list[Finding] = field(default_factory=list)
    waived: dict[str, str] = field(default_factory=dict)  # normalised ref -> reason
    sources: dict[str, str] = field(default_factory=dict)  # normalised ref -> where it is first named

    def why(self, ref: str) -> list[Finding]:
        """Every place the (normalised or as-written) reference appears."""
        try:
            name = parse_ref(ref).name
        except RegistryError:
            name = ref
        return [f for f in self.findings if f.ref.name == name or f.ref.raw == ref]


def _pinned(raw: str, where: str) -> str:
    try:
        ref = parse_ref(raw)
    except RegistryError as e:
        raise ImageGateError(f"{where}: {e}") from None
    if not ref.tagged:
        raise ImageGateError(f"{where}: image {raw!r} has no tag: the site's mirror serves only pinned images "
                             "(write REPO:TAG or REPO@sha256:DIGEST)")
    if ref.latest:
        raise ImageGateError(f"{where}: image {raw!r} uses the tag 'latest', which names no fixed image and which "
                             "K3s's embedded mirror does not serve; pin a version")
    return ref.name


def plan_images(spec, rendered: dict[str, list[dict]]) -> ImagePlan:
    """spec: a manifest Spec; rendered: {chart name: rendered objects}. Raises ImageGateError naming the place."""
    plan = ImagePlan(findings=find_images(rendered))
    needed: dict[str, set[str]] = {}
    for i, im in enumerate(spec.images):
        ref = _pinned(im.ref, f"spec.images[{i}].ref")
        needed.setdefault(ref, set())
        plan.sources.setdefault(ref, f"spec.images[{i}]")

    waivers: dict[tuple[str, str], tuple[str, str]] = {}  # (chart, ref) -> (manifest path, reason)
    for ci, c in enumerate(spec.charts):
        for wi, w in enumerate(c.ignoreImages):
            where = f"spec.charts[{ci}].ignoreImages[{wi}].ref"
            try:
                name = parse_ref(w.ref).name
            except RegistryError as e:
                raise ImageGateError(f"{where}: {e}") from None
            waivers[(c.name, name)] = (where, w.reason)
    used: set[tuple[str, str]] = set()
    for f in plan.findings:
        key = (f.chart, f.ref.name)
        if key in waivers:
            used.add(key)
            plan.waived[f.ref.name] = waivers[key][1]
            continue
        ref = _pinned(f.ref.raw, f.where)
        needed.setdefault(ref, set()).add(f.chart)
        plan.sources.setdefault(ref, f.where)
    for key, (where, _) in waivers.items():
        if key not in used:
            raise ImageGateError(f"{where}: {key[1]} is not in chart {key[0]}'s rendered output; remove the waiver")

    for ci, c in enumerate(spec.charts):
        for ei, raw in enumerate(c.extraImages):
            where = f"spec.charts[{ci}].extraImages[{ei}]"
            ref = _pinned(raw, where)
            if ref in needed and c.name in needed[ref]:
                raise ImageGateError(f"{where}: {ref} is already found in the rendered output ({plan.sources[ref]}); "
                                     "extraImages is for images no rendered object names, remove it")
            needed.setdefault(ref, set()).add(c.name)
            plan.sources.setdefault(ref, where)
    plan.needed = {ref: sorted(charts) for ref, charts in needed.items()}
    return plan


def _seeded(ref: str, prefix: str, carried: dict[str, str]) -> str | None:
    """PREFIX/PATH:TAG (the site's Harbor project, seeded from the bundle by `medai bundle push`) -> the one carried
    REGISTRY/PATH:TAG it was seeded from."""
    rest = ref[len(prefix):]
    found = [c for c in carried if parse_ref(c).path == rest]
    return found[0] if len(found) == 1 else None


def check_bundle_images(plan: ImagePlan, carried: dict[str, str], seeded_prefixes: tuple[str, ...] = ()) -> None:
    """carried: {normalised ref: manifest digest} of the bundle's OCI layout. Every needed image must be there,
    and a digest-pinned reference must be carried at exactly that digest. seeded_prefixes: HOST/PROJECT/ of the
    site's Harbor, whose contents are the bundle's images under their upstream paths."""
    for ref in plan.needed:
        where = plan.sources.get(ref, "?")
        prefix = next((p for p in seeded_prefixes if ref.startswith(p)), None)
        if prefix is not None:
            if _seeded(ref, prefix, carried) is None:
                raise ImageGateError(f"image {ref} (from the site's Harbor) was seeded from no image the bundle "
                                     f"carries (needed by {where})")
            continue
        # NAME:TAG@DIGEST from a site object (a CNPG Cluster's imageName, from the index) matches the image the
        # bundle carries as NAME:TAG when that is exactly the pinned digest
        pinned = parse_ref(ref)
        if ref not in carried and pinned.digest and pinned.tag and carried.get(pinned.with_tag(pinned.tag).name) == pinned.digest:
            continue
        if ref not in carried:
            raise ImageGateError(f"image {ref} is not in the bundle (needed by {where})")
        if pinned.digest and pinned.digest != carried[ref]:
            raise ImageGateError(f"image {ref}: the bundle carries digest {carried[ref]}, not the pinned one "
                                 f"(needed by {where})")


def bundle_image_digests(oci_dir) -> dict[str, str]:
    """{ref name: manifest digest} of a bundle's OCI layout (oci/index.json)."""

    return {name: entry.digest for name, entry in OCILayout(oci_dir).refs().items()}
