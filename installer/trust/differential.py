"""Differential bundles: carry only what the installed bundle lacks; the signed index names its base.

`medai bundle build --base INDEX` removes from the output every file whose path, size and sha256 the base
already holds, and adds two fields to index.json (so both are covered by its signature):

    "base":     {"indexSha256", "name", "version"}      # the exact index the differential was built on
    "fromBase": [{"path", "size", "sha256"}, ...]       # files the union takes from the base, pinned here

The base given may itself be differential: its own "fromBase" entries count as held. At install/upgrade time the
base must be what the cluster has installed (installer.deploy.base_check); `bundle verify DIFF --base DIR`
checks the union (union_entries).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from installer.bundle.artifacts import BundleIndex
from installer.bundle.index import dumps, file_entries
from installer.bundle.layout import BundleLayout
from installer.bundle.private_copy import copy_verified, directory_opener
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import BundleError
from installer.oci.layout import OCILayout
from installer.trust.keys import load_public_key
from installer.trust.verify import check_layout_image, verify_bundle


def read_base_index(path: str | os.PathLike) -> tuple[bytes, dict]:
    """A base given as its index.json or as a bundle directory holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / "index.json"
    try:
        data = p.read_bytes()
        doc = json.loads(data)
    except OSError as e:
        raise BundleError(f"{p}: cannot read the base index: {e.strerror}") from None
    except ValueError as e:
        raise BundleError(f"{p}: the base index is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "BundleIndex" or not isinstance(doc.get("files"), list):
        raise BundleError(f"{p}: not a medai bundle index (kind BundleIndex with a files list)")
    return data, doc


def held_files(index: dict) -> dict[str, dict]:
    """Every file a bundle stands for: what it carries and, when differential, what it takes from its base."""
    out = {f["path"]: f for f in index.get("fromBase") or []}
    out.update({f["path"]: f for f in index["files"]})
    return out


def prune_to_base(layout: BundleLayout, base: str | os.PathLike, known: dict[str, str]) -> dict:
    """Delete from the bundle directory every file the base holds identically; returns the header fields."""
    data, doc = read_base_index(base)
    held = held_files(doc)
    try:
        entries = file_entries(layout, known)
    except ValueError as e:
        raise BundleError(f"{layout.root}: {e}") from None
    from_base = []
    for e in entries:
        known[e["path"]] = e["sha256"]  # write_index need not hash it again
        b = held.get(e["path"])
        if b is not None and b["size"] == e["size"] and b["sha256"] == e["sha256"]:
            (layout.root / e["path"]).unlink()
            from_base.append({"path": e["path"], "size": e["size"], "sha256": e["sha256"]})
    for d in sorted({p for p, _, _ in os.walk(layout.root)}, key=len, reverse=True):
        if d != str(layout.root) and not os.listdir(d):
            os.rmdir(d)
    return {"base": {"indexSha256": hashlib.sha256(data).hexdigest(), "name": doc.get("name"),
                     "version": doc.get("version")},
            "fromBase": from_base}


def base_digest(index: dict) -> str | None:
    b = index.get("base")
    return b.get("indexSha256") if isinstance(b, dict) else None


def union_problems(diff_index: dict, base_index_bytes: bytes, base_index: dict, base_verified_files: set[str]) -> list[str]:
    """What keeps DIFF + BASE from being the whole bundle: wrong base, or a pinned base file absent or different.

    ``base_verified_files``: paths of the base directory whose bytes were re-hashed against its index and matched.
    """
    want = base_digest(diff_index)
    if want is None:
        return ["index.json: not a differential bundle (no base field): --base does not apply"]
    got = hashlib.sha256(base_index_bytes).hexdigest()
    if got != want:
        return [f"base: the differential bundle was built on index sha256 {want}, the given base is {got}"]
    held = held_files(base_index)
    problems = []
    for f in diff_index.get("fromBase") or []:
        b = held.get(f["path"])
        if b is None:
            problems.append(f"missing: {f['path']}: pinned from the base, absent from it")
        elif b["size"] != f["size"] or b["sha256"] != f["sha256"]:
            problems.append(f"altered: {f['path']}: the base's index disagrees with the differential's pin")
        elif f["path"] not in base_verified_files:
            problems.append(f"missing: {f['path']}: listed in the base index but not verified in the base directory")
    carried = {f["path"] for f in diff_index["files"]} | {f["path"] for f in diff_index.get("fromBase") or []}
    for a in BundleIndex.of(diff_index).artifacts():
        for p in a.paths:
            if p and p not in carried:
                problems.append(f"missing: {p} ({a.label}): in neither the differential nor its base")
    return problems


def verify_union(diff: str | os.PathLike, base: str | os.PathLike, key: str | os.PathLike | None) -> tuple[list[str], dict]:
    """`bundle verify DIFF --base DIR`: both bundles fully verified (signatures with ``key``), then the union.

    Returns (problems, summary). The base directory must hold every file it lists (a full bundle or a union
    working copy whose index lists them all)."""

    d = verify_bundle(diff, key=key, write_report=False)
    b = verify_bundle(base, key=key, write_report=False)
    # an image's signature blobs may come from the base: those checks are redone below over both layouts
    problems = [f"differential: {p}" for p in d.problems if not p.startswith("image ")]
    problems += [f"base: {p}" for p in b.problems]
    if key is not None:
        problems += [f"union: {p}" for p in _union_image_problems(Path(diff), Path(base), d.files.index if d.files else {}, key)]
    base_layout = BundleLayout.at(base)
    base_bytes = base_layout.index.read_bytes()
    base_doc = json.loads(base_bytes)
    ok_paths = {c.path for c in (b.files.checked if b.files else []) if c.ok}
    problems += union_problems(d.files.index if d.files else {}, base_bytes, base_doc, ok_paths)
    diff_index = d.files.index if d.files else {}
    summary = {"differential": str(Path(diff)), "base": str(Path(base)), "baseIndexSha256": base_digest(diff_index),
               "carried": len(diff_index.get("files", [])), "fromBase": len(diff_index.get("fromBase") or []),
               "signaturesChecked": key is not None}
    return problems, summary


def _union_image_problems(diff: Path, base: Path, diff_index: dict, key) -> list[str]:
    """Image signatures of a differential checked over its blobs and its base's (both already hash-verified)."""

    base_oci = OCILayout(base / "oci", base / ".tmp")

    class UnionLayout(OCILayout):
        def blob_path(self, digest: str) -> Path:
            p = super().blob_path(digest)
            return p if p.exists() else base_oci.blob_path(digest)

    oci = UnionLayout(diff / "oci", diff / ".tmp")
    if not oci.index_path.is_file():
        oci = UnionLayout(base / "oci", base / ".tmp")
    refs = oci.refs() if oci.index_path.is_file() else {}
    pub = load_public_key(key)
    out = []
    for a in BundleIndex.of(diff_index).images():
        if a.digest:
            check = check_layout_image(oci, refs, a.ref or a.name, a.digest, pub)
            if not check.ok:
                out.append(f"image {a.ref or a.name}: {check.detail}")
    return out


def assemble_union(diff: Path, base: Path, dest: Path) -> Path:
    """A private working copy holding the differential's files and the ones it pins from its base, each copied
    through its hash check; its index.json is derived (files = the union) and unsigned: it is used on the control
    host after both signed indexes were verified, and records name the differential's own signed index."""

    idx = json.loads((diff / "index.json").read_bytes())
    carried, pinned = list(idx["files"]), list(idx.get("fromBase") or [])
    (dest / "index.json").unlink(missing_ok=True)
    copy_verified(directory_opener(diff), carried, dest)
    copy_verified(directory_opener(base), pinned, dest)
    union = {**idx, "files": sorted(carried + pinned, key=lambda f: f["path"]),
             "derivedFrom": {"indexSha256": hashlib.sha256((diff / "index.json").read_bytes()).hexdigest(),
                             "base": idx.get("base")}}
    union.pop("fromBase", None)
    union.pop("base", None)  # the union is whole: what it was assembled from is in derivedFrom
    atomic_write_bytes(dest / "index.json", dumps(union))
    return dest
