"""Push a bundle's images, with their cosign signature manifests, into an OCI registry (e.g. to seed Harbor).

Each image keeps its repository path under the destination: ``127.0.0.1:5000/demo/app:1.0`` pushed to
``harbor.site/medai`` becomes ``harbor.site/medai/demo/app:1.0``, same digest, and its
``sha256-<hex>.sig`` manifest goes beside it, so ``cosign verify`` against the copy works.
"""
from __future__ import annotations

import os
from pathlib import Path

from installer.bundle.images import PushResult, push_image
from installer.bundle.layout import BundleLayout
from installer.bundle.oci_layout import OCILayout
from installer.bundle.sources.oci import RegistryClient, parse_ref
from installer.errors import RegistryError


def destination(registry: str, ref: str) -> str:
    """REGISTRY[/PREFIX] + the image's repository path (tag taken from the source by push_image)."""
    reg = registry.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if not reg or " " in reg:
        raise RegistryError(f"{registry!r}: not a registry HOST[:PORT][/PREFIX]")
    return f"{reg}/{parse_ref(ref).repository}"


def push_bundle(bundle: str | os.PathLike, registry: str, ca_file: str | os.PathLike | None = None,
                insecure: bool = False, progress=None, platform_manifest: bool = False) -> list[PushResult]:
    """Push every image artifact of the bundle index; returns one PushResult per image.

    ``platform_manifest``: where the registry refuses a multi-arch index reduced to the site's platforms
    (distribution 2.x, so Harbor 2), tag the platform manifest instead (see push_image)."""
    layout = BundleLayout.at(bundle)
    index = layout.read_index()
    images = [a for a in index.get("artifacts", []) if a.get("kind") == "image"]
    if not images:
        raise RegistryError(f"{layout.root}: the bundle has no images to push")
    host = registry.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    oci = OCILayout(layout.oci, layout.tmp)
    results: list[PushResult] = []
    # A CA file means TLS, even on loopback (where plain HTTP is the default, as docker allows).
    with RegistryClient(insecure=[host] if insecure else [], https=[host] if ca_file and not insecure else [],
                        ca_file=Path(ca_file) if ca_file else None) as client:
        for a in images:
            ref = a.get("ref") or a["name"]
            if progress is not None:
                progress.print(f"pushing {ref} -> {destination(registry, ref)}", highlight=False)
            results.append(push_image(client, oci, ref, destination(registry, ref), platform_fallback=platform_manifest))
    return results
