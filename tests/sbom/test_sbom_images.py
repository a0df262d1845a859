"""SBOMs generated from test images' own files: real dpkg/apk/rpm databases, Python metadata and a Go binary
compiled here; CycloneDX 1.6 strict validation; byte-identical rebuilds; the bundle SBOM with models."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from installer.bundle.artifacts import Artifact
from installer.bundle.layout import BundleLayout
from installer.sbom import component_counts, write_sboms
from tests.support.sbom_images import build_layout

DEBIAN_REF = "registry.example:5000/medai/debian-app:1.0"
DEBIAN_FILE = "sbom/images/registry.example_5000_medai_debian-app_1.0.cdx.json"


def _artifacts(root: Path) -> list[Artifact]:
    files = {
        "charts/demo-0.1.0.tgz": b"chart archive bytes",
        "files/k3s-airgap.tar": b"k3s airgap images tarball",
        "models/tiny-llm/config.json": b'{"model_type": "llama"}',
        "models/tiny-llm/model.safetensors": b"\x00weights\x01" * 1000,
        "models/tiny-llm/tokenizer/tokenizer.json": b'{"version": "1.0"}',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    sha = {rel: hashlib.sha256(d).hexdigest() for rel, d in files.items()}
    model_paths = sorted(p for p in files if p.startswith("models/"))
    return [
        Artifact(kind="chart", name="demo", path="charts/demo-0.1.0.tgz", size=19, sha256=sha["charts/demo-0.1.0.tgz"],
                 ref="https://charts.example/demo", meta={"version": "0.1.0"}),
        Artifact(kind="file", name="k3s-airgap.tar", path="files/k3s-airgap.tar", size=25,
                 sha256=sha["files/k3s-airgap.tar"], ref="https://files.example/k3s-airgap.tar"),
        # per-file hashes given for one file only: the rest must be hashed from disk
        Artifact(kind="model", name="tiny-llm", path="models/tiny-llm", size=0, sha256="0" * 64,
                 ref="hf://medai/tiny-llm@0123abc", paths=model_paths,
                 meta={"revision": "0123abc", "files": {"config.json": sha["models/tiny-llm/config.json"]}}),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("sbom")
    b1 = work / "bundle1"
    b1.mkdir()
    (b1 / "manifest.yaml").write_text(yaml.safe_dump({"apiVersion": "medai/v1", "kind": "Bundle",
                                                      "metadata": {"name": "hospital-a", "version": "1.4.0"}}))
    images = build_layout(b1 / "oci", work)
    arts1 = _artifacts(b1)
    b2 = work / "bundle2"
    shutil.copytree(b1, b2)
    result1 = write_sboms(BundleLayout.at(b1), images.images, arts1)
    # the same inputs in another directory, listed in another order
    result2 = write_sboms(BundleLayout.at(b2), list(reversed(images.images)), list(reversed(_artifacts(b2))))
    return {"root": b1, "root2": b2, "result": result1, "result2": result2, "images": images,
            "artifacts": {a.name: a for a in arts1}}


def _doc(built, rel: str) -> dict:
    return json.loads((built["root"] / rel).read_bytes())


def _by_name(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in doc.get("components", []):
        out.setdefault(c["name"], []).append(c)
    return out


def _props(c: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in c.get("properties", [])}


def test_debian_image_lists_dpkg_packages_of_the_top_layer(built):
    comps = _by_name(_doc(built, DEBIAN_FILE))
    purls = {c["name"]: c.get("purl") for cs in comps.values() for c in cs}
    versions = {c["name"]: c.get("version") for cs in comps.values() for c in cs}
    # the upper layer's status wins: libc6 upgraded, curl added
    assert versions["libc6"] == "2.36-9+deb12u7"
    assert purls["libc6"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?arch=amd64&distro=debian-12&upstream=glibc"
    assert purls["curl"] == "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12"
    assert versions["bsdutils"] == "1:2.38.1-5+b1"
    assert purls["bsdutils"] == "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12&upstream=util-linux"
    assert purls["base-files"] == "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"
    assert "oldpkg" not in comps, "a package with only config files left is not installed"
    assert _props(comps["libc6"][0])["medai:location"] == "/var/lib/dpkg/status"
    os_comp = comps["debian"][0]
    assert os_comp["type"] == "operating-system" and os_comp["version"] == "12"


def test_debian_image_python_packages_and_whiteouts(built):
    comps = _by_name(_doc(built, DEBIAN_FILE))
    py = {c["name"]: c for cs in comps.values() for c in cs if c.get("purl", "").startswith("pkg:pypi/")}
    assert py["requests"]["purl"] == "pkg:pypi/requests@2.31.0"
    assert py["Typing_Extensions"]["purl"] == "pkg:pypi/typing-extensions@4.8.0"
    assert py["six"]["purl"] == "pkg:pypi/six@1.16.0"  # egg-info directory
    assert py["chardet"]["purl"] == "pkg:pypi/chardet@5.1.0"  # egg-info file
    assert py["bar"]["purl"] == "pkg:pypi/bar@2.0"
    assert py["six"]["licenses"] == [{"license": {"id": "MIT"}}]
    # deleted by a whiteout in the zstd layer, in the plain-tar layer, and hidden by an opaque directory
    assert "urllib3" not in py and "idna" not in py and "foo" not in py
    assert set(py) == {"requests", "Typing_Extensions", "six", "chardet", "bar"}


def test_debian_image_go_binary_build_info(built):
    doc = _doc(built, DEBIAN_FILE)
    go = [c for c in doc["components"] if c.get("purl", "").startswith("pkg:golang/")]
    by_loc: dict[str, dict[str, dict]] = {}
    for c in go:
        by_loc.setdefault(_props(c)["medai:location"], {})[c["name"]] = c
    # the binary and its hardlink (same layer) are both found; the non-Go ELF is not
    assert set(by_loc) == {"/usr/local/bin/hello", "/usr/bin/hello-link"}
    found = by_loc["/usr/local/bin/hello"]
    assert found["example.com/medaihello"]["type"] == "application"
    assert found["example.com/medaihello"]["purl"] == "pkg:golang/example.com/medaihello"
    dep = found["example.com/greet"]
    assert dep["version"] == "v1.2.3" and dep["purl"] == "pkg:golang/example.com/greet@v1.2.3"
    assert _props(dep)["medai:go:replace"] == "example.com/greet@v1.2.3 => ./greet"
    go_version = built["images"].go_version
    assert found["stdlib"]["version"] == go_version
    assert found["stdlib"]["purl"] == f"pkg:golang/stdlib@{go_version.removeprefix('go')}"
    assert _props(found["example.com/medaihello"])["medai:go:build:CGO_ENABLED"] == "0"
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(refs) == len(set(refs))


def test_alpine_apk_packages(built):
    doc = _doc(built, "sbom/images/docker.io_library_alpine_3.18.cdx.json")
    purls = sorted(c["purl"] for c in doc["components"] if "purl" in c)
    assert purls == [
        "pkg:apk/alpine/busybox@1.36.1-r5?arch=x86_64&distro=alpine-3.18.4",
        "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4",
        "pkg:apk/alpine/ssl_client@1.36.1-r5?arch=x86_64&distro=alpine-3.18.4&upstream=busybox",
    ]
    musl = next(c for c in doc["components"] if c["name"] == "musl")
    assert musl["licenses"] == [{"license": {"id": "MIT"}}]
    assert doc["metadata"]["timestamp"] == "2024-02-03T04:05:06.123456+00:00"


def test_rocky_rpmdb_sqlite_packages(built):
    doc = _doc(built, "sbom/images/quay.io_rocky_rocky_9.3.cdx.json")
    rpms = {c["name"]: c for c in doc["components"] if c.get("purl", "").startswith("pkg:rpm/")}
    assert set(rpms) == {"medai-hello", "medai-other"}
    hello, other = rpms["medai-hello"], rpms["medai-other"]
    assert hello["version"] == "2:1.2.3-4"
    assert hello["purl"] == ("pkg:rpm/rocky/medai-hello@1.2.3-4?arch=noarch&distro=rocky-9.3&epoch=2"
                             "&upstream=medai-hello-1.2.3-4.src.rpm")
    assert hello["licenses"] == [{"license": {"id": "MIT"}}]
    assert other["version"] == "0.5-1.el9"
    assert other["purl"].startswith("pkg:rpm/rocky/medai-other@0.5-1.el9?arch=noarch&distro=rocky-9.3")
    assert other["licenses"] == [{"license": {"name": "GPLv2+"}}]
    assert _props(hello)["medai:location"] == "/usr/lib/sysimage/rpm/rpmdb.sqlite"
    assert "timestamp" not in doc["metadata"], "no created date in the config: no timestamp"


def test_multi_platform_index_gives_one_sbom_per_platform(built):
    res = built["result"]
    amd = "sbom/images/registry.example_5000_medai_multi_2.0.linux-amd64.cdx.json"
    arm = "sbom/images/registry.example_5000_medai_multi_2.0.linux-arm64.cdx.json"
    assert amd in res and arm in res
    arm_purls = [c["purl"] for c in _doc(built, arm)["components"] if "purl" in c]
    assert "pkg:apk/alpine/musl@1.2.4-r2?arch=aarch64&distro=alpine-3.18.4" in arm_purls
    props = _props(_doc(built, arm)["metadata"]["component"])
    assert props["medai:image:digest"] == built["images"].multi
    assert props["medai:image:platform"] == "linux/arm64"
    # the BuildKit attestation (SPDX) rides along as an upstream SBOM
    up = [r for r in res if "multi_2.0.upstream-buildkit" in r]
    assert len(up) == 1 and json.loads((built["root"] / up[0]).read_bytes())["name"] == "buildkit-sbom"


def test_upstream_sboms_are_kept(built):
    res = built["result"]
    up = sorted(r for r in res if r.startswith("sbom/images/registry.example_5000_medai_debian-app_1.0.upstream-"))
    names = [r.rsplit(".upstream-", 1)[1] for r in up]
    assert names == ["attestation-1.cdx.json", "referrer-2.spdx.json", "sbom-tag-3.cdx.json"]
    tag_copy = (built["root"] / up[2]).read_bytes()
    assert json.loads(tag_copy)["metadata"]["component"]["name"] == "upstream"
    assert json.loads((built["root"] / up[1]).read_bytes())["name"] == "referrer-sbom"
    assert json.loads((built["root"] / up[0]).read_bytes())["name"] == "attested"
    for rel in up:
        assert hashlib.sha256((built["root"] / rel).read_bytes()).hexdigest() == res[rel]


def test_every_sbom_validates_strictly_and_hashes_match(built):
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    generated = [r for r in built["result"] if r.endswith(".cdx.json") and ".upstream-" not in r]
    assert len(generated) == 6  # debian, alpine, rocky, multi x2, bundle
    for rel in generated:
        data = (built["root"] / rel).read_text()
        assert validator.validate_str(data) is None, rel
        assert json.loads(data)["specVersion"] == "1.6"
    for rel, sha in built["result"].items():
        assert hashlib.sha256((built["root"] / rel).read_bytes()).hexdigest() == sha
    assert not list((built["root"] / ".tmp").iterdir()), "no temp files left behind"


def test_rebuild_is_byte_identical(built):
    assert built["result"] == built["result2"]
    for rel in built["result"]:
        assert (built["root"] / rel).read_bytes() == (built["root2"] / rel).read_bytes(), rel
    doc = _doc(built, DEBIAN_FILE)
    assert doc["serialNumber"].startswith("urn:uuid:")
    assert doc["metadata"]["timestamp"] == "2024-05-01T12:00:00+00:00"


def test_bundle_sbom_models_charts_files_images(built):
    doc = _doc(built, "sbom/bundle.cdx.json")
    assert doc["metadata"]["component"]["name"] == "hospital-a" and doc["metadata"]["component"]["version"] == "1.4.0"
    comps = _by_name(doc)
    model = comps["tiny-llm"][0]
    assert model["type"] == "machine-learning-model" and model["version"] == "0123abc"
    files = {c["name"]: c["hashes"][0]["content"] for c in model["components"]}
    expected = {rel.removeprefix("models/tiny-llm/"): hashlib.sha256((built["root"] / rel).read_bytes()).hexdigest()
                for rel in built["artifacts"]["tiny-llm"].paths}
    assert files == expected and len(files) == 3
    chart = comps["demo"][0]
    assert chart["type"] == "application" and chart["version"] == "0.1.0"
    assert chart["hashes"] == [{"alg": "SHA-256", "content": built["artifacts"]["demo"].sha256}]
    assert comps["k3s-airgap.tar"][0]["type"] == "file"
    containers = {_props(c)["medai:image:ref"]: c for c in doc["components"] if c["type"] == "container"}
    assert set(containers) == {i.ref for i in built["images"].images}
    deb = containers[DEBIAN_REF]
    assert deb["hashes"][0]["content"] == built["images"].debian.removeprefix("sha256:")
    bom_refs = {r["url"]: r["hashes"][0]["content"] for r in deb["externalReferences"]}
    assert bom_refs == {DEBIAN_FILE: built["result"][DEBIAN_FILE]}
    assert len(containers["registry.example:5000/medai/multi:2.0"]["externalReferences"]) == 2


def test_component_counts(built):
    counts = component_counts(built["root"])
    assert counts["docker.io/library/alpine:3.18"] == 3
    assert counts["quay.io/rocky/rocky:9.3"] == 2
    assert counts["registry.example:5000/medai/multi:2.0"] == 6  # two platform SBOMs of 3 packages each
    deb = json.loads((built["root"] / DEBIAN_FILE).read_bytes())
    assert counts[DEBIAN_REF] == len(deb["components"]) - 1  # the operating-system entry is not a package
