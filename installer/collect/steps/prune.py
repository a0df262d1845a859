"""Remove what the manifest no longer names, before anything lists the bundle's content: files this build did
not produce, layout references it did not collect (their signatures kept with them), unreachable blobs."""
from __future__ import annotations

import shutil
from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.core.tree import prune_tree
from installer.oci.cosign_tags import tags_digest
from installer.oci.images import is_signature_ref, present_platform_manifests


def run(ctx: BuildContext) -> list[Artifact]:
    layout, keep = ctx.layout, ctx.keep
    _prune_dir(layout.charts, keep)
    _prune_dir(layout.files, keep)
    _prune_dir(layout.models, {k.resolve() for k in keep})
    for d in list(layout.models.iterdir()) if layout.models.is_dir() else []:
        if d.name not in {m.name for m in ctx.spec.models}:
            shutil.rmtree(d) if d.is_dir() else d.unlink()
    for d in (layout.charts, layout.files, layout.models):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    if ctx.oci is not None:
        prune_oci(ctx.oci, {im.ref for im in ctx.images},
                  {d for im in ctx.images for d in (im.digest, *present_platform_manifests(ctx.oci, im.digest))})
    elif layout.oci.exists():
        shutil.rmtree(layout.oci)
    return []


def _prune_dir(directory: Path, keep: set[Path]) -> None:
    """Remove files under directory that this build did not produce (an entry dropped from the manifest)."""
    prune_tree(directory, lambda p: p in keep)


def prune_oci(oci, image_names: set[str], image_digests: set[str]) -> None:
    """Drop layout references this build did not collect (and their signatures), then unreachable blobs."""

    stale = []
    for name in oci.refs():
        if name in image_names:
            continue
        if is_signature_ref(name) and any(tags_digest(name.rsplit(":", 1)[-1], d) for d in image_digests):
            continue
        stale.append(name)
    if stale:
        oci.remove_refs(stale)
    oci.prune()
