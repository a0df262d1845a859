"""The bundle on disk.

    BUNDLE/
      index.json          every artifact and every file (path, size, sha256); written last
      index.json.sig      detached cosign-format signature over the exact bytes of index.json
      index.sigstore.json optional keyless Sigstore bundle over index.json
      manifest.yaml       the input manifest, as given
      lock.yaml           resolved digests
      oci/                one OCI image layout (image-spec 1.1) for all images and their signatures
      charts/ files/ models/<name>/ sbom/ os/<release>/ tools/ bootstrap.py
      .tmp/               partial downloads; never part of a finished bundle

Anything on disk that index.json does not list is an error at verify time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from installer.bundle.artifacts import BundleIndex
from installer.core.errors import BundleError
from installer.core.safe_read import read_regular_file

INDEX = "index.json"
INDEX_SIG = "index.json.sig"
INDEX_SIGSTORE = "index.sigstore.json"
# Files that live beside index.json but cannot be listed in it (they sign it, or they are reports about it).
UNINDEXED = {INDEX, INDEX_SIG, INDEX_SIGSTORE}
INDEX_API_VERSION = "medai/v1"  # the index schema this medai writes and reads
MAX_INDEX = 64 * 1024 * 1024  # index.json is read whole: a larger (or sparse 40 GiB) one is refused by its size
MAX_SIGSTORE = 4 * 1024 * 1024  # index.sigstore.json, sigstore/trusted_root.json


def parse_index_bytes(raw: bytes, where: Path) -> BundleIndex:
    """index.json's bytes as a BundleIndex, or BundleError naming `where` (parse only bytes whose signature was
    checked)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("kind") != "BundleIndex" or not isinstance(data.get("files"), list):
        raise BundleError(f"{where}: not a medai bundle index (kind BundleIndex with a files list)")
    if data.get("apiVersion", INDEX_API_VERSION) != INDEX_API_VERSION:
        raise BundleError(f"{where}: index apiVersion {data['apiVersion']!r}: this medai reads {INDEX_API_VERSION}; "
                          "run the medai the bundle carries (bootstrap.py)")
    return BundleIndex(data)


@dataclass(frozen=True)
class BundleLayout:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> BundleLayout:
        return cls(Path(root).resolve())

    @property
    def index(self) -> Path:
        return self.root / INDEX

    @property
    def index_sig(self) -> Path:
        return self.root / INDEX_SIG

    @property
    def index_sigstore(self) -> Path:
        return self.root / INDEX_SIGSTORE

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "lock.yaml"

    @property
    def oci(self) -> Path:
        return self.root / "oci"

    @property
    def charts(self) -> Path:
        return self.root / "charts"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def sbom(self) -> Path:
        return self.root / "sbom"

    @property
    def os(self) -> Path:
        return self.root / "os"

    @property
    def tools(self) -> Path:
        return self.root / "tools"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def tmp(self) -> Path:
        """Partial downloads live here, on the same filesystem, so a checked file is renamed into place atomically."""
        return self.root / ".tmp"

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def require_index(self) -> None:
        """One-line errors for a missing directory or index, without parsing anything."""
        if not self.root.is_dir():
            raise BundleError(f"{self.root}: bundle directory not found")
        if not self.index.is_file() and not self.index.is_symlink() and not self.index.exists():
            raise BundleError(f"{self.index}: missing: not a finished bundle (an interrupted or failed build leaves no index)")

    def read_index_bytes(self) -> bytes:
        """index.json's exact bytes: a regular file (no symlink, FIFO or device), at most MAX_INDEX bytes."""

        self.require_index()
        data = read_regular_file(self.index, MAX_INDEX, BundleError, "not a bundle index")
        if data is None:
            raise BundleError(f"{self.index}: missing: not a finished bundle")
        return data

    def read_index(self) -> BundleIndex:
        return self.parse_index(self.read_index_bytes())

    def parse_index(self, raw: bytes) -> BundleIndex:
        return parse_index_bytes(raw, self.index)


def archive_name(chart) -> str:
    """A chart's archive under charts/: <name>-<version>.tgz."""
    return f"{chart.name}-{chart.version}.tgz"
