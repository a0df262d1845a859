"""In-memory archives for tests."""
from __future__ import annotations

import gzip
import io
import tarfile


def tgz(files: dict[str, bytes]) -> bytes:
    """A gzip'd tar of {name: bytes}, byte-for-byte the same each call (mtime 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)
