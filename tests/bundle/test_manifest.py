"""The bundle manifest schema: every error names its path; the real platform manifest validates."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from installer.bundle.manifest import load_manifest, parse_manifest
from installer.core.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]
SHA = "a" * 64

GOOD = {
    "apiVersion": "medai/v1",
    "kind": "Bundle",
    "metadata": {"name": "t", "version": "1.0.0"},
    "spec": {
        "platforms": ["linux/amd64"],
        "images": [{"ref": "docker.io/library/busybox:1.36"}, {"ref": "quay.io/org/app:2"},
                   {"ref": "ghcr.io/org/x@sha256:" + "b" * 64}],
        "charts": [{"name": "c", "version": "1.0.0", "repo": "https://charts.example.org", "values": {"a": 1},
                    "extraImages": ["registry.k8s.io/pause:3.10"]}],
        "files": [{"name": "k3s", "url": "https://example.org/k3s", "sha256": SHA}],
        "models": [{"name": "m", "source": "hf://org/repo@0123abc"}],
    },
}


def _with(path: str, value) -> dict:
    doc = copy.deepcopy(GOOD)
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def test_good_manifest_parses():
    m = parse_manifest(GOOD)
    assert m.spec.charts[0].extraImages == ["registry.k8s.io/pause:3.10"]
    assert m.spec.models[0].source == "hf://org/repo@0123abc"


@pytest.mark.parametrize("path,value,expected", [
    ("spec.images.2.ref", "UPPER/Case:1", "spec.images[2].ref: 'UPPER/Case:1' is not a pinned image reference"),
    ("spec.images.1.ref", "quay.io/org/app", "spec.images[1].ref: 'quay.io/org/app' is not a pinned image reference"),
    ("spec.images.0", {"ref": "busybox:1", "tag": "x"}, "spec.images[0].tag: unknown field"),
    ("spec.colour", "blue", "spec.colour: unknown field"),
    ("spec.platforms", ["linux/x99"], "spec.platforms: 'linux/x99' is not an OS/ARCH platform"),
    ("spec.charts.0.values", "not-a-map", "spec.charts[0].values: Input should be a valid dictionary"),
    ("spec.charts.0.repo", "ftp://x", "spec.charts[0].repo: 'ftp://x' must be an http(s):// Helm repository"),
    ("spec.charts.0.extraImages", ["nope"], "spec.charts[0].extraImages: 'nope' is not a pinned image reference"),
    ("spec.files.0.sha256", "abc", "spec.files[0].sha256: 'abc' is not a lower-case hex sha256"),
    ("spec.files.0.name", "a/b", "spec.files[0].name: 'a/b' must be a plain file name"),
    ("spec.models.0.source", "hf://org/repo", "spec.models[0].source: 'hf://org/repo' must be hf://ORG/REPO@REVISION"),
    ("kind", "Bundel", "kind: Input should be 'Bundle'"),
    ("metadata.name", "Bad Name", "metadata.name: 'Bad Name' must be lower-case"),
])
def test_errors_name_their_path(path, value, expected):
    with pytest.raises(ManifestError) as e:
        parse_manifest(_with(path, value), "m.yaml")
    msg = str(e.value)
    assert msg.startswith(f"m.yaml: {expected}"), msg
    assert "\n" not in msg


def test_missing_field_and_wrong_type():
    doc = copy.deepcopy(GOOD)
    del doc["spec"]["files"][0]["sha256"]
    with pytest.raises(ManifestError, match=r"spec\.files\[0\]\.sha256: required field is missing"):
        parse_manifest(doc)
    with pytest.raises(ManifestError, match=r"spec\.images: Input should be a valid list"):
        parse_manifest(_with("spec.images", {"ref": "a:1"}))


def test_duplicate_names_are_refused():
    doc = copy.deepcopy(GOOD)
    doc["spec"]["files"].append(dict(doc["spec"]["files"][0]))
    with pytest.raises(ManifestError, match=r"files\[1\]\.name: 'k3s' appears twice"):
        parse_manifest(doc)


def test_yaml_errors_name_the_line(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("apiVersion: medai/v1\nkind: Bundle\nspec: [unclosed\n")
    with pytest.raises(ManifestError, match=r"m\.yaml: line \d+: not valid YAML"):
        load_manifest(p)
    with pytest.raises(ManifestError, match=r"absent\.yaml: manifest not found"):
        load_manifest(tmp_path / "absent.yaml")


def test_platform_manifest_validates():
    """bundles/platform.yaml is the real platform: it must load, and pin what the issue asks for."""
    m = load_manifest(ROOT / "bundles" / "platform.yaml")
    charts = {c.name for c in m.spec.charts}
    assert {"cilium", "metallb", "longhorn", "vault", "keycloakx", "harbor", "nvidia-device-plugin"} <= charts
    for c in m.spec.charts:
        assert c.version[0].isdigit() or c.version.startswith("v"), c
    files = {f.name for f in m.spec.files}
    assert {"k3s", "k3s-airgap-images-amd64.tar.zst", "k3s-install.sh"} <= files
    assert any(i.ref.startswith("docker.io/vllm/vllm-openai:v") for i in m.spec.images)
    assert any(x.source.startswith("hf://mistralai/Mistral-7B-Instruct-v0.3@") for x in m.spec.models)
    assert {o.release for o in m.spec.osPackages} >= {"debian-12", "ubuntu-22.04"}
    raw = yaml.safe_load((ROOT / "bundles" / "platform.yaml").read_text())
    assert raw["apiVersion"] == "medai/v1"
