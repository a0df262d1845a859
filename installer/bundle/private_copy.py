"""Copy a bundle's files into a private working copy, hashing each byte once, as it is copied.

The source is anything that can open a bundle member as a binary stream: a bundle directory on the stick
(`directory_opener`), or the parts of a split file on FAT32 media (installer.media.export). Nothing is
trusted from the source: each entry's path, size and sha256 come from the caller (the verified index),
a stream is read to at most the listed size, and a file is renamed to its name only after its digest matched.
A rerun skips files already in place with the listed size and digest (the copy is resumable).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from installer.core.atomic import fsync_dir
from installer.core.errors import BundleError
from installer.core.hashing import CHUNK, sha256_file
from installer.core.safe_read import open_regular

Opener = Callable[[str], BinaryIO]


def safe_relpath(rel: str, what: str = "path") -> str:
    """A listed path must be relative, normalised and stay inside its root; refused otherwise."""
    p = PurePosixPath(rel)
    if (not rel or rel != p.as_posix() or p.is_absolute() or any(part in ("..", ".", "") for part in p.parts)
            or "\\" in rel or any(ord(c) < 0x20 or ord(c) == 0x7F for c in rel)):
        raise BundleError(f"{what} {rel!r}: not a normalised relative path inside the bundle: refused")
    return rel


def directory_opener(root: str | os.PathLike) -> Opener:
    """Open members of a bundle directory, never following a symlink on the way (O_NOFOLLOW per component)."""
    base = Path(root)

    def open_member(rel: str) -> BinaryIO:
        safe_relpath(rel)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            parts = rel.split("/")
            for part in parts[:-1]:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
            # a regular file checked before it is opened for reading: a planted FIFO must not hang the copy
            ffd = open_regular(parts[-1], BundleError, dir_fd=fd, shown=f"{base}/{rel}")
        except OSError as e:
            raise BundleError(f"{base}/{rel}: cannot open ({e.strerror})") from None
        finally:
            os.close(fd)
        return os.fdopen(ffd, "rb", buffering=0)

    return open_member


@dataclass
class CopyResult:
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0


def _copy_one(open_member: Opener, entry: dict, dest: Path, progress: Callable[[int], None] | None) -> int:
    rel, size, want = entry["path"], int(entry["size"]), entry["sha256"]
    final = dest / rel
    if final.is_file() and not final.is_symlink() and final.stat().st_size == size and sha256_file(final) == want:
        return -1
    d = dest
    for part in PurePosixPath(rel).parts[:-1]:  # no write through a link planted in the destination
        d = d / part
        if d.is_symlink():
            raise BundleError(f"{d}: a symlink in the destination: refused, nothing written through it")
    if final.is_symlink() or (final.exists() and not final.is_file()):
        _remove(final)
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.part"  # unique: never another run's file
    h = hashlib.sha256()
    n = 0
    with open_member(rel) as src, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600),
                                       "wb") as out:
        while n < size:
            chunk = src.read(min(CHUNK, size - n))
            if not chunk:
                break
            h.update(chunk)
            out.write(chunk)
            n += len(chunk)
            if progress:
                progress(len(chunk))
        longer = n == size and src.read(1)
        out.flush()
        os.fsync(out.fileno())
    if n != size or longer:
        tmp.unlink(missing_ok=True)
        got = f"more than {size}" if longer else str(n)
        raise BundleError(f"{rel}: {got} bytes on the medium, the signed index says {size}: refused")
    if h.hexdigest() != want:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"{rel}: sha256 {h.hexdigest()} differs from the signed index ({want}): refused")
    os.replace(tmp, final)
    return size


def copy_verified(
    open_member: Opener,
    entries: Iterable[dict],
    dest: str | os.PathLike,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> CopyResult:
    """Copy every entry ({path, size, sha256}) from the source into `dest` (created 0700), checked as it streams.

    Raises BundleError naming the first file that is missing, of the wrong size or digest, or badly named;
    files already copied stay (a rerun resumes). Directories are fsynced at the end.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    todo = sorted(entries, key=lambda e: -int(e["size"]))  # largest first: both cores busy to the end
    for e in todo:
        safe_relpath(e["path"])
    res = CopyResult()
    with ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 2)) as ex:
        for n in ex.map(lambda e: _copy_one(open_member, e, root, progress), todo):
            if n < 0:
                res.skipped += 1
            else:
                res.copied += 1
                res.bytes_copied += n
    for d in sorted({(root / e["path"]).parent for e in todo}, key=lambda p: -len(p.parts)):
        fsync_dir(d)
    fsync_dir(root)
    return res


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_unlisted(root: str | os.PathLike, listed: Iterable[str], keep: Iterable[str] = ()) -> list[str]:
    """Make the private copy hold only what the signed index lists (plus `keep`, e.g. the index itself): every
    other file, symlink, special file or directory under `root` is removed before the copy is used (a file
    planted there, or left by an older bundle, would otherwise be read by Ansible). Returns what was removed."""
    base = Path(root)
    files = set(listed) | set(keep)
    dirs = {p.as_posix() for f in files for p in PurePosixPath(f).parents if p.as_posix() != "."}
    removed = []
    if not base.is_dir():
        return removed
    for top, subdirs, names in os.walk(base):
        here = Path(top)
        for name in sorted(subdirs):
            full = here / name
            rel = full.relative_to(base).as_posix()
            if full.is_symlink() or rel not in dirs:
                _remove(full)
                subdirs.remove(name)
                removed.append(rel)
        for name in names:
            full = here / name
            rel = full.relative_to(base).as_posix()
            if rel not in files or not stat.S_ISREG(os.lstat(full).st_mode):
                full.unlink()
                removed.append(rel)
    return sorted(removed)
