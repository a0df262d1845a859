"""Read a small file from untrusted media: a regular file, never through a symlink, at most `limit` bytes."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from installer.core.errors import MedaiError


def read_regular_file(path: str | os.PathLike, limit: int, error: type[MedaiError], what: str = "") -> bytes | None:
    """The file's bytes; None when it does not exist. Raises `error` naming the path for a symlink, a special
    file or a file over `limit` bytes (`what` says what the file should have been)."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror}; a symlink is refused)") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise error(f"{p}: not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{p}: larger than {limit} bytes{': ' + what if what else ': refused'}")
    return data
