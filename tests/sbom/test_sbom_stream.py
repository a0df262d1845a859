"""SBOM generation internals that the image tests cannot pin down: bounded memory while streaming big layers,
the Go build-info scanner at chunk boundaries and against decoys, RPM header parsing, and bad input."""
from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest

from installer.bundle.layout import BundleLayout
from installer.core.errors import TrustError
from installer.oci.layout import OCILayout
from installer.sbom import write_sboms
from installer.sbom.catalogers import golang, rpmheader
from installer.sbom.scan import catalog_image
from tests.support.oci_layout import LAYER_MEDIA, LayoutWriter, file

START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")  # cmd/go's module info framing
END = bytes.fromhex("f932433186182072008242104116d8f2")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def buildinfo_blob(go: str = "go1.22.4", flags: int = 2, deps: int = 1) -> bytes:
    text = "path\texample.com/app\nmod\texample.com/app\tv1.0.0\th1:abc=\n"
    text += "".join(f"dep\texample.com/d{i}\tv0.{i}.0\th1:x=\n" for i in range(deps))
    text += "build\tGOARCH=arm64\n"
    mod = START + text.encode() + END
    header = golang.MAGIC + bytes([8, flags]) + b"\0" * 16
    return header + _uvarint(len(go)) + go.encode() + _uvarint(len(mod)) + mod


def test_go_scanner_finds_build_info_across_a_chunk_boundary_and_skips_decoys():
    blob = buildinfo_blob(deps=3000)  # module info longer than the first read-ahead
    assert len(blob) > 64 * 1024
    decoy = golang.MAGIC + b"\x07\x09 not build info"  # the magic as a string constant: unaligned
    offset = golang.CHUNK - 16  # 16-aligned, straddles the first chunk's end
    data = bytearray(b"\x7fELF" + b"\0" * (offset - 4) + blob + b"\0" * 100)
    data[1001:1001 + len(decoy)] = decoy
    aligned_decoy = golang.MAGIC + b"\x05\x02" + b"\0" * 16  # aligned, but pointer size 5: not a header
    data[4096:4096 + len(aligned_decoy)] = aligned_decoy
    stream = io.BytesIO(bytes(data))
    head = stream.read(4)
    bi = golang.scan(stream, head)
    assert isinstance(bi, golang.BuildInfo)
    assert bi.go_version == "go1.22.4" and bi.main == ("example.com/app", "v1.0.0")
    assert len(bi.deps) == 3000 and bi.deps[2999] == ("example.com/d2999", "v0.2999.0", "")
    assert bi.build == {"GOARCH": "arm64"}


def test_go_scanner_reports_pre_118_binaries_instead_of_guessing():
    data = b"\x7fELF" + b"\0" * 12 + golang.MAGIC + bytes([8, 0]) + b"\x10" * 16 + b"\0" * 64
    assert golang.scan(io.BytesIO(data[4:]), data[:4]) == "old-format"
    assert golang.scan(io.BytesIO(b"\0" * 5000), b"\x7fELF") is None


def test_rpm_header_parser_rejects_truncated_blobs():
    store = b"medai-hello\x00" + b"\x00" + struct.pack(">I", 7)
    entries = struct.pack(">iIiI", rpmheader.NAME, 6, 0, 1) + struct.pack(">iIiI", rpmheader.EPOCH, 4, 13, 1)
    blob = struct.pack(">II", 2, len(store)) + entries + store
    assert rpmheader.parse(blob, {rpmheader.NAME, rpmheader.EPOCH}) == {rpmheader.NAME: "medai-hello", rpmheader.EPOCH: 7}
    with pytest.raises(rpmheader.HeaderError, match="blob has"):
        rpmheader.parse(blob[:-5], {rpmheader.NAME})


def _big_elf_layer(path: Path, size: int, tail: bytes) -> None:
    """A gzip layer holding one executable ELF of ``size`` bytes, written without holding it in memory."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("usr/bin/big")
        info.size, info.mode, info.mtime = size, 0o755, 0

        class Zeros(io.RawIOBase):
            def __init__(self):
                self.left = size - len(tail) - 4
                self.head = b"\x7fELF"

            def readable(self):
                return True

            def readinto(self, b):
                if self.head:
                    n = len(self.head)
                    b[:n], self.head = self.head, b""
                    return n
                if self.left > 0:
                    n = min(len(b), self.left)
                    b[:n] = bytes(n)
                    self.left -= n
                    return n
                n = min(len(b), len(self._tail))
                b[:n], self._tail = self._tail[:n], self._tail[n:]
                return n

        z = Zeros()
        z._tail = tail
        tf.addfile(info, io.BufferedReader(z))


def test_memory_stays_bounded_while_streaming_a_big_binary(tmp_path):
    size = 96 * 1024 * 1024
    blob = buildinfo_blob()
    tail = blob + b"\0" * ((size - len(blob)) % 16)  # the build info starts 16-aligned, as the linker puts it
    w = LayoutWriter(tmp_path / "oci")
    layer_path = tmp_path / "layer.tgz"
    _big_elf_layer(layer_path, size, tail)
    import hashlib

    h = hashlib.sha256()
    with open(layer_path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    os.replace(layer_path, tmp_path / "oci" / "blobs" / "sha256" / digest[7:])
    small = w.layer([file("etc/os-release", "ID=debian\nVERSION_ID=12\n")])
    desc = w.image([small, {"mediaType": LAYER_MEDIA["gzip"], "digest": digest,
                            "size": (tmp_path / "oci" / "blobs" / "sha256" / digest[7:]).stat().st_size}])
    oci = OCILayout(tmp_path / "oci")
    image = oci.platform_images(desc["digest"], "image big")[0]
    tracemalloc.start()
    try:
        catalog = catalog_image(oci, image, "image big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [p.name for p in catalog.packages] == ["example.com/app", "example.com/d0", "stdlib"]
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while streaming a {size}-byte member"


@pytest.fixture
def small_bundle(tmp_path):
    root = tmp_path / "bundle"
    w = LayoutWriter(root / "oci")
    layer = w.layer([file("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n"),
                     file("lib/apk/db/installed", "P:musl\nV:1.2.4-r2\nA:x86_64\n")])
    desc = w.image([layer])
    return root, w, layer, desc


def test_missing_layer_names_the_image_and_layer_and_writes_nothing(small_bundle):
    root, _, layer, desc = small_bundle
    (root / "oci" / "blobs" / "sha256" / layer["digest"][7:]).unlink()
    with pytest.raises(TrustError, match=rf"image demo/app:1.0 .*layer {layer['digest']} missing"):
        write_sboms(BundleLayout.at(root), [SimpleNamespace(ref="demo/app:1.0", digest=desc["digest"])], [])
    assert not (root / "sbom").exists()


def test_corrupt_layer_is_a_one_line_error(small_bundle):
    root, _, layer, desc = small_bundle
    blob = root / "oci" / "blobs" / "sha256" / layer["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[20:40] = b"\xff" * 20
    blob.write_bytes(bytes(data))
    with pytest.raises(TrustError, match=rf"layer {layer['digest']} is not a readable tar stream") as e:
        write_sboms(BundleLayout.at(root), [SimpleNamespace(ref="demo/app:1.0", digest=desc["digest"])], [])
    assert "\n" not in str(e.value)


def test_unknown_image_digest_and_garbage_rpmdb(small_bundle):
    root, w, _, _ = small_bundle
    with pytest.raises(TrustError, match=r"image demo/gone:1\.0: blob sha256:0{64} missing"):
        write_sboms(BundleLayout.at(root), [SimpleNamespace(ref="demo/gone:1.0", digest="sha256:" + "0" * 64)], [])
    bad = w.image([w.layer([file("usr/lib/sysimage/rpm/rpmdb.sqlite", b"not a database" * 100)])])
    with pytest.raises(TrustError, match=r"/usr/lib/sysimage/rpm/rpmdb\.sqlite: not a readable rpm sqlite database"):
        write_sboms(BundleLayout.at(root), [SimpleNamespace(ref="demo/rpm:1.0", digest=bad["digest"])], [])


# ---------------------------------------------------------------- layer walks are capped


def test_layer_walk_is_capped_in_entries_and_uncompressed_bytes(tmp_path):
    import gzip
    import io
    import tarfile

    from installer.core.errors import TrustError
    from installer.sbom import rootfs

    many = tmp_path / "many.tar"
    with tarfile.open(many, "w") as t:
        for i in range(300):
            info = tarfile.TarInfo(f"f{i}")
            t.addfile(info, io.BytesIO(b""))
    layers = [("sha256:" + "1" * 64, many)]
    with pytest.raises(TrustError, match=r"layer sha256:1{64}: more than 100 tar entries in the image: refused"):
        rootfs.walk(layers, lambda p, m: False, lambda p, m, f: None, "demo/app", max_entries=100)
    rootfs.walk(layers, lambda p, m: False, lambda p, m, f: None, "demo/app", max_entries=1000)  # under the cap

    bomb = tmp_path / "bomb.tar.gz"  # 64 MiB of zeros in one member: a few KiB on disk
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        info = tarfile.TarInfo("zeros")
        info.size = 64 * 1024 * 1024
        t.addfile(info, io.BytesIO(bytes(info.size)))
    bomb.write_bytes(gzip.compress(raw.getvalue()))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(TrustError, match=r"more than 8388608 uncompressed bytes in the image \(a decompression bomb\?\): refused"):
        rootfs.walk([("sha256:" + "2" * 64, bomb)], lambda p, m: False, lambda p, m, f: None, "demo/app",
                    max_bytes=8 * 1024 * 1024)


# ---------------------------------------------------------------- one read per byte


@pytest.mark.loopback
def test_layers_are_catalogued_on_the_download_stream_and_the_sboms_match_the_walk(registry, tmp_path, monkeypatch):
    """Images with shadowing, whiteouts, an opaque directory, gzip/zstd/plain layers, a Go binary and its hardlink,
    apk, rpmdb and a multi-platform index go through a real registry; collect_images gathers each layer's facts
    while it streams, so write_sboms reads no layer back from disk, and every SBOM is byte for byte what the
    walk from disk writes (the walk is today's code path, forced by refusing the replay)."""
    import shutil

    from installer.oci.images import collect_images
    from installer.oci.layout import OCILayout
    from installer.oci.registry import RegistryClient
    from installer.sbom import layer_facts
    from tests.support.images import skopeo_push
    from tests.support.sbom_images import build_layout

    src = tmp_path / "src"
    images = build_layout(src, tmp_path / "work")
    lay = OCILayout(src, tmp_path / "src-tmp")
    names = {images.debian: "debian-app", images.alpine: "alpine", images.rocky: "rocky", images.multi: "multi"}
    refs = []
    for digest, name in names.items():
        size = (src / "blobs" / "sha256" / digest[7:]).stat().st_size
        doc, mt = lay.read_manifest(digest)
        lay.set_ref(f"local/{name}:1", digest, mt or "application/vnd.oci.image.manifest.v1+json", size)
        skopeo_push(src, f"local/{name}:1", f"{registry.host}/sbom/{name}:1", all_platforms=name == "multi")
        refs.append(f"{registry.host}/sbom/{name}:1")

    store = layer_facts.LayerFactsStore(tmp_path / "facts")
    root = tmp_path / "bundle"
    (root / "oci").mkdir(parents=True)
    with RegistryClient() as client:
        got = collect_images(client, OCILayout(root / "oci", root / ".tmp"), refs, ["linux/amd64", "linux/arm64"],
                             layer_facts=store)
    layers = {d["digest"] for im in got for d in _layers(root / "oci", im.digest)}
    assert layers and all(store.get(d) is not None and store.get(d)["complete"] for d in layers)
    assert len(list((tmp_path / "facts").iterdir())) == len(layers)  # one small cache file per layer digest

    walked = tmp_path / "walked"
    shutil.copytree(root, walked)
    with_facts = write_sboms(BundleLayout.at(root), got, [], facts=store)
    assert store.disk_reads == []  # not one layer read back from disk to be catalogued
    # a later build with an empty memory reads the cache files, not the blobs
    again = layer_facts.LayerFactsStore(tmp_path / "facts")
    assert write_sboms(BundleLayout.at(root), got, [], facts=again) == with_facts and again.disk_reads == []
    monkeypatch.setattr(layer_facts, "replay", lambda *a, **k: False)
    assert write_sboms(BundleLayout.at(walked), got, []) == with_facts
    for rel in with_facts:
        assert (root / rel).read_bytes() == (walked / rel).read_bytes(), rel


def _layers(oci: Path, digest: str) -> list[dict]:
    import json

    doc = json.loads((oci / "blobs" / "sha256" / digest[7:]).read_bytes())
    if "manifests" in doc:
        return [d for m in doc["manifests"] if (oci / "blobs" / "sha256" / m["digest"][7:]).is_file()
                for d in _layers(oci, m["digest"])]
    if doc.get("config", {}).get("mediaType") != "application/vnd.oci.image.config.v1+json":
        return []
    return doc["layers"]


def test_sbom_validation_still_checks_iri_formats_with_the_lean_iri_parser():
    """cdx._validator stands in a one-parser rfc3987_syntax (the package builds 39 at import); the CycloneDX
    schema's iri-reference format is still checked, both ways."""
    import json

    from installer.sbom import cdx

    v = cdx._validator()
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
           "externalReferences": [{"type": "website", "url": "http://exa mple.com/<bad>"}]}
    assert "is not valid under any of the given schemas" in str(v.validate_str(json.dumps(doc)))
    doc["externalReferences"][0]["url"] = "https://example.com/sbom?x=1#f"
    assert v.validate_str(json.dumps(doc)) is None
