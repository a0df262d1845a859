"""A bundle made from the real fixture charts, for render tests: manifest.yaml (platform.yaml's charts and K3s
entry), charts/*.tgz byte for byte, index.json, and an OCI layout naming every image the gate asks for, each a
small real OCI image (one layer holding its own name) standing in for the upstream layers, which cannot be
downloaded here. Cilium's digest pins are switched off in these values: a stand-in cannot have the upstream
digest (that a pinned reference with another digest is refused is tested in test_gate). With multi_arch every image
is, as the real ones are, a two-platform index reduced to linux/amd64, recorded in index.json as the build records
it (its platform manifest digest in meta.platformDigests): the site render then pins references to that manifest."""
from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
from pathlib import Path

import yaml

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import parse_manifest
from installer.core.hashing import digest_hex, sha256_file
from installer.oci.layout import OCILayout
from installer.oci.media_types import OCI_INDEX, OCI_MANIFEST
from installer.render.gate import plan_images
from installer.render.helm import k3s_kube_version, render_chart
from tests.support.fixture_charts import FIXTURES, PLATFORM, archive

NO_DIGESTS = {"image": {"useDigest": False}, "operator": {"image": {"useDigest": False}},
              "hubble": {"relay": {"image": {"useDigest": False}}}, "envoy": {"image": {"useDigest": False}},
              "certgen": {"image": {"useDigest": False}}}


# charts a fixture chart needs beside it, as platform.yaml carries them: Harbor runs with the project's Redis chart
COMPANIONS = {"harbor": ("medai-harbor-redis",)}


def fixture_manifest(charts=("cilium", "metallb", "longhorn")) -> dict:
    from installer.platform.values import merge

    charts = tuple(charts) + tuple(c for name in charts for c in COMPANIONS.get(name, ()))
    doc = yaml.safe_load(PLATFORM.read_text())
    spec = doc["spec"]
    spec["images"] = []
    spec["models"] = []
    spec["osPackages"] = []
    spec["files"] = [f for f in spec["files"] if f["name"] == "k3s"]
    spec["charts"] = [c for c in spec["charts"] if c["name"] in charts]
    for c in spec["charts"]:
        if c["name"] == "cilium":
            c["values"] = merge(c["values"], NO_DIGESTS)
    return doc


def _stand_in(oci: OCILayout, ref: str) -> tuple[str, int]:
    layer = oci.write_blob(f"stand-in layer for {ref}\n".encode())
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_digest = oci.write_blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                    "size": len(f"stand-in layer for {ref}\n".encode())}],
    }, sort_keys=True).encode()
    return oci.write_blob(manifest), len(manifest)


def _reduced_index(oci: OCILayout, ref: str) -> tuple[str, int, str, list[str]]:
    """A two-platform index of the stand-in whose linux/arm64 manifest is left out, as the build reduces one to the
    bundle's platform: (index digest, its size, the linux/amd64 manifest digest, every blob digest carried)."""
    amd64, size = _stand_in(oci, ref)
    doc = json.loads(oci.read_blob(amd64))
    arm64 = json.dumps({**doc, "annotations": {"left-out": "linux/arm64"}}, sort_keys=True).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64, "size": size, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(arm64).hexdigest(), "size": len(arm64),
         "platform": {"os": "linux", "architecture": "arm64"}}]}, sort_keys=True).encode()
    digest = oci.write_blob(index)
    return digest, len(index), amd64, [digest, amd64, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def _carry(oci: OCILayout, ref: str, multi_arch: bool) -> Artifact:
    """REF's stand-in named in the OCI layout, and its image artifact (with its platform digest when multi_arch)."""
    if multi_arch:
        digest, size, amd64, blobs = _reduced_index(oci, ref)
        oci.set_ref(ref, digest, OCI_INDEX, size)
        meta = {"platforms": ["linux/amd64"], "mediaType": OCI_INDEX, "platformDigests": {"linux/amd64": amd64}}
    else:
        digest, size = _stand_in(oci, ref)
        oci.set_ref(ref, digest, OCI_MANIFEST, size)
        blobs, meta = [digest], {}
    return Artifact(kind="image", name=ref, ref=ref, digest=digest, path=f"oci/blobs/sha256/{digest_hex(digest)}",
                    size=size, sha256=digest_hex(digest), paths=[f"oci/blobs/sha256/{digest_hex(d)}" for d in blobs],
                    meta=meta)


def make_fixture_bundle(root: Path, doc: dict | None = None, omit: tuple[str, ...] = (),
                        images: tuple[str, ...] = (), archives: dict[str, Path] | None = None,
                        version: str = "0.0.1", sign_key=None, created: str = "2026-01-01T00:00:00Z",
                        files: dict[str, bytes] | None = None, multi_arch: bool = False) -> Path:
    """images: refs carried besides what the charts name, recorded as image artifacts with their digest in
    index.json (as the build records spec.images), e.g. the PostgreSQL image the CNPG Clusters name.
    archives: NAME-VERSION.tgz -> a chart archive to carry instead of the fixture of that name (bumped_chart).
    sign_key: the images artifacts signed with it (cosign format, in the OCI layout) before index.json is written.
    files: NAME -> content carried as files/NAME file artifacts for every host (e.g. "k3s": the install starts K3s).
    multi_arch: every image a reduced two-platform index (module doc), the charts' images recorded as image artifacts
    too, as the build records them."""
    doc = copy.deepcopy(doc or fixture_manifest())
    layout = BundleLayout.at(root)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    manifest = parse_manifest(doc)
    layout.charts.mkdir(exist_ok=True)
    artifacts, known, rendered = [], {}, {}
    kube = k3s_kube_version(manifest.spec)
    for c in manifest.spec.charts:
        dest = layout.charts / f"{c.name}-{c.version}.tgz"
        shutil.copyfile((archives or {}).get(dest.name) or (archive(c.name) if c.path else FIXTURES / dest.name), dest)
        sha = sha256_file(dest)
        known[layout.rel(dest)] = sha
        artifacts.append(Artifact(kind="chart", name=c.name, path=layout.rel(dest), size=dest.stat().st_size, sha256=sha,
                                  meta={"version": c.version}))
        rendered[c.name] = render_chart(c.name, c.version, dest, c.values, c.namespace, kube)
    for name, content in (files or {}).items():
        dest = layout.root / "files" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        known[layout.rel(dest)] = sha256_file(dest)
        artifacts.append(Artifact(kind="file", name=name, path=layout.rel(dest), size=len(content),
                                  sha256=known[layout.rel(dest)], neededBy=["all"]))
    oci = OCILayout(layout.oci, layout.tmp).init()
    for ref in plan_images(manifest.spec, rendered).needed:
        if ref in omit:
            continue
        carried = _carry(oci, ref, multi_arch)
        if multi_arch:
            artifacts.append(carried)
    for ref in images:
        artifacts.append(_carry(oci, ref, multi_arch))
    if sign_key is not None:
        from installer.trust.signing import sign_build

        sign_build(layout, [a for a in artifacts if a.kind == "image"], sign_key)
    shutil.rmtree(layout.tmp, ignore_errors=True)
    write_index(layout, {"name": "render-test", "version": version, "created": created,
                         "manifestSha256": sha256_file(layout.manifest), "platforms": ["linux/amd64"]}, artifacts, known)
    return layout.root


def bumped_chart(name: str, version: str, new_version: str, out: Path) -> Path:
    """The fixture chart NAME-VERSION repackaged as NEW_VERSION (Chart.yaml's version only): a real chart archive
    for an upgrade to a newer chart without a second upstream download."""
    import tarfile

    out.mkdir(parents=True, exist_ok=True)
    dest = out / f"{name}-{new_version}.tgz"
    with tarfile.open(FIXTURES / f"{name}-{version}.tgz") as src, tarfile.open(dest, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == f"{name}/Chart.yaml":
                doc = yaml.safe_load(data)
                doc["version"] = new_version
                data = yaml.safe_dump(doc, sort_keys=False).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    return dest
