"""Re-hash a bundle against its index.json: streaming, in parallel, every problem reported by name.

Signature checks (index signature, image signatures) live in installer.trust and build on this result.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from installer.bundle.artifacts import BundleIndex
from installer.bundle.index import walk_files
from installer.bundle.layout import BundleLayout
from installer.core.hashing import sha256_file


@dataclass
class Problem:
    kind: str  # missing | altered | extra | unsafe | size
    path: str
    artifact: str = ""
    detail: str = ""

    def __str__(self) -> str:
        who = f" ({self.artifact})" if self.artifact else ""
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.kind}: {self.path}{who}{extra}"


@dataclass
class FileCheck:
    path: str
    ok: bool
    sha256: str
    size: int


@dataclass
class VerifyResult:
    bundle: Path
    index: dict
    problems: list[Problem] = field(default_factory=list)
    checked: list[FileCheck] = field(default_factory=list)
    bytes_hashed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def artifact_owners(index: dict) -> dict[str, str]:
    """path -> 'kind name' of the artifact the file belongs to, so errors name what the operator knows."""
    owners: dict[str, str] = {}
    for a in BundleIndex.of(index).artifacts():
        for p in a.paths:
            if p and p not in owners:
                owners[p] = a.label
    return owners


def _inside(root: Path, rel: str) -> bool:
    if rel.startswith("/") or ".." in Path(rel).parts:
        return False
    return True


def verify_files(
    bundle: str | Path,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> VerifyResult:
    layout = BundleLayout.at(bundle)
    index = layout.read_index()
    owners = artifact_owners(index)
    res = VerifyResult(bundle=layout.root, index=index)
    listed: dict[str, dict] = {}
    todo: list[tuple[dict, Path]] = []
    for entry in index["files"]:
        rel = entry.get("path", "")
        listed[rel] = entry
        owner = owners.get(rel, "")
        if not _inside(layout.root, rel):
            res.problems.append(Problem("unsafe", rel, owner, "path escapes the bundle"))
            continue
        p = layout.root / rel
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            res.problems.append(Problem("missing", rel, owner))
            continue
        if stat.S_ISLNK(st.st_mode):
            res.problems.append(Problem("unsafe", rel, owner, f"symlink to {os.readlink(p)}"))
            continue
        if not stat.S_ISREG(st.st_mode):
            res.problems.append(Problem("unsafe", rel, owner, "not a regular file"))
            continue
        # a symlinked parent directory would let a listed path resolve outside the bundle
        if not p.resolve().is_relative_to(layout.root):
            res.problems.append(Problem("unsafe", rel, owner, f"resolves outside the bundle to {p.resolve()}"))
            continue
        if st.st_size != entry.get("size"):
            res.problems.append(Problem("altered", rel, owner, f"size {st.st_size}, index says {entry.get('size')}"))
            continue
        todo.append((entry, p))

    for p in walk_files(layout):
        rel = p.relative_to(layout.root).as_posix()
        if rel not in listed:
            detail = f"symlink to {os.readlink(p)}" if p.is_symlink() else "not listed in index.json"
            res.problems.append(Problem("unsafe" if p.is_symlink() else "extra", rel, "", detail))

    # Largest first, so the long files start early and both cores stay busy to the end.
    todo.sort(key=lambda t: -t[0]["size"])

    def check(item: tuple[dict, Path]) -> FileCheck:
        entry, p = item
        sha = sha256_file(p, progress)
        return FileCheck(entry["path"], sha == entry.get("sha256"), sha, entry["size"])

    with ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 2)) as ex:
        for fc in ex.map(check, todo):
            res.checked.append(fc)
            res.bytes_hashed += fc.size
            if not fc.ok:
                res.problems.append(Problem("altered", fc.path, owners.get(fc.path, ""), "sha256 differs from index.json"))
    res.problems.sort(key=lambda pr: (pr.kind, pr.path))
    return res
