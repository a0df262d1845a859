"""SBOMs (CycloneDX 1.6): one per image from its own layers, one for the whole bundle; reused unchanged when
every artifact they describe is unchanged."""
from __future__ import annotations

from installer.bundle.artifacts import Artifact, BundleIndex
from installer.bundle.layout import BundleLayout
from installer.collect.context import BuildContext
from installer.core.hashing import sha256_file
from installer.sbom import write_sboms


def run(ctx: BuildContext) -> list[Artifact]:
    layout = ctx.layout
    sbom_files = reusable_sboms(layout, ctx.previous, ctx.artifacts)
    if sbom_files is None:
        # OCI artifacts (e.g. Trivy's databases) have no file system to catalog
        sbom_files = write_sboms(layout, [im for im in ctx.images if not im.artifact], list(ctx.artifacts),
                                 facts=ctx.layer_facts)
    ctx.known.update(sbom_files)
    return [Artifact("sbom", rel.removeprefix("sbom/"), rel, (layout.root / rel).stat().st_size, sha)
            for rel, sha in sorted(sbom_files.items())]


def reusable_sboms(layout: BundleLayout, previous: dict | None, artifacts: list[Artifact]) -> dict[str, str] | None:
    """The SBOM files of the previous build when every artifact they describe is unchanged and the files are intact.

    SBOMs are a pure function of the artifacts (images by digest, charts/files/models by sha256), so an unchanged
    set means identical SBOMs; re-cataloguing every layer of every image would dominate a no-change rebuild.
    """
    if not previous:
        return None
    prev = BundleIndex.of(previous)
    old = [a.to_json() for a in prev.artifacts() if a.kind != "sbom"]
    new = [a.to_json() for a in artifacts]
    key = lambda a: (a["kind"], a["name"], a["path"])  # noqa: E731
    if sorted(old, key=key) != sorted(new, key=key):
        return None
    sboms = prev.artifacts("sbom")
    if not sboms:
        return None
    out: dict[str, str] = {}
    for a in sboms:
        p = layout.root / a.path
        if not p.is_file() or p.is_symlink() or sha256_file(p) != a.sha256:
            return None
        out[a.path] = a.sha256
    on_disk = {layout.rel(p) for p in layout.sbom.rglob("*") if p.is_file()} if layout.sbom.is_dir() else set()
    return out if on_disk == set(out) else None
