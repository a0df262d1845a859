"""Images from a real registry (Debian docker-registry on loopback) into the bundle's OCI layout; skopeo reads
the result back. Images are built by tests/support/images.py and pushed with skopeo."""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from installer.core.errors import RegistryError
from installer.oci.images import collect_images, list_image_refs, platform_manifests, push_image, signature_ref
from installer.oci.layout import OCILayout
from installer.oci.media_types import REF_NAME
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient, find_credentials

pytestmark = pytest.mark.loopback


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def layout(tmp_path):
    return OCILayout(tmp_path / "bundle" / "oci")


@pytest.fixture
def client():
    with RegistryClient(retries=2, backoff=0.01) as c:
        yield c


def test_parse_ref_normalises_like_docker():
    r = parse_ref("nginx:1.27")
    assert (r.registry, r.repository, r.tag, r.api_host) == ("docker.io", "library/nginx", "1.27", "registry-1.docker.io")
    assert r.name == "docker.io/library/nginx:1.27"
    assert parse_ref("docker.io/library/nginx:1.27") == r
    assert parse_ref("ghcr.io/org/app").name == "ghcr.io/org/app:latest"
    d = "sha256:" + "a" * 64
    r = parse_ref(f"127.0.0.1:5000/demo/app:1.0@{d}")
    assert (r.registry, r.repository, r.tag, r.digest, r.reference) == ("127.0.0.1:5000", "demo/app", "1.0", d, d)
    with pytest.raises(RegistryError, match="is not an image reference"):
        parse_ref("demo/App:1.0")


def test_auth_file_keys_as_docker_and_podman_write_them(tmp_path):
    import base64

    f = tmp_path / "config.json"
    f.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpass").decode()},
        "quay.io": {"auth": base64.b64encode(b"q:1").decode()},
        "quay.io/team": {"auth": base64.b64encode(b"team:2").decode()},
    }}))
    assert find_credentials(parse_ref("nginx:1"), [f]) == ("hubuser", "hubpass")
    assert find_credentials(parse_ref("quay.io/team/app:1"), [f]) == ("team", "2")
    assert find_credentials(parse_ref("quay.io/other/app:1"), [f]) == ("q", "1")
    assert find_credentials(parse_ref("ghcr.io/x/y:1"), [f]) is None


def test_collect_shares_layers_and_skopeo_reads_the_layout(seeded_registry, layout, client):
    s = seeded_registry
    got = collect_images(client, layout, s.single, ["linux/amd64"])
    assert [g.ref for g in got] == s.single
    # every distinct blob travelled once: the shared base layer is fetched for the first image only
    distinct: dict[str, int] = {}
    for g in got:
        for d in g.blobs:
            if d != g.digest:
                distinct[d] = layout.blob_path(d).stat().st_size
    assert client.stats.blob_bytes == sum(distinct.values())
    assert s.base_layer_digest in got[0].blobs and s.base_layer_digest in got[1].blobs
    assert sum(g.fetched_bytes + g.reused_bytes for g in got) == sum(distinct.values())
    assert got[1].fetched_bytes < sum(distinct[d] for d in got[1].blobs if d != got[1].digest)
    # content-addressed, checked: each blob's name is its sha256
    for d in layout.blobs():
        assert "sha256:" + hashlib.sha256(layout.blob_path(d).read_bytes()).hexdigest() == d
    assert layout.verify() == []
    index = json.loads(layout.index_path.read_text())
    assert sorted(m["annotations"][REF_NAME] for m in index["manifests"]) == sorted(s.single)
    assert json.loads((layout.path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}

    for g in got:
        insp = skopeo("inspect", f"oci:{layout.path}:{g.ref}")
        assert insp.returncode == 0, insp.stderr
        assert json.loads(insp.stdout)["Digest"] == g.digest
        dest = f"{s.host}/readback/{g.ref.rsplit('/', 1)[1]}"
        cp = skopeo("copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout.path}:{g.ref}", f"docker://{dest}")
        assert cp.returncode == 0, cp.stderr
        remote = skopeo("inspect", "--tls-verify=false", f"docker://{dest}")
        assert json.loads(remote.stdout)["Digest"] == g.digest

    # a no-change rerun fetches no blob and rewrites the same index.json
    before = layout.index_path.read_bytes()
    bytes_before = client.stats.blob_bytes
    again = collect_images(client, layout, list(reversed(s.single)), ["linux/amd64"])
    assert client.stats.blob_bytes == bytes_before
    assert all(g.fetched_bytes == 0 for g in again)
    assert layout.index_path.read_bytes() == before


def test_multi_arch_reduced_to_amd64_keeps_index_digest(seeded_registry, layout, client):
    s = seeded_registry
    [img] = collect_images(client, layout, [s.multi], ["linux/amd64"])
    assert img.digest == s.multi_index_digest  # what charts and users pull by
    assert img.platforms == ["linux/amd64"]
    index = json.loads(layout.read_blob(img.digest))
    by_arch = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert layout.has_blob(by_arch["amd64"]) and not layout.has_blob(by_arch["arm64"])
    arm = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{s.host}/demo/multi@{by_arch['arm64']}"],
        capture_output=True, text=True, check=True).stdout)
    for layer in arm["layers"]:
        if layer["digest"] != s.base_layer_digest:
            assert not layout.has_blob(layer["digest"])  # arm64-only content was never fetched
    assert [p for p, _, _ in platform_manifests(layout, img.digest)] == ["linux/amd64"]
    assert layout.verify() == []

    insp = skopeo("inspect", "--override-arch", "amd64", f"oci:{layout.path}:{img.ref}")
    assert insp.returncode == 0, insp.stderr
    cp = skopeo("copy", "--quiet", "--override-arch", "amd64", "--dest-tls-verify=false",
                f"oci:{layout.path}:{img.ref}", f"docker://{s.host}/readback/multi:amd64")
    assert cp.returncode == 0, cp.stderr

    # both platforms on request, still under the same index digest
    both = collect_images(client, OCILayout(layout.path.parent / "both"), [s.multi], ["linux/amd64", "linux/arm64"])
    assert both[0].digest == s.multi_index_digest and both[0].platforms == ["linux/amd64", "linux/arm64"]

    with pytest.raises(RegistryError, match=r"demo/multi:1.0: no manifest for linux/s390x .*linux/amd64, linux/arm64"):
        collect_images(client, layout, [s.multi], ["linux/s390x"])


def test_digest_refs_and_tag_at_digest(seeded_registry, layout, client):
    s = seeded_registry
    [tagged] = collect_images(client, OCILayout(layout.path.parent / "t"), [s.app], ["linux/amd64"])
    by_digest = f"{s.host}/demo/app@{tagged.digest}"
    both = f"{s.app}@{tagged.digest}"
    got = collect_images(client, layout, [by_digest, both], ["linux/amd64"])
    assert [g.ref for g in got] == [by_digest, both]
    assert {g.digest for g in got} == {tagged.digest}
    assert skopeo("inspect", f"oci:{layout.path}:{both}").returncode == 0
    with pytest.raises(RegistryError, match="demo/app@sha256:0+: manifest sha256:0+ not found"):
        collect_images(client, layout, [f"{s.host}/demo/app@sha256:{'0' * 64}"], ["linux/amd64"])


def test_push_image_with_signature_tag(seeded_registry, layout, client):
    s = seeded_registry
    [img] = collect_images(client, layout, [s.app], ["linux/amd64"])
    # a signature manifest as the trust side writes it (cosign layout: tag sha256-<hex>.sig in the same repo)
    payload = layout.write_blob(b'{"critical":{"image":{"docker-manifest-digest":"%s"}}}' % img.digest.encode())
    config = layout.write_blob(b"{}")
    sig_manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": payload,
                    "size": layout.blob_path(payload).stat().st_size,
                    "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}],
    }).encode()
    sig_digest = layout.write_blob(sig_manifest)
    sig_name = signature_ref(img.ref, img.digest)
    assert sig_name == f"{s.host}/demo/app:sha256-{img.digest[7:]}.sig"
    layout.set_ref(sig_name, sig_digest, "application/vnd.oci.image.manifest.v1+json", len(sig_manifest))
    assert list(list_image_refs(layout)) == [img.ref]

    res = push_image(client, layout, img.ref, f"{s.host}/pushed/app")
    assert res.dest == f"{s.host}/pushed/app:1.0" and res.digest == img.digest
    assert res.signatures == [f"{s.host}/pushed/app:sha256-{img.digest[7:]}.sig"]
    remote = skopeo("inspect", "--tls-verify=false", f"docker://{s.host}/pushed/app:1.0")
    assert json.loads(remote.stdout)["Digest"] == img.digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{res.signatures[0]}")
    assert raw.returncode == 0 and raw.stdout.encode() == sig_manifest


def test_push_of_full_and_reduced_index(seeded_registry, tmp_path, client):
    s = seeded_registry
    full = OCILayout(tmp_path / "full" / "oci")
    collect_images(client, full, [s.multi], ["linux/amd64", "linux/arm64"])
    res = push_image(client, full, s.multi, f"{s.host}/pushed/multi:all")
    assert res.digest == s.multi_index_digest
    assert skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{s.host}/pushed/multi:all").returncode == 0

    reduced = OCILayout(tmp_path / "reduced" / "oci")
    collect_images(client, reduced, [s.multi], ["linux/amd64"])
    # distribution 2.x refuses an index whose children it lacks; the error says so on one line
    with pytest.raises(RegistryError) as e:
        push_image(client, reduced, s.multi, f"{s.host}/pushed/reduced:1.0")
    assert "left-out platform" in str(e.value) and "\n" not in str(e.value)

    # opt-in fallback: the tag points at the bundled platform's manifest
    res = push_image(client, reduced, s.multi, f"{s.host}/pushed/reduced:1.0", platform_fallback=True)
    amd64 = next(m["digest"] for m in json.loads(reduced.read_blob(s.multi_index_digest))["manifests"]
                 if m["platform"]["architecture"] == "amd64")
    assert res.digest == amd64 and res.fallback == f"linux/amd64 manifest {amd64}"
    remote = skopeo("inspect", "--tls-verify=false", f"docker://{s.host}/pushed/reduced:1.0")
    assert json.loads(remote.stdout)["Digest"] == amd64


def test_prune_drops_only_unreferenced_blobs(seeded_registry, layout, client):
    s = seeded_registry
    base, app = collect_images(client, layout, [s.base, s.app], ["linux/amd64"])
    layout.remove_refs([app.ref])
    gone = layout.prune()
    assert set(gone) == set(app.blobs) - set(base.blobs)
    assert layout.has_blob(s.base_layer_digest)  # still needed by demo/base
    assert layout.verify() == [] and list(layout.refs()) == [base.ref]


def test_layout_index_updates_from_two_layout_objects_are_not_lost(seeded_registry, layout, client):
    import threading

    s = seeded_registry
    [img] = collect_images(client, layout, [s.app], ["linux/amd64"])
    a, b = OCILayout(layout.path), OCILayout(layout.path)
    entry = layout.resolve(img.ref)

    def tag(lay, prefix):
        for i in range(20):
            lay.set_ref(f"{s.host}/demo/app:{prefix}{i}", entry.digest, entry.media_type, entry.size)

    ts = [threading.Thread(target=tag, args=(a, "a")), threading.Thread(target=tag, args=(b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(layout.refs()) == 41
