"""index.json writing and file verification on a hand-made bundle (no servers needed)."""
from __future__ import annotations

import json
import os

import pytest

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.bundle.layout import BundleLayout
from installer.bundle.verify import verify_files
from installer.core.errors import BundleError
from installer.core.hashing import sha256_bytes


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "b"
    (root / "files").mkdir(parents=True)
    (root / "charts").mkdir()
    (root / "oci" / "blobs" / "sha256").mkdir(parents=True)
    (root / "files" / "k3s").write_bytes(b"binary" * 1000)
    (root / "charts" / "demo-1.0.0.tgz").write_bytes(b"chart")
    blob = b"layer-bytes"
    (root / "oci" / "blobs" / "sha256" / sha256_bytes(blob)).write_bytes(blob)
    layout = BundleLayout.at(root)
    arts = [
        Artifact("file", "k3s", "files/k3s", 6000, sha256_bytes(b"binary" * 1000)),
        Artifact("chart", "demo", "charts/demo-1.0.0.tgz", 5, sha256_bytes(b"chart"), ref="demo@1.0.0"),
    ]
    write_index(layout, {"name": "t", "version": "1"}, arts, known={})
    return layout


def test_index_lists_every_file_with_its_hash(bundle):
    index = json.loads(bundle.index.read_bytes())
    paths = {f["path"]: f for f in index["files"]}
    assert set(paths) == {"files/k3s", "charts/demo-1.0.0.tgz", f"oci/blobs/sha256/{sha256_bytes(b'layer-bytes')}"}
    assert paths["files/k3s"]["sha256"] == sha256_bytes(b"binary" * 1000)
    assert paths["files/k3s"]["size"] == 6000


def test_untouched_bundle_verifies(bundle):
    res = verify_files(bundle.root)
    assert res.ok, [str(p) for p in res.problems]
    assert res.bytes_hashed == 6000 + 5 + len(b"layer-bytes")


def test_flipped_byte_is_reported_with_its_artifact(bundle):
    p = bundle.root / "files" / "k3s"
    data = bytearray(p.read_bytes())
    data[10] ^= 1
    p.write_bytes(bytes(data))
    res = verify_files(bundle.root)
    assert [str(x) for x in res.problems] == ["altered: files/k3s (file k3s): sha256 differs from index.json"]


def test_missing_extra_and_symlink_are_all_reported(bundle, tmp_path):
    (bundle.root / "charts" / "demo-1.0.0.tgz").unlink()
    (bundle.root / "files" / "stowaway").write_bytes(b"x")
    outside = tmp_path / "secret"
    outside.write_text("s")
    os.symlink(outside, bundle.root / "files" / "link")
    kinds = {(p.kind, p.path) for p in verify_files(bundle.root).problems}
    assert kinds == {("missing", "charts/demo-1.0.0.tgz"), ("extra", "files/stowaway"), ("unsafe", "files/link")}


def test_listed_file_replaced_by_symlink_is_unsafe(bundle, tmp_path):
    target = tmp_path / "k3s-elsewhere"
    target.write_bytes(b"binary" * 1000)
    (bundle.root / "files" / "k3s").unlink()
    os.symlink(target, bundle.root / "files" / "k3s")
    problems = verify_files(bundle.root).problems
    assert [(p.kind, p.path) for p in problems] == [("unsafe", "files/k3s")]


def test_no_index_means_not_a_finished_bundle(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(BundleError, match="index.json: missing"):
        verify_files(tmp_path / "half")


def test_index_refuses_symlinks_at_build_time(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    os.symlink("/etc/passwd", root / "passwd")
    with pytest.raises(ValueError, match="passwd: not a regular file"):
        write_index(BundleLayout.at(root), {}, [], {})


def test_index_carries_its_schema_version_and_another_is_refused_in_one_line(bundle):
    layout = bundle
    doc = json.loads(layout.index.read_bytes())
    assert doc["apiVersion"] == "medai/v1"
    doc["apiVersion"] = "medai/v2"
    layout.index.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"index\.json: index apiVersion 'medai/v2': this medai reads medai/v1") as e:
        layout.read_index()
    assert "\n" not in str(e.value)
