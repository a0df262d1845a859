"""Models into models/<name>/…, file by file, each file's sha256 recorded.

Sources:
  hf://ORG/REPO@REVISION   Hugging Face (or an internal mirror: the entry's `endpoint`, else HF_ENDPOINT).
                           The revision is resolved to a commit; the hub's LFS sha256 is checked for every
                           LFS file; a token (HF_TOKEN / huggingface-cli login) is sent but never logged.
  file:///dir, /dir, ./dir a local directory (relative paths are relative to the manifest's folder);
                           symlinks are followed (a Hugging Face cache snapshot is a tree of symlinks).
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from installer.bundle.manifest import Model
from installer.collect.files import copy_local, http_download, local_path
from installer.core.errors import LockDriftError, SourceError
from installer.core.hashing import fsync_rename, sha256_file
from installer.core.progress import Progress
from installer.core.tree import prune_tree

_HF = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)@(?P<rev>[\w.-]+)$")
_SKIP_DIRS = {".git", ".cache", ".huggingface"}


@dataclass
class RemoteFile:
    path: str
    size: int | None
    lfs_sha256: str | None  # the hub's sha256 for LFS files; None for small git-stored files


@dataclass
class ModelFile:
    path: str  # relative to models/<name>/
    sha256: str
    size: int
    fetched: bool


@dataclass
class ModelResult:
    name: str
    source: str
    revision: str
    dir: Path
    files: list[ModelFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def parse_hf(source: str) -> tuple[str, str]:
    m = _HF.match(source)
    if not m:
        raise SourceError(f"{source!r}: not hf://ORG/REPO@REVISION")
    return m["repo"], m["rev"]


def hf_endpoint(model: Model) -> str:
    return (model.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def safe_relpath(path: str, label: str) -> str:
    """A repository file name, refused if it could escape models/<name>/."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise SourceError(f"{label}: refusing file name {path!r} (it would escape the model folder)")
    return p.as_posix()


def _allowed(path: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatch(path, pat) for pat in patterns)


def remote_files_from_info(info: Any, patterns: list[str] | None, label: str) -> tuple[str, list[RemoteFile]]:
    """(commit sha, files) from a huggingface_hub ModelInfo fetched with files_metadata=True."""
    commit = getattr(info, "sha", None)
    if not commit:
        raise SourceError(f"{label}: the hub did not say which commit the revision is")
    out: list[RemoteFile] = []
    for s in getattr(info, "siblings", None) or []:
        path = safe_relpath(s.rfilename, label)
        if not _allowed(path, patterns):
            continue
        lfs = getattr(s, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        if isinstance(lfs, dict):
            sha = lfs.get("sha256")
        out.append(RemoteFile(path, getattr(s, "size", None), sha))
    if not out:
        raise SourceError(f"{label}: no files at this revision" + (" match allowPatterns" if patterns else ""))
    return commit, sorted(out, key=lambda f: f.path)


def resolve_hf(model: Model, api: Any = None) -> tuple[str, str, list[RemoteFile]]:
    """(repo id, commit, files) for an hf:// source; the hub is asked once, with file metadata."""
    repo_id, rev = parse_hf(model.source)
    label = f"model {model.name} ({model.source})"
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hf_endpoint(model))
    try:
        info = api.model_info(repo_id, revision=rev, files_metadata=True)
    except Exception as e:  # huggingface_hub raises RepositoryNotFoundError, RevisionNotFoundError, HTTP errors…
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SourceError(f"{label}: cannot resolve on {hf_endpoint(model)}: {type(e).__name__}: {msg}") from None
    commit, files = remote_files_from_info(info, model.allowPatterns, label)
    return repo_id, commit, files


def local_files(root: Path, patterns: list[str] | None, label: str) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise SourceError(f"{label}: {root} is not a directory")
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_file() and _allowed(rel, patterns):
                out.append((rel, p))
    if not out:
        raise SourceError(f"{label}: {root} holds no files" + (" matching allowPatterns" if patterns else ""))
    return sorted(out)


def _check_locked(label: str, locked: dict | None, revision: str, files: dict[str, str | None]) -> None:
    """Compare what the source offers now with the lock entry; None sha256 means 'not known yet'."""
    if locked is None:
        raise LockDriftError(f"{label}: not in the lock file (rebuild without --locked to add it)")
    if locked.get("revision") != revision:
        raise LockDriftError(f"{label}: revision {revision} differs from the lock's {locked.get('revision')}")
    lfiles: dict[str, str] = locked.get("files") or {}
    for path in sorted(set(files) ^ set(lfiles)):
        where = "now at the source but not in the lock" if path in files else "in the lock but no longer at the source"
        raise LockDriftError(f"{label}: file {path} is {where}")
    for path, sha in files.items():
        if sha is not None and sha != lfiles[path]:
            raise LockDriftError(f"{label}: file {path} sha256 {sha} differs from the lock's {lfiles[path]}")


def _prune(dest: Path, keep: set[str]) -> None:
    prune_tree(dest, lambda p: p.relative_to(dest).as_posix() in keep)


def fetch_model(model: Model, models_dir: Path, tmp_dir: Path, progress: Progress | None = None,
                base: Path | None = None, locked: dict | None = None, enforce_lock: bool = False,
                api: Any = None) -> ModelResult:
    progress = progress or Progress()
    dest = models_dir / model.name
    label = f"model {model.name}"
    work = tmp_dir / "models" / model.name
    if model.source.startswith("hf://"):
        result = _fetch_hf(model, dest, work, progress, locked, enforce_lock, api, label)
    else:
        result = _fetch_local(model, dest, work, progress, base, locked, enforce_lock, label)
    _prune(dest, {f.path for f in result.files})
    shutil.rmtree(work, ignore_errors=True)
    return result


def _present(final: Path, want_sha: str | None, progress: Progress, label: str) -> str | None:
    """sha256 of an already stored file when it matches want_sha, else None."""
    if want_sha is None or not final.is_file():
        return None
    with progress.task(f"check {label}", final.stat().st_size) as advance:
        sha = sha256_file(final, advance)
    return sha if sha == want_sha else None


def _fetch_hf(model: Model, dest: Path, work: Path, progress: Progress, locked: dict | None, enforce: bool,
              api: Any, label: str) -> ModelResult:
    from huggingface_hub import get_token, hf_hub_url

    repo_id, commit, remote = resolve_hf(model, api)
    if enforce:
        _check_locked(label, locked, commit, {f.path: f.lfs_sha256 for f in remote})
    lfiles = (locked or {}).get("files") or {} if (locked or {}).get("revision") == commit else {}
    token = get_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = hf_endpoint(model)
    result = ModelResult(model.name, model.source, commit, dest)
    for rf in remote:
        final = dest / rf.path
        want = rf.lfs_sha256 or lfiles.get(rf.path)
        sha = _present(final, want, progress, f"{model.name}/{rf.path}")
        if sha:
            progress.counters.reused(final.stat().st_size)
            result.files.append(ModelFile(rf.path, sha, final.stat().st_size, fetched=False))
            continue
        part = work / (rf.path + ".part")
        url = hf_hub_url(repo_id, rf.path, revision=commit, endpoint=endpoint)
        sha = http_download(url, part, f"{model.name}/{rf.path}", progress, headers=headers)
        if rf.lfs_sha256 and sha != rf.lfs_sha256:
            part.unlink(missing_ok=True)
            raise SourceError(f"{label}: file {rf.path}: sha256 {sha} differs from the hub's LFS sha256 {rf.lfs_sha256}")
        if enforce and sha != (locked or {}).get("files", {}).get(rf.path):
            part.unlink(missing_ok=True)
            raise LockDriftError(f"{label}: file {rf.path} sha256 {sha} differs from the lock's "
                                 f"{(locked or {}).get('files', {}).get(rf.path)}")
        size = part.stat().st_size
        if rf.size is not None and size != rf.size:
            part.unlink(missing_ok=True)
            raise SourceError(f"{label}: file {rf.path}: got {size} bytes, the hub says {rf.size}")
        fsync_rename(part, final)
        result.files.append(ModelFile(rf.path, sha, size, fetched=True))
    return result


def _fetch_local(model: Model, dest: Path, work: Path, progress: Progress, base: Path | None,
                 locked: dict | None, enforce: bool, label: str) -> ModelResult:
    root = local_path(model.source, base)
    assert root is not None
    files = local_files(root, model.allowPatterns, f"{label} ({model.source})")
    # Hash the source first: it is what drift is judged on, and it tells us which stored files are current.
    hashed: dict[str, str] = {}
    for rel, src in files:
        with progress.task(f"hash {model.name}/{rel}", src.stat().st_size) as advance:
            hashed[rel] = sha256_file(src, advance)
    if enforce:
        _check_locked(label, locked, "local", hashed)
    result = ModelResult(model.name, model.source, "local", dest)
    for rel, src in files:
        final = dest / rel
        sha = _present(final, hashed[rel], progress, f"{model.name}/{rel}")
        if sha:
            progress.counters.reused(final.stat().st_size)
            result.files.append(ModelFile(rel, sha, final.stat().st_size, fetched=False))
            continue
        part = work / (rel + ".part")
        sha = copy_local(src, part, f"{model.name}/{rel}", progress)
        if sha != hashed[rel]:
            part.unlink(missing_ok=True)
            raise SourceError(f"{label}: file {rel} changed while it was being copied")
        size = part.stat().st_size
        fsync_rename(part, final)
        result.files.append(ModelFile(rel, sha, size, fetched=True))
    return result
