"""Public entry points: write every SBOM of a bundle, and count what they list.

    sbom/images/<safe-ref>.cdx.json                      generated from the image's own files
    sbom/images/<safe-ref>.<os>-<arch>.cdx.json          … one per platform when an index brings several
    sbom/images/<safe-ref>.upstream-<how>-<n>.<fmt>      SBOMs the upstream attached to the image, kept
    sbom/bundle.cdx.json                                 the whole bundle
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from installer.bundle.layout import BundleLayout
from installer.core.errors import BundleError, TrustError
from installer.core.hashing import digest_hex, fsync_rename, sha256_bytes, sha256_file
from installer.oci.layout import OCILayout, PlatformImage
from installer.sbom import layer_facts, upstream
from installer.sbom.bundle_sbom import ImageEntry, bundle_bom
from installer.sbom.image_sbom import image_bom
from installer.sbom.scan import Catalog, catalog_image

BUNDLE_SBOM = "sbom/bundle.cdx.json"
IMAGES_DIR = "sbom/images"
GENERATED_SUFFIX = ".cdx.json"
UPSTREAM_MARK = ".upstream-"


def safe_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ref).strip("._") or "image"


def write_sboms(layout: BundleLayout, images: list, artifacts: list, workers: int | None = None,
                facts=None) -> dict[str, str]:
    """Write per-image SBOMs and the bundle SBOM; returns {path relative to the bundle: sha256}.

    ``images``: objects with ``.ref`` and ``.digest`` (manifest or index digest, blobs in ``layout.oci``).
    ``artifacts``: installer.bundle.index.Artifact of the bundle (charts, files, models, tools).
    ``facts``: a layer_facts.LayerFactsStore holding what the download already gathered (default: a fresh one
    in memory, so a layer shared by several images is still read once).
    """
    try:
        return _write_sboms(layout, images, artifacts, workers, facts)
    except BundleError as e:  # the layout lacks or mangles what an image needs: an SBOM error, one line
        raise TrustError(str(e)) from None


def _write_sboms(layout: BundleLayout, images: list, artifacts: list, workers: int | None, facts) -> dict[str, str]:
    workers = workers or min(4, os.cpu_count() or 2)
    if facts is None:
        facts = layer_facts.LayerFactsStore()
    oci = OCILayout(layout.oci)
    entries = sorted({(str(i.ref), str(i.digest)) for i in images})
    for ref, digest in entries:
        try:
            digest_hex(digest)
        except ValueError:
            raise TrustError(f"image {ref}: digest {digest!r} is not a sha256 digest") from None
    names = _unique_names(entries)

    platforms: dict[tuple[str, str], list[PlatformImage]] = {
        (ref, digest): oci.platform_images(digest, f"image {ref}") for ref, digest in entries}
    unique: dict[str, tuple[PlatformImage, str]] = {}
    for (ref, _), imgs in platforms.items():
        for img in imgs:
            unique.setdefault(img.digest, (img, f"image {ref}"))
    with ThreadPoolExecutor(max_workers=workers) as ex:
        catalogs: dict[str, Catalog] = dict(zip(
            unique, ex.map(lambda t: catalog_image(oci, t[0], f"{t[1]} ({t[0].platform or t[0].digest})", facts),
                           unique.values())))

    out: dict[str, bytes | tuple[OCILayout, upstream.UpstreamSbom]] = {}
    image_entries = []
    for ref, digest in entries:
        imgs = platforms[(ref, digest)]
        entry = ImageEntry(ref=ref, digest=digest)
        for img in imgs:
            suffix = "" if len(imgs) == 1 else "." + (img.platform.replace("/", "-") or digest_hex(img.digest)[:12])
            rel = f"{IMAGES_DIR}/{names[(ref, digest)]}{suffix}{GENERATED_SUFFIX}"
            out[rel] = image_bom(ref, digest, img, catalogs[img.digest])
            entry.sboms.append((rel, sha256_bytes(out[rel])))  # type: ignore[arg-type]
        found = upstream.find(oci, digest, [i.digest for i in imgs], f"image {ref}")
        for n, u in enumerate(found, 1):
            out[f"{IMAGES_DIR}/{names[(ref, digest)]}{UPSTREAM_MARK}{u.source}-{n}.{u.ext}"] = (oci, u)
        image_entries.append(entry)
    out[BUNDLE_SBOM] = bundle_bom(layout, image_entries, artifacts, workers)
    return _write_all(layout, out)


def _unique_names(entries: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    names = {e: safe_name(e[0]) for e in entries}
    seen: dict[str, int] = {}
    for n in names.values():
        seen[n] = seen.get(n, 0) + 1
    return {e: (n if seen[n] == 1 else f"{n}-{digest_hex(e[1])[:12]}") for e, n in names.items()}


def _write_all(layout: BundleLayout, out: dict) -> dict[str, str]:
    images_dir = layout.root / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    # an earlier, interrupted build may have left SBOMs of images no longer in the bundle
    for stale in images_dir.iterdir():
        if f"{IMAGES_DIR}/{stale.name}" not in out and stale.is_file():
            stale.unlink()
    layout.tmp.mkdir(parents=True, exist_ok=True)
    result: dict[str, str] = {}
    for rel in sorted(out):
        tmp = layout.tmp / ("sbom-" + rel.replace("/", "_") + ".part")
        item = out[rel]
        if isinstance(item, bytes):
            tmp.write_bytes(item)
        else:
            oci, u = item
            u.write(oci, tmp)
        result[rel] = sha256_file(tmp)
        fsync_rename(tmp, layout.root / rel)
    return result


def component_counts(bundle_dir: str | Path) -> dict[str, int]:
    """{image ref: number of packages (components but the operating-system entry) in its generated SBOM}.

    An image whose index brings several platforms has one SBOM per platform; its count is their sum.
    """
    images_dir = Path(bundle_dir) / IMAGES_DIR
    counts: dict[str, int] = {}
    for path in sorted(images_dir.glob(f"*{GENERATED_SUFFIX}")) if images_dir.is_dir() else []:
        if UPSTREAM_MARK in path.name:
            continue
        try:
            doc = json.loads(path.read_bytes())
            root = doc["metadata"]["component"]
            ref = {p["name"]: p["value"] for p in root.get("properties", [])}["medai:image:ref"]
        except (OSError, ValueError, KeyError, TypeError):
            raise TrustError(f"{path}: not an image SBOM written by medai") from None
        n = sum(1 for c in doc.get("components", []) if c.get("type") != "operating-system")
        counts[ref] = counts.get(ref, 0) + n
    return counts
