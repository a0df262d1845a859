"""Read files from untrusted media: a regular file, never through a symlink, never a blocking open, with a cap.

A FIFO planted in place of `index.json.sig` would block a plain open() forever, a device or a 40 GiB sparse file
would be read without end: every file from a stick is opened here. The open is in two steps, with no race: an
O_PATH|O_NOFOLLOW descriptor (which opens nothing: a FIFO does not block it), fstat'ed to be a regular file, then
the same inode reopened for reading through /proc/self/fd (O_NONBLOCK where /proc is missing; fusefat mishandles
O_NONBLOCK, so it is not the first choice).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from installer.core.errors import MedaiError

NOT_REGULAR = "not a regular file (a FIFO, socket, device or directory is refused)"


def open_regular(path: str | os.PathLike, error: type[MedaiError], dir_fd: int | None = None,
                 shown: str | os.PathLike | None = None) -> int:
    """A read-only descriptor of the regular file `path` (relative to `dir_fd` when given); FileNotFoundError
    when it does not exist; `error` naming it (`shown`, else `path`) for a symlink or a special file."""
    name = shown if shown is not None else path
    try:
        pfd = os.open(path, os.O_PATH | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"{name}: cannot open ({e.strerror})") from None
    try:
        st = os.fstat(pfd)
        if stat.S_ISLNK(st.st_mode):
            raise error(f"{name}: cannot open (a symlink is refused)")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{name}: {NOT_REGULAR}")
        try:
            fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY)
        except FileNotFoundError:  # no /proc: a non-blocking open of the same name, checked again
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            os.set_blocking(fd, True)
        except OSError as e:
            raise error(f"{name}: cannot open ({e.strerror})") from None
    finally:
        os.close(pfd)
    st2 = os.fstat(fd)
    if not stat.S_ISREG(st2.st_mode) or (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise error(f"{name}: {NOT_REGULAR} (changed while opened)")
    return fd


def read_regular_file(path: str | os.PathLike, limit: int, error: type[MedaiError], what: str = "") -> bytes | None:
    """The file's bytes; None when it does not exist. Raises `error` naming the path for a symlink, a special
    file or a file over `limit` bytes (`what` says what the file should have been); the size is checked with
    fstat before anything is read, and never more than `limit` + 1 bytes are read."""
    p = Path(path)
    try:
        fd = open_regular(p, error)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        if os.fstat(f.fileno()).st_size > limit:
            raise error(f"{p}: larger than {limit} bytes{': ' + what if what else ': refused'}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{p}: larger than {limit} bytes{': ' + what if what else ': refused'}")
    return data
