"""The bundle index is read through BundleIndex only: no module outside installer/bundle reads its artifacts list."""
from __future__ import annotations

import ast
from pathlib import Path

from installer.bundle.artifacts import BundleIndex

PACKAGE = Path(__file__).resolve().parents[2] / "installer"
# The weight checker runs inside the inference pod, copied there alone (stdlib only): it reads the JSON itself.
ALLOWED = {"trust/model_check.py"}


def _reads_artifacts(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "artifacts":
            lines.append(node.lineno)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "artifacts"):
            lines.append(node.lineno)
    return lines


def test_no_module_outside_bundle_reads_the_index_artifacts_as_a_dict():
    found = []
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(PACKAGE).as_posix()
        if rel.startswith("bundle/") or rel in ALLOWED:
            continue
        found += [f"installer/{rel}:{n}" for n in _reads_artifacts(ast.parse(p.read_text()))]
    assert found == []


def test_the_scan_sees_both_forms_of_read():
    assert _reads_artifacts(ast.parse('i["artifacts"]; i.get("artifacts", [])')) == [1, 1]


def test_typed_access_by_kind_name_and_repository():
    index = BundleIndex({"kind": "BundleIndex", "files": [], "artifacts": [
        {"kind": "image", "name": "pg", "ref": "ghcr.io/cloudnative-pg/postgresql:16.4", "digest": "sha256:" + "a" * 64},
        {"kind": "image", "name": "nginx", "ref": "nginx:1.27"},
        {"kind": "image", "name": "vault", "ref": "docker.io/hashicorp/vault:1.20.1", "digest": "sha256:" + "c" * 64},
        {"kind": "chart", "name": "vault", "path": "charts/vault-0.30.0.tgz", "size": 3, "sha256": "b" * 64},
        {"kind": "model", "name": "m", "path": "models/m", "paths": ["models/m/a", "models/m/b"], "meta": "not a map"},
    ]})
    assert [a.name for a in index.artifacts("image")] == ["pg", "nginx", "vault"]
    assert index.chart("vault").path == "charts/vault-0.30.0.tgz" and index.chart("harbor") is None
    assert [a.name for a in index.images("docker.io/library/nginx")] == [a.name for a in index.images("nginx")] == ["nginx"]
    assert index.pinned_image("ghcr.io/cloudnative-pg/postgresql") == "ghcr.io/cloudnative-pg/postgresql:16.4@sha256:" + "a" * 64
    assert index.pinned_image("docker.io/library/nginx") is None  # carried without a digest
    # the index holds normalised references; a repository asked for as docker writes it finds them
    assert index.pinned_image("hashicorp/vault") == "docker.io/hashicorp/vault:1.20.1@sha256:" + "c" * 64
    m = index.named("model", "m")
    assert m.paths == ["models/m/a", "models/m/b"] and m.meta == {} and m.label == "model m"
    assert index["kind"] == "BundleIndex" and dict(index) == index.to_json()


def test_an_image_is_pinned_to_the_platform_manifest_of_the_site():
    idx, amd64, arm64 = ("sha256:" + c * 64 for c in "abc")
    image = {"kind": "image", "name": "pg", "ref": "ghcr.io/cloudnative-pg/postgresql:17.5", "digest": idx,
             "meta": {"mediaType": "application/vnd.oci.image.index.v1+json",
                      "platformDigests": {"linux/amd64": amd64, "linux/arm64": arm64}}}
    one = BundleIndex({"platforms": ["linux/amd64"], "artifacts": [image]})
    assert one.site_platform == "linux/amd64"
    assert one.pinned_image("ghcr.io/cloudnative-pg/postgresql") == f"ghcr.io/cloudnative-pg/postgresql:17.5@{amd64}"
    assert one.pinned_image("ghcr.io/cloudnative-pg/postgresql", "linux/arm64").endswith(f":17.5@{arm64}")
    # several platforms: no one platform manifest serves every node, the index digest stands (the gate judges it)
    both = BundleIndex({"platforms": ["linux/amd64", "linux/arm64"], "artifacts": [image]})
    assert both.site_platform is None and both.pinned_image("ghcr.io/cloudnative-pg/postgresql").endswith(f"@{idx}")
    # an index written before platform digests were recorded: the image's own digest, as before
    old = BundleIndex({"platforms": ["linux/amd64"], "artifacts": [{**image, "meta": {}}]})
    assert old.images()[0].platform_digests == {} and old.pinned_image("ghcr.io/cloudnative-pg/postgresql").endswith(f"@{idx}")
    bad = BundleIndex({"artifacts": [{**image, "meta": {"platformDigests": {"linux/amd64": "sha256:short"}}}]})
    assert bad.images()[0].platform_digests == {}
