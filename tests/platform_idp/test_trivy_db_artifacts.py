"""Trivy's vulnerability databases travel as OCI artifacts (not images): collected into the bundle from a
loopback registry, signed and verified like images, skipped by the SBOM step, seeded into a TLS registry where
cosign accepts them. The artifacts are made here with Trivy's media types (ghcr.io itself is not reachable)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.deploy.harbor.seed import seed_harbor
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient, sha256_digest
from installer.trust.keys import generate_keypair
from installer.trust.verify import verify_bundle
from tests.support.archives import tgz
from tests.support.servers import make_tls_pair, run_registry
from tests.support.sources import write_manifest

pytestmark = pytest.mark.loopback
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "trivy-db-Passw0rd!"
TRIVY_CONFIG = "application/vnd.aquasec.trivy.config.v1+json"
DB_LAYER = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
JAVA_DB_LAYER = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip"


def push_artifact(host: str, repo_tag: str, layer: bytes, layer_type: str, title: str, tmp: Path) -> str:
    """An oras-style artifact manifest (custom config + one layer), as Trivy's DBs are published."""
    config = b"{}"
    blobs = {sha256_digest(config): config, sha256_digest(layer): layer}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": TRIVY_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": sha256_digest(layer), "size": len(layer),
                    "annotations": {"org.opencontainers.image.title": title}}],
        "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
    }, separators=(",", ":")).encode()
    ref = parse_ref(f"{host}/{repo_tag}")
    with RegistryClient() as c:
        for d, data in blobs.items():
            p = tmp / d.replace(":", "-")
            p.write_bytes(data)
            c.push_blob(ref, d, len(data), p)
        c.put_manifest(ref, ref.tag, manifest, "application/vnd.oci.image.manifest.v1+json")
    return sha256_digest(manifest)


@pytest.fixture(scope="module")
def trivy_bundle(tmp_path_factory, registry, demo_sources):
    from installer.collect.build import BuildOptions, build_bundle

    work = tmp_path_factory.mktemp("trivy-bundle")
    (work / "blobs").mkdir()
    db = push_artifact(registry.host, "aquasecurity/trivy-db:2", tgz({"trivy.db": os.urandom(4096), "metadata.json": b'{"Version":2}'}),
                       DB_LAYER, "db.tar.gz", work / "blobs")
    jdb = push_artifact(
        registry.host,
        "aquasecurity/trivy-java-db:1",
        tgz({"trivy-java.db": os.urandom(4096), "metadata.json": b'{"Version":1}'}),
        JAVA_DB_LAYER,
        "javadb.tar.gz",
        work / "blobs",
    )
    key, pub = generate_keypair(work / "site", PASSWORD.encode())
    refs = [f"{registry.host}/aquasecurity/trivy-db:2", f"{registry.host}/aquasecurity/trivy-java-db:1"]
    manifest = write_manifest(
        work / "bundle.yaml", demo_sources, images=refs, with_chart=False, with_model=False, files=[], name="trivy-dbs"
    )
    os.environ["MEDAI_KEY_PASSWORD"] = PASSWORD
    try:
        build_bundle(BuildOptions(manifest=manifest, out=work / "bundle", sign_key=key, with_tools=False))
    finally:
        os.environ.pop("MEDAI_KEY_PASSWORD", None)  # the build already took it out once read
    return work / "bundle", pub, {refs[0]: db, refs[1]: jdb}


def test_trivy_dbs_are_carried_as_artifacts_and_verify_like_images(trivy_bundle):
    bundle, pub, digests = trivy_bundle
    index = BundleLayout.at(bundle).read_index()
    images = {a["ref"]: a for a in index["artifacts"] if a["kind"] == "image"}
    assert set(images) == set(digests)
    for ref, a in images.items():
        assert a["digest"] == digests[ref] and a["meta"]["artifact"] is True and a["meta"]["platforms"] == []
    # the SBOM step skipped them: no per-image SBOM names them
    sbom_images = [a for a in index["artifacts"] if a["kind"] == "sbom" and "/images/" in "/" + a["path"]]
    assert not [a for a in sbom_images if "trivy" in a["path"]], sbom_images
    res = verify_bundle(bundle, key=pub, write_report=False)
    assert res.ok, res.problems
    assert {c.digest for c in res.images if c.ok} >= set(digests.values())


def test_trivy_dbs_seed_into_a_registry_and_cosign_verifies(trivy_bundle, tmp_path):
    bundle, pub, digests = trivy_bundle
    d = tmp_path / "tls"
    ca, cert, key = make_tls_pair(d / "pki")
    with run_registry(d, tls=(cert, key)) as reg:
        res = seed_harbor(bundle, reg.host, pub, tmp_path / "evidence", ca_file=ca)
        assert sorted(p["dest"].rsplit("/", 2)[-2:][1] for p in res.pushed) == ["trivy-db:2", "trivy-java-db:1"]
        assert all(p["siteKeyVerifiedInRegistry"] and p["platformManifest"] is None for p in res.pushed)
        for p in res.pushed:
            r = subprocess.run(
                [str(ROOT / ".tools/bin/cosign"), "verify", "--key", str(pub), "--insecure-ignore-tlog", p["dest"]],
                capture_output=True,
                text=True,
                env={**os.environ, "SSL_CERT_FILE": str(ca)},
                timeout=120,
            )
            assert r.returncode == 0, r.stderr
        with RegistryClient(https=[reg.host], ca_file=ca) as c:
            m = c.get_manifest(parse_ref(f"{reg.host}/platform/aquasecurity/trivy-db:2"))
        assert json.loads(m.data)["layers"][0]["mediaType"] == DB_LAYER and m.digest in digests.values()
