"""index.json: the one document that lists every artifact and pins every file of a bundle.

    {"apiVersion": "medai/v1", "kind": "BundleIndex", "name", "version", "created", "manifestSha256",
     "platforms": [...],
     "artifacts": [{"kind": image|chart|file|model|sbom|ospkgs|tool|meta, "name", "ref", "path", "size", "sha256",
                    "digest" (images: manifest digest), "paths" (every file of the artifact), "neededBy", ...}],
     "files": [{"path", "size", "sha256"}, ...]}       # every file in the bundle but UNINDEXED ones, sorted

Serialised canonically (sorted keys, no spaces variance) so a rebuild from the same inputs gives the same bytes,
except for "created".
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.bundle.layout import INDEX_API_VERSION, UNINDEXED, BundleLayout
from installer.core.atomic import atomic_write_bytes
from installer.core.hashing import is_sha256_hex, sha256_file


def walk_files(layout: BundleLayout) -> Iterator[Path]:
    """Every entry under the bundle that index.json must account for (files, symlinks, specials)."""
    root = layout.root
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        for name in list(dirnames):
            p = Path(dirpath) / name
            if p.is_symlink():  # a symlinked directory is reported as an entry, never followed
                yield p
        for name in filenames:
            p = Path(dirpath) / name
            if rel_dir == Path(".") and name in UNINDEXED:
                continue
            yield p


def _blob_sha(rel: str) -> str | None:
    # Blobs are renamed into oci/blobs/sha256/<hex> only after their digest was checked.
    parts = rel.split("/")
    if len(parts) == 4 and parts[:3] == ["oci", "blobs", "sha256"] and is_sha256_hex(parts[3]):
        return parts[3]
    return None


def file_entries(layout: BundleLayout, known: dict[str, str], workers: int | None = None) -> list[dict]:
    """Size and sha256 of every file: from ``known`` (hashed while written), blob names, or hashed now."""
    paths = sorted(walk_files(layout), key=lambda p: layout.rel(p) if not p.is_symlink() else str(p))
    todo: list[tuple[str, Path]] = []
    out: dict[str, dict] = {}
    for p in paths:
        rel = p.relative_to(layout.root).as_posix()
        if p.is_symlink() or not p.is_file():
            raise ValueError(f"{rel}: not a regular file (symlinks and special files are not allowed in a bundle)")
        sha = known.get(rel) or _blob_sha(rel)
        if sha:
            out[rel] = {"path": rel, "size": p.stat().st_size, "sha256": sha}
        else:
            todo.append((rel, p))
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2))) as ex:
        for (rel, p), sha in zip(todo, ex.map(lambda t: sha256_file(t[1]), todo)):
            out[rel] = {"path": rel, "size": p.stat().st_size, "sha256": sha}
    return [out[k] for k in sorted(out)]


def dumps(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def write_index(layout: BundleLayout, header: dict, artifacts: list[Artifact], known: dict[str, str]) -> bytes:
    """Write index.json last, atomically. Returns its exact bytes (what gets signed)."""
    doc = {
        "apiVersion": INDEX_API_VERSION,
        "kind": "BundleIndex",
        **header,
        "artifacts": sorted((a.to_json() for a in artifacts), key=lambda a: (a["kind"], a["name"], a["path"])),
        "files": file_entries(layout, known),
    }
    data = dumps(doc)
    atomic_write_bytes(layout.index, data)
    return data
