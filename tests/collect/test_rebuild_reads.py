"""A no-change rebuild costs what changed, so it opens no layer blob (nothing re-hashed, nothing
re-catalogued) and reads the layout's small JSON blobs (manifests, configs) only; the first build catalogues
every layer on its download stream, never reading one back from disk for its SBOM."""
from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.collect.build import BuildOptions, build_bundle
from installer.sbom import layer_facts
from tests.support.sources import write_manifest

pytestmark = pytest.mark.loopback


class BlobReads:
    """Counts bytes read from files under oci/blobs/ through open() (the layout's readers, hashing, SBOM walks)."""

    def __init__(self, blobs: Path):
        self.blobs = str(blobs)
        self.bytes: dict[str, int] = {}

    def wrap(self, real):
        def counted(file, mode="r", *args, **kwargs):
            f = real(file, mode, *args, **kwargs)
            name = os.fspath(file) if isinstance(file, (str, bytes, os.PathLike)) else ""
            if isinstance(name, str) and name.startswith(self.blobs) and "r" in mode and "b" in mode:
                digest = "sha256:" + os.path.basename(name)
                read = f.read
                readinto = getattr(f, "readinto", None)

                def counting_read(*a):
                    data = read(*a)
                    self.bytes[digest] = self.bytes.get(digest, 0) + len(data)
                    return data

                f.read = counting_read
                if readinto is not None:
                    def counting_readinto(b):
                        n = readinto(b)
                        self.bytes[digest] = self.bytes.get(digest, 0) + (n or 0)
                        return n
                    f.readinto = counting_readinto
            return f
        return counted


def _layers(layout: BundleLayout) -> dict[str, int]:
    import json

    out: dict[str, int] = {}
    for a in json.loads(layout.index.read_bytes())["artifacts"]:
        if a["kind"] != "image":
            continue
        for rel in a["paths"]:
            p = layout.root / rel
            doc = p.read_bytes()
            try:
                parsed = json.loads(doc)
            except ValueError:
                continue
            for d in parsed.get("layers") or []:
                out[d["digest"]] = d["size"]
    return out


def test_no_change_rebuild_reads_no_layer_and_the_first_build_reads_none_back(
        tmp_path, monkeypatch, demo_sources, seeded_registry):
    monkeypatch.setenv("MEDAI_CACHE", str(tmp_path / "cache"))
    s = seeded_registry
    manifest = write_manifest(tmp_path / "site.yaml", demo_sources, images=[s.app, s.tool, s.multi],
                              with_chart=False, files=[], with_model=False,
                              extra_spec={"platforms": ["linux/amd64", "linux/arm64"]})
    out = tmp_path / "bundle"
    layout = BundleLayout.at(out)
    stores: list = []
    real_store = layer_facts.LayerFactsStore

    def recording_store(*a, **k):
        stores.append(real_store(*a, **k))
        return stores[-1]

    monkeypatch.setattr(layer_facts, "LayerFactsStore", recording_store)
    first = build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False))
    assert first.fetched_bytes > 0
    layers = _layers(layout)
    assert len(layers) >= 4
    assert stores[-1].disk_reads == []  # every layer catalogued on its download stream

    reads = BlobReads(layout.oci / "blobs" / "sha256")
    monkeypatch.setattr(builtins, "open", reads.wrap(builtins.open))
    monkeypatch.setattr(io, "open", reads.wrap(io.open))
    again = build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False))
    monkeypatch.undo()
    assert again.fetched_bytes == 0 and again.index_sha256 != ""
    assert not set(reads.bytes) & set(layers), f"layers read on a no-change rebuild: {sorted(set(reads.bytes) & set(layers))}"
    assert sum(reads.bytes.values()) < 64 * 1024  # manifests and configs only: small JSON
    assert reads.bytes  # the counter does see the layout's reads (the manifests)
