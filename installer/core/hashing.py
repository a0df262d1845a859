"""Streaming SHA-256. hashlib releases the GIL on large updates, so threads hash files in parallel."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from installer.core.atomic import fsync_dir

CHUNK = 4 * 1024 * 1024


def sha256_file(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            if progress:
                progress(n)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def digest_hex(digest: str) -> str:
    """'sha256:abc…' -> 'abc…' (only sha256 is accepted)."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not is_sha256_hex(hexpart):
        raise ValueError(f"unsupported digest {digest!r}: only sha256 is accepted")
    return hexpart


def fsync_rename(tmp: Path, final: Path) -> None:
    """Make a fully written temp file durable, then atomically give it its final name."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    fsync_dir(final.parent)
