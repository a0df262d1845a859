"""The cached platform-images archive is re-hashed before reuse: one altered in the cache is
rebuilt from the verified working copy, never shipped to the nodes."""
from __future__ import annotations

import hashlib
import tarfile

from installer.deploy.plan import platform_images_archive


def test_an_altered_cached_archive_is_rebuilt(tmp_path):
    root = tmp_path / "copy"
    (root / "oci" / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci" / "index.json").write_text('{"manifests": []}\n')
    (root / "oci" / "blobs" / "sha256" / "ab").write_bytes(b"layer bytes")
    index = {"files": [{"path": "oci/index.json"}, {"path": "oci/blobs/sha256/ab"}]}
    cache = tmp_path / "cache"
    first = platform_images_archive(root, index, cache, "f" * 64)
    good = hashlib.sha256(first.read_bytes()).hexdigest()
    assert platform_images_archive(root, index, cache, "f" * 64) == first  # reused while it hashes right

    first.write_bytes(first.read_bytes().replace(b"layer bytes", b"EVIL! bytes"))  # same size, other bytes
    again = platform_images_archive(root, index, cache, "f" * 64)
    assert hashlib.sha256(again.read_bytes()).hexdigest() == good
    with tarfile.open(again) as tar:
        assert tar.extractfile("blobs/sha256/ab").read() == b"layer bytes"
