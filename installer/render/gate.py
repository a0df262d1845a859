"""The completeness gate: which images a bundle must carry, and whether it carries them.

One function decides, for every caller (`bundle build` before it downloads anything but the charts,
`medai render`, install): :func:`plan_images` turns the rendered charts into the set of images the site will
pull, and :func:`check_bundle_images` proves each one is in the bundle's OCI layout by manifest digest.

Rules: every reference discovery finds counts (see discover.py); ``latest`` and untagged references are refused
(K3s's embedded registry mirror serves only what the bundle pins); a chart's ``extraImages`` lists images no
rendered object names at all (listing one that discovery finds is refused, so hand lists do not go stale), and
``ignoreImages`` waives a false positive with a reason (a waiver that matches nothing is refused). A digest-pinned
reference must name a digest the site registry serves once `medai bundle push` filled it: a platform manifest the
bundle carries, not the index of a multi-arch image the build reduced to the site's platforms (docs/bundle.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from installer.core.errors import RegistryError
from installer.oci.images import list_image_refs, platform_digests, present_platform_manifests
from installer.oci.layout import OCILayout
from installer.oci.refs import ImageRef, parse_ref
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


@dataclass(frozen=True)
class CarriedImage:
    """An image the bundle's OCI layout names, and the digests the site serves it by once `medai bundle push` or
    `medai harbor seed` filled its registry: each platform manifest carried, and the top manifest unless it is an index
    the build reduced to the site's platforms (distribution-2.x registries, Harbor 2 among them, refuse to store that;
    only K3s's embedded mirror would serve it)."""

    digest: str  # the top manifest: a multi-arch index or one image
    platforms: dict[str, str] = field(default_factory=dict)  # platform -> manifest digest of each platform image carried
    reduced: bool = False  # an index some of whose platform manifests the bundle does not carry

    def serves(self, digest: str) -> bool:
        return digest in self.platforms.values() or (digest == self.digest and not self.reduced)


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


def _seeded(ref: str, prefix: str, carried: dict[str, CarriedImage]) -> str | None:
    """PREFIX/PATH:TAG (the site's Harbor project, seeded from the bundle by `medai bundle push`) -> the one carried
    REGISTRY/PATH:TAG it was seeded from."""
    rest = ref[len(prefix):]
    found = [c for c in carried if parse_ref(c).path == rest]
    return found[0] if len(found) == 1 else None


def _candidates(pinned: ImageRef, carried: dict[str, CarriedImage]) -> list[tuple[str, CarriedImage]]:
    """The carried images a digest-pinned reference can mean: the same repository, and the same tag where both
    name one (containerd fetches TAG@DIGEST by the digest alone)."""
    out = []
    for name, c in carried.items():
        have = parse_ref(name)
        if have.repo_name == pinned.repo_name and (not have.tag or not pinned.tag or have.tag == pinned.tag):
            out.append((name, c))
    return out


def _place(plan: ImagePlan, ref: str, releases: dict[str, str]) -> str:
    """Where the reference is first named: release, object and field (spec.images where no object names it)."""
    found = plan.why(ref)
    if not found:
        return plan.sources.get(ref, "?")
    f = found[0]
    return f"release {releases.get(f.chart, f.chart)}, {f.kind} {f.name}, {f.path}"


def _index_refused(plan: ImagePlan, ref: str, image: CarriedImage, releases: dict[str, str]) -> ImageGateError:
    kept = ", ".join(f"{p} {d}" for p, d in sorted(image.platforms.items())) or "none"
    return ImageGateError(
        f"{_place(plan, ref, releases)}: image {ref} pins the digest of a multi-arch index the bundle carries reduced "
        f"to the site's platforms, which the site registry cannot serve: pin the platform manifest ({kept}); "
        "a bundle whose index.json records no platformDigests for the image predates them and must be rebuilt")


def check_bundle_images(plan: ImagePlan, carried: dict[str, CarriedImage], seeded_prefixes: tuple[str, ...] = (),
                        releases: dict[str, str] | None = None) -> None:
    """carried: the bundle's OCI layout (carried_images). Every needed image must be there, and a digest-pinned
    reference must name a digest the site registry serves (CarriedImage.serves): a platform manifest the bundle
    carries, or a top manifest that is not a reduced index. seeded_prefixes: HOST/PROJECT/ of the site's Harbor,
    whose contents are the bundle's images under their upstream paths. releases: chart -> release, for the errors."""
    for ref in plan.needed:
        where = plan.sources.get(ref, "?")
        prefix = next((p for p in seeded_prefixes if ref.startswith(p)), None)
        if prefix is not None:
            if _seeded(ref, prefix, carried) is None:
                raise ImageGateError(f"image {ref} (from the site's Harbor) was seeded from no image the bundle "
                                     f"carries (needed by {where})")
            continue
        pinned = parse_ref(ref)
        if not pinned.digest:
            if ref not in carried:
                raise ImageGateError(f"image {ref} is not in the bundle (needed by {where})")
            continue
        same = _candidates(pinned, carried)
        if any(c.serves(pinned.digest) for _, c in same):
            continue
        index = next((c for _, c in same if c.digest == pinned.digest), None)
        if index is not None:
            raise _index_refused(plan, ref, index, releases or {})
        if same:
            raise ImageGateError(f"image {ref}: the bundle carries digest {same[0][1].digest}, not the pinned one "
                                 f"(needed by {where})")
        raise ImageGateError(f"image {ref} is not in the bundle (needed by {where})")


def carried_images(oci_dir) -> dict[str, CarriedImage]:
    """{ref name: CarriedImage} of every image a bundle's OCI layout names (signature manifests left out)."""
    layout = OCILayout(oci_dir)
    out = {}
    for name, entry in list_image_refs(layout).items():
        platforms = platform_digests(layout, entry.digest)
        children = layout.read_manifest(entry.digest)[0].get("manifests") or []
        out[name] = CarriedImage(entry.digest, platforms,
                                 reduced=len(present_platform_manifests(layout, entry.digest)) < len(children))
    return out
