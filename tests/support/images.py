"""Test images built in Python (no docker, no internet) and pushed with skopeo, the independent tool.

Layers are reproducible tar.gz files (fixed mtimes, gzip mtime 0), so images built from the same base layer
share it byte for byte, as real images do. ``seeded_registry`` pushes a small set into the session's
``registry`` fixture:

    demo/base:1.0   base layer
    demo/app:1.0    base layer + app layer          (shares base with demo/base and demo/tool)
    demo/tool:1.0   base layer + tool layer
    demo/multi:1.0  OCI index: linux/amd64 + linux/arm64 (each base + an arch layer), pushed with --all
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tgz(files: dict[str, bytes]) -> bytes:
    """A reproducible gzip'd tar layer holding ``files`` (path -> content)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mtime = 0
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(files[path]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


class LayoutWriter:
    """Writes blobs + index.json of an OCI layout (test side; independent of installer.oci.layout)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs: list[dict] = []

    def blob(self, data: bytes) -> dict:
        d = _digest(data)
        (self.root / "blobs" / "sha256" / d[7:]).write_bytes(data)
        return {"digest": d, "size": len(data)}

    def image(self, layers: list[bytes], arch: str = "amd64", label: str = "") -> dict:
        """Store config + manifest for ``layers`` (tar.gz bytes); returns the manifest descriptor."""
        diff_ids = [_digest(gzip.decompress(layer)) for layer in layers]
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": {"medai.test": label}} if label else {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            },
            sort_keys=True,
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **self.blob(config)},
            "layers": [{"mediaType": LAYER_GZ, **self.blob(layer)} for layer in layers],
        }
        return {"mediaType": OCI_MANIFEST, **self.blob(json.dumps(manifest, sort_keys=True).encode())}

    def index(self, children: dict[str, dict]) -> dict:
        """An image index over {arch: manifest descriptor}."""
        idx = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{**desc, "platform": {"os": "linux", "architecture": arch}} for arch, desc in sorted(children.items())],
        }
        return {"mediaType": OCI_INDEX, **self.blob(json.dumps(idx, sort_keys=True).encode())}

    def tag(self, name: str, desc: dict) -> None:
        self.refs.append({**desc, "annotations": {"org.opencontainers.image.ref.name": name}})
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.refs}))


def skopeo_push(layout_dir: Path, tag: str, dest: str, all_platforms: bool = False, creds: str | None = None) -> None:
    cmd = ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]
    if all_platforms:
        cmd.append("--all")
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout_dir}:{tag}", f"docker://{dest}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


BASE_LAYER = layer_tgz({f"etc/base/file{i}.txt": f"base file {i}\n".encode() * 200 for i in range(5)})


@dataclass
class SeededImages:
    """References (host:port/repo:tag) of the seeded test images and facts the tests check against."""

    host: str
    base: str
    app: str
    tool: str
    multi: str
    multi_index_digest: str
    base_layer_digest: str

    @property
    def single(self) -> list[str]:
        return [self.base, self.app, self.tool]


def build_seed_layout(root: Path) -> tuple[LayoutWriter, dict[str, str]]:
    w = LayoutWriter(root)
    base = w.image([BASE_LAYER], label="base")
    app = w.image([BASE_LAYER, layer_tgz({"app/run.sh": b"#!/bin/sh\necho app\n"})], label="app")
    tool = w.image([BASE_LAYER, layer_tgz({"tool/tool.txt": b"tool\n" * 100})], label="tool")
    amd = w.image([BASE_LAYER, layer_tgz({"arch.txt": b"amd64\n"})], arch="amd64", label="multi")
    arm = w.image([BASE_LAYER, layer_tgz({"arch.txt": b"arm64\n"})], arch="arm64", label="multi")
    multi = w.index({"amd64": amd, "arm64": arm})
    for tag, desc in (("base", base), ("app", app), ("tool", tool), ("multi", multi)):
        w.tag(tag, desc)
    return w, {"multi": multi["digest"]}


def seed(registry_host: str, workdir: Path, creds: str | None = None) -> SeededImages:
    """Build the seed images in ``workdir`` and push them to ``registry_host`` with skopeo."""
    _, digests = build_seed_layout(workdir)
    refs = {}
    for tag in ("base", "app", "tool", "multi"):
        refs[tag] = f"{registry_host}/demo/{tag}:1.0"
        skopeo_push(workdir, tag, refs[tag], all_platforms=tag == "multi", creds=creds)
    return SeededImages(
        host=registry_host,
        base=refs["base"],
        app=refs["app"],
        tool=refs["tool"],
        multi=refs["multi"],
        multi_index_digest=digests["multi"],
        base_layer_digest=_digest(BASE_LAYER),
    )


def write_random_layer(path: Path, size: int, seed: int) -> tuple[str, str, int]:
    """An uncompressed tar layer of ``size`` pseudo-random bytes, written in chunks (never whole in memory).

    Returns (digest, diff_id, size on disk); for an uncompressed layer digest == diff_id.
    """
    import random

    rnd = random.Random(seed)
    h = hashlib.sha256()
    chunk = 4 * 1024 * 1024

    class _Hashing(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self):
            return True

        def write(self, b):
            h.update(b)
            return self.f.write(b)

    with open(path, "wb") as raw:
        sink = _Hashing(raw)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            info = tarfile.TarInfo("data.bin")
            info.size = size
            info.mtime = 0

            class _Rand(io.RawIOBase):
                left = size

                def readable(self):
                    return True

                def readinto(self, b):
                    n = min(len(b), self.left, chunk)
                    if n <= 0:
                        return 0
                    b[:n] = rnd.randbytes(n)
                    self.left -= n
                    return n

            tf.addfile(info, io.BufferedReader(_Rand(), chunk))
    d = "sha256:" + h.hexdigest()
    return d, d, path.stat().st_size


def write_big_image(root: Path, tag: str, layer_sizes: list[tuple[int, int]], arch: str = "amd64") -> dict:
    """An image in the OCI layout at ``root`` whose layers are random (size, seed) tar layers; blobs are
    streamed to disk. Layers with the same (size, seed) are identical, so images can share them.
    Returns the manifest descriptor (also tagged ``tag`` in the layout)."""
    root = Path(root)
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layers = []
    for size, seed_ in layer_sizes:
        tmp = root / f"layer-{size}-{seed_}.tmp"
        cache = root / f"layer-{size}-{seed_}.digest"
        if cache.exists():
            d, n = cache.read_text().split()
            layers.append({"mediaType": LAYER_TAR, "digest": d, "size": int(n)})
            continue
        d, _, n = write_random_layer(tmp, size, seed_)
        os.replace(tmp, blobs / d[7:])
        cache.write_text(f"{d} {n}")
        layers.append({"mediaType": LAYER_TAR, "digest": d, "size": n})
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}},
        sort_keys=True,
    ).encode()

    def put(data: bytes) -> dict:
        d = _digest(data)
        (blobs / d[7:]).write_bytes(data)
        return {"digest": d, "size": len(data)}

    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, **put(config)}, "layers": layers}
    desc = {"mediaType": OCI_MANIFEST, **put(json.dumps(manifest, sort_keys=True).encode())}
    index_path = root / "index.json"
    refs = json.loads(index_path.read_text())["manifests"] if index_path.exists() else []
    refs = [r for r in refs if r.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    refs.append({**desc, "annotations": {"org.opencontainers.image.ref.name": tag}})
    index_path.write_text(json.dumps({"schemaVersion": 2, "manifests": refs}))
    return desc


@pytest.fixture(scope="session")
def seeded_registry(registry, tmp_path_factory) -> SeededImages:
    """The session ``registry`` with the demo images pushed (see module docstring)."""
    return seed(registry.host, tmp_path_factory.mktemp("seed-images"))
