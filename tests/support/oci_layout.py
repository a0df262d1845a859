"""Write OCI image layouts (image-spec 1.1) from Python, for SBOM tests: layers with any tar entry type
(files with modes, symlinks, hardlinks, directories, whiteouts), gzip / zstd / uncompressed, indexes,
tags and referrers. Everything is reproducible (mtime 0, gzip mtime 0)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "tar": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass
class Entry:
    """One tar member. kind: file | dir | symlink | link (hardlink) ; whiteouts are plain empty files."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    kind: str = "file"
    target: str = ""


def file(path: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(path, data.encode() if isinstance(data, str) else data, mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, kind="symlink", target=target)


def hardlink(path: str, target: str, mode: int = 0o644) -> Entry:
    """Tar records the linked file's mode on the link member too."""
    return Entry(path, mode=mode, kind="link", target=target)


def whiteout(path: str) -> Entry:
    parent, _, name = path.rpartition("/")
    return Entry(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory: str) -> Entry:
    return Entry(f"{directory}/.wh..wh..opq")


def tar_bytes(entries: list[Entry]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mtime = 0
            info.mode = e.mode
            if e.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.target
            elif e.kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, e.target
            else:
                info.size = len(e.data)
            tf.addfile(info, io.BytesIO(e.data) if e.kind == "file" else None)
    return raw.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(data)
        return out.getvalue()
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


class LayoutWriter:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index: list[dict] = []
        self._save()

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def json_blob(self, doc: dict, media_type: str, **extra) -> dict:
        return self.blob(json.dumps(doc, sort_keys=True).encode(), media_type, **extra)

    def layer(self, entries: list[Entry], how: str = "gzip") -> dict:
        return self.blob(compress(tar_bytes(entries), how), LAYER_MEDIA[how])

    def image(self, layers: list[dict], arch: str = "amd64", created: str | None = "2024-05-01T12:00:00Z",
              tag: str | None = None) -> dict:
        config = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                  "config": {}}
        if created:
            config["created"] = created
        cfg = self.json_blob(config, OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": layers}
        desc = self.json_blob(manifest, OCI_MANIFEST)
        if tag:
            self.add_to_index(desc, tag)
        return desc

    def image_index(self, manifests: list[dict], tag: str | None = None) -> dict:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        desc = self.json_blob(doc, OCI_INDEX)
        if tag:
            self.add_to_index(desc, tag)
        return desc

    def add_to_index(self, desc: dict, name: str | None = None) -> None:
        d = dict(desc)
        if name:
            d["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.index.append(d)
        self._save()

    def _save(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.index}
        (self.root / "index.json").write_text(json.dumps(doc, sort_keys=True, indent=1))
