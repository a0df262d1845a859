"""Catalog one platform image: stream its layers once, hand each wanted file to its cataloger."""
from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import IO

from installer.oci.layout import OCILayout, PlatformImage
from installer.sbom.catalogers import OsReleaseReader, all_catalogers
from installer.sbom.layer_facts import replay
from installer.sbom.package import Distro, Package
from installer.sbom.rootfs import walk


@dataclass(frozen=True)
class Catalog:
    distro: Distro
    packages: tuple[Package, ...]
    notes: tuple[str, ...] = ()


def catalog_image(oci: OCILayout, image: PlatformImage, what: str, facts=None) -> Catalog:
    """``facts``: a layer_facts.LayerFactsStore; each layer is then read at most once (or not at all when its
    facts were gathered while it downloaded), else every layer is walked from disk."""
    os_release = OsReleaseReader()
    catalogers = [os_release, *all_catalogers()]
    claimed: dict[str, object] = {}

    def wants(path: str, member: tarfile.TarInfo) -> bool:
        for c in catalogers:
            if c.wants(path, member):
                claimed[path] = c
                return True
        return False

    def visit(path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        claimed.pop(path).read(path, member, f)  # type: ignore[attr-defined]

    layers = [(d["digest"], oci.blob_path(d["digest"])) for d in image.layers]
    try:
        replayed = False
        if facts is not None and all(blob.is_file() for _, blob in layers):
            replayed = replay([facts.facts_for(d, blob) for d, blob in layers], catalogers)
        if not replayed:
            walk(layers, wants, visit, what)
        distro = os_release.distro()
        packages: list[Package] = []
        for c in catalogers[1:]:
            packages += c.packages(distro)
    finally:
        for c in catalogers:
            close = getattr(c, "close", None)
            if close:
                close()
    notes = []
    go = next(c for c in catalogers if c.name == "go-binary")
    if go.unread_old_format:  # type: ignore[attr-defined]
        notes.append("Go binaries with pre-1.18 build info not read: " + ", ".join(sorted(go.unread_old_format)))  # type: ignore[attr-defined]
    return Catalog(distro=distro, packages=tuple(sorted(packages, key=lambda p: p.sort_key)), notes=tuple(notes))
