"""Push a bundle's images, with their cosign signature manifests, into an OCI registry (e.g. to seed Harbor).

Each image keeps its repository path under the destination: ``127.0.0.1:5000/demo/app:1.0`` pushed to
``harbor.site/medai`` becomes ``harbor.site/medai/demo/app:1.0``, same digest, and its
``sha256-<hex>.sig`` manifest goes beside it, so ``cosign verify`` against the copy works.
"""
from __future__ import annotations

import os
from pathlib import Path

from installer.core.errors import BundleError, RegistryError
from installer.deploy.working_copy import VerifiedBundle, verified_working_copy
from installer.oci.images import PushResult, present_platform_manifests, push_image
from installer.oci.layout import OCILayout
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient


def destination(registry: str, ref: str) -> str:
    """REGISTRY[/PREFIX] + the image's repository path (tag taken from the source by push_image)."""
    reg = registry.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if not reg or " " in reg:
        raise RegistryError(f"{registry!r}: not a registry HOST[:PORT][/PREFIX]")
    return f"{reg}/{parse_ref(ref).repository}"


def push_bundle(bundle: str | os.PathLike, registry: str, ca_file: str | os.PathLike | None = None,
                insecure: bool = False, progress=None, key: str | os.PathLike | None = None,
                skip_signature: bool = False, state: Path | None = None,
                platform_manifest: bool = False) -> list[PushResult]:
    """Verify the bundle (index signature with `key`, every file, every image signature) into a private working
    copy, then push from that copy exactly the image digests the signed index lists; one PushResult per image.

    Without `key` it refuses unless `skip_signature` (the caller prints the SIGNATURES NOT CHECKED banner).
    ``platform_manifest``: where the registry refuses a multi-arch index reduced to the site's platforms
    (distribution 2.x, so Harbor 2), tag the platform manifest instead (see push_image); that manifest must be
    one the signed index digest names.
    """

    vb = verified_working_copy(Path(bundle), Path(key) if key else None, skip_signature, state)
    return push_verified(vb, registry, ca_file, insecure, progress, platform_manifest)


def push_verified(vb: VerifiedBundle, registry: str, ca_file: str | os.PathLike | None = None, insecure: bool = False,
                  progress=None, platform_manifest: bool = False) -> list[PushResult]:
    """push_bundle's push, from a bundle already opened (installer.deploy.working_copy): exactly the image
    digests its signed index lists, from its private copy."""
    images = vb.index.images()
    if not images:
        raise RegistryError(f"{vb.source}: the bundle has no images to push")
    host = registry.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    oci = OCILayout(vb.root / "oci", vb.root / ".tmp")
    results: list[PushResult] = []
    # A CA file means TLS, even on loopback (where plain HTTP is the default, as docker allows).
    with RegistryClient(insecure=[host] if insecure else [], https=[host] if ca_file and not insecure else [],
                        ca_file=Path(ca_file) if ca_file else None) as client:
        for a in images:
            ref, want = a.ref or a.name, a.digest
            if not want:
                raise BundleError(f"{vb.source}: image {ref}: the signed index names no digest; nothing pushed for it")
            if progress is not None:
                progress.print(f"pushing {ref}@{want} -> {destination(registry, ref)}", highlight=False)
            # "@digest": push_image refuses when the layout's reference points anywhere but the signed digest
            res = push_image(client, oci, ref, f"{destination(registry, ref)}@{want}",
                             platform_fallback=platform_manifest)
            if res.digest != want and not (res.fallback and res.digest in present_platform_manifests(oci, want)):
                raise RegistryError(f"image {ref}: pushed {res.digest}, the signed index lists {want}")
            results.append(res)
    return results
