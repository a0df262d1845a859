"""The CycloneDX SBOM of one platform image: the image as metadata.component, its OS and packages."""
from __future__ import annotations

from cyclonedx.model import Property
from cyclonedx.model.component import Component, ComponentType
from packageurl import PackageURL

from installer.core.hashing import digest_hex
from installer.oci.layout import PlatformImage
from installer.oci.refs import parse_ref
from installer.sbom import cdx
from installer.sbom.scan import Catalog


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/ns/app:1.2@sha256:…' -> ('host:5000/ns/app', '1.2')."""
    p = parse_ref(ref)
    return p.repo_name, (p.tag if p.explicit and p.tag else "")


def container_component(ref: str, digest: str, platform: str, bom_ref: str) -> Component:
    repo, tag = split_ref(ref)
    qualifiers = {"repository_url": repo}
    if tag:
        qualifiers["tag"] = tag
    arch = platform.split("/")[1] if platform.count("/") >= 1 else ""
    if arch:
        qualifiers["arch"] = arch
    return Component(
        type=ComponentType.CONTAINER, name=repo, version=tag or digest, bom_ref=bom_ref,
        purl=PackageURL("oci", None, repo.rsplit("/", 1)[-1].lower(), digest, qualifiers),
        hashes=[cdx.sha256_hash(digest_hex(digest))],
    )


def image_bom(ref: str, given_digest: str, image: PlatformImage, catalog: Catalog) -> bytes:
    what = f"image {ref}"
    bom = cdx.new_bom(f"image:{ref}@{image.digest}", cdx.parse_created(image.config.get("created")))
    root = container_component(ref, image.digest, image.platform, bom_ref=f"image:{image.digest}")
    root.properties.update(cdx.props([
        ("medai:image:ref", ref),
        ("medai:image:digest", given_digest),
        ("medai:image:manifest", image.digest),
        ("medai:image:platform", image.platform),
    ]))
    bom.metadata.component = root
    if catalog.distro.id:
        bom.components.add(Component(
            type=ComponentType.OPERATING_SYSTEM, name=catalog.distro.id, version=catalog.distro.version_id or None,
            description=catalog.distro.pretty_name or None, bom_ref=f"os:{catalog.distro.qualifier}"))
    for c in cdx.package_components(catalog.packages):
        bom.components.add(c)
    bom.metadata.properties.update(Property(name="medai:note", value=n) for n in catalog.notes)
    return cdx.serialize(bom, what)
