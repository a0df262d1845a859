"""`medai bundle inspect`: a bundle's contents read from its index.json."""
from __future__ import annotations

from pathlib import Path

from installer.bundle.layout import BundleLayout


def inspect_bundle(bundle: Path, sbom_counts: dict[str, int] | None = None) -> dict:
    """What a bundle holds, from its index: images (digest, size, platforms, which chart needs them), charts,
    files, models, sizes. ``sbom_counts`` (image ref -> SBOM components, from installer.sbom) is shown per image."""
    layout = BundleLayout.at(bundle)
    index = layout.read_index()
    sboms = sbom_counts or {}
    by_kind: dict[str, list[dict]] = {}
    for a in index["artifacts"]:
        by_kind.setdefault(a["kind"], []).append(a)
    images = [{"ref": a["ref"], "digest": a.get("digest"), "size": a["size"], "neededBy": a.get("neededBy", []),
               "platforms": (a.get("meta") or {}).get("platforms", []),
               **({"sbomComponents": sboms[a["ref"]]} if a["ref"] in sboms else {})}
              for a in by_kind.get("image", [])]
    charts = [{"name": a["name"], "version": (a.get("meta") or {}).get("version"), "repo": (a.get("meta") or {}).get("repo"),
               "sha256": a["sha256"], "size": a["size"], "images": (a.get("meta") or {}).get("images", [])}
              for a in by_kind.get("chart", [])]
    files = [{"name": a["name"], "url": a["ref"], "sha256": a["sha256"], "size": a["size"]} for a in by_kind.get("file", [])]
    models = [{"name": a["name"], "source": a["ref"], "revision": (a.get("meta") or {}).get("revision"),
               "files": len(a.get("paths") or []), "size": a["size"]} for a in by_kind.get("model", [])]
    other = {k: len(v) for k, v in by_kind.items() if k not in ("image", "chart", "file", "model")}
    return {
        "bundle": str(layout.root), "name": index.get("name"), "version": index.get("version"),
        "created": index.get("created"), "platforms": index.get("platforms", []),
        "signed": layout.index_sig.is_file(), "images": images, "charts": charts, "files": files, "models": models,
        "other": other, "totalSize": sum(f["size"] for f in index["files"]), "fileCount": len(index["files"]),
    }
