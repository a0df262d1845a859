"""Crash-safe writes: temp file in the same directory, fsync, rename, fsync the directory.

One helper for every file whose half-written state would mislead a later reader (index, signature, lock,
run records, reports, encrypted key shares). A reader sees either the old file or the whole new one, and
after return both the content and the name are on the device (a stick pulled at once still carries it).
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or create inside `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some FUSE filesystems refuse fsync on a directory; the file itself was fsynced
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Write `data` to `path` atomically and durably; the file is created with `mode` (never wider)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
                raise  # FAT (fusefat) has no permissions to set; anything else is a real failure
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(final.parent)
    return final


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
