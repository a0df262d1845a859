"""Interop with cosign 2.5 (Debian trixie's build), the independent implementation, on a loopback registry."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from installer.core.errors import TrustError
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient
from installer.trust.cosign import verify_registry_image, verify_upstream
from installer.trust.keys import load_public_key
from tests.trust.conftest import COSIGN, trust_manifest

pytestmark = pytest.mark.loopback


def cosign(*args: str, password: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if password is not None:
        env["COSIGN_PASSWORD"] = password
    out = subprocess.run([COSIGN, *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert out.returncode == 0, f"cosign {' '.join(args)}:\n{out.stderr}"
    return out


def images_of(bundle: Path) -> list[dict]:
    return [a for a in json.loads((bundle / "index.json").read_text())["artifacts"] if a["kind"] == "image"]


def test_cosign_verify_blob_accepts_the_index_signature(signed_bundle, medai_keys, tmp_path):
    cosign("verify-blob", "--key", str(medai_keys.pub), "--signature", str(signed_bundle / "index.json.sig"),
           "--insecure-ignore-tlog", str(signed_bundle / "index.json"))
    edited = tmp_path / "index.json"
    edited.write_bytes((signed_bundle / "index.json").read_bytes().replace(b'"0.1.0"', b'"0.1.1"'))
    out = cosign("verify-blob", "--key", str(medai_keys.pub), "--signature", str(signed_bundle / "index.json.sig"),
                 "--insecure-ignore-tlog", str(edited), check=False)
    assert out.returncode != 0


def test_push_then_cosign_verifies_the_copies(signed_bundle, registry, medai_keys, other_keys):
    dest = f"{registry.host}/pushed"
    out = subprocess.run(
        ["medai", "bundle", "push", str(signed_bundle), dest, "--json", "--key", str(medai_keys.pub)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    pushed = json.loads(out.stdout)
    images = images_of(signed_bundle)
    assert len(pushed) == len(images) == 3
    assert all(p["signatures"] for p in pushed)
    for p in pushed:
        ref = f"{p['dest'].rsplit(':', 1)[0]}@{p['digest']}"
        ok = cosign("verify", "--key", str(medai_keys.pub), "--insecure-ignore-tlog", "--allow-http-registry", ref)
        payload = json.loads(ok.stdout)
        assert payload[0]["critical"]["image"]["docker-manifest-digest"] == p["digest"]
        bad = cosign("verify", "--key", str(other_keys.pub), "--insecure-ignore-tlog", "--allow-http-registry", ref, check=False)
        assert bad.returncode != 0
    # and medai's own registry-side verifier agrees
    with RegistryClient() as client:
        for p in pushed:
            check, _ = verify_registry_image(client, p["dest"], p["digest"], load_public_key(medai_keys.pub))
            assert check.ok, check.detail


@pytest.fixture(scope="module")
def cosign_signed_image(seeded_registry, cosign_keys) -> tuple[str, str]:
    """A copy of demo/base in its own repository, signed by `cosign sign --key` (tlog off, plain HTTP)."""
    src = seeded_registry.base
    ref = f"{seeded_registry.host}/trust/upstream:1.0"
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{src}", f"docker://{ref}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with RegistryClient() as client:
        digest = client.head_manifest(parse_ref(ref))
    cosign(
        "sign",
        "--key",
        str(cosign_keys.key),
        "--tlog-upload=false",
        "--allow-http-registry",
        "--yes",
        f"{ref.rsplit(':', 1)[0]}@{digest}",
        password=cosign_keys.password,
    )
    return ref, digest


def test_cosign_signature_passes_medais_verifier(cosign_signed_image, cosign_keys, medai_keys, seeded_registry):
    ref, digest = cosign_signed_image
    with RegistryClient() as client:
        check, layers = verify_registry_image(client, ref, digest, load_public_key(cosign_keys.pub))
        assert check.ok, check.detail
        assert verify_upstream(client, ref, digest, cosign_keys.pub) == layers
        with pytest.raises(TrustError, match=f"image {ref}: upstream signature check .* failed"):
            verify_upstream(client, ref, digest, medai_keys.pub)
        # an image nobody signed
        tool_digest = client.head_manifest(parse_ref(seeded_registry.tool))
        with pytest.raises(TrustError, match="no cosign signature found"):
            verify_upstream(client, seeded_registry.tool, tool_digest, cosign_keys.pub)


def test_build_checks_upstream_signature_and_carries_it(
    cosign_signed_image, cosign_keys, medai_keys, other_keys, seeded_registry, demo_sources, tmp_path
):
    """An image entry with `key`: the build verifies the upstream signature first, and fails without a match."""
    from installer.collect.build import BuildOptions, build_bundle
    from installer.trust.verify import verify_bundle

    ref, digest = cosign_signed_image
    manifest = trust_manifest(tmp_path / "m.yaml", demo_sources, seeded_registry)
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["images"] = [{"ref": ref, "key": str(cosign_keys.pub)}]
    manifest.write_text(yaml.safe_dump(doc))
    os.environ["MEDAI_KEY_PASSWORD"] = medai_keys.password
    try:
        build_bundle(BuildOptions(manifest=manifest, out=tmp_path / "b", sign_key=medai_keys.key, with_tools=False))
        # both the upstream's and the site's signature travel in the bundle
        res = verify_bundle(tmp_path / "b", key=medai_keys.pub, write_report=False)
        assert res.ok, res.problems
        up = next(c for c in res.images if c.image == ref)
        assert up.ok
        from installer.oci.layout import OCILayout
        from installer.trust.verify import check_layout_image

        oci = OCILayout(tmp_path / "b" / "oci")
        assert check_layout_image(oci, oci.refs(), ref, digest, load_public_key(cosign_keys.pub)).ok

        doc["spec"]["images"] = [{"ref": ref, "key": str(other_keys.pub)}]
        manifest.write_text(yaml.safe_dump(doc))
        os.environ["MEDAI_KEY_PASSWORD"] = medai_keys.password  # the first build took it out of the environment
        with pytest.raises(TrustError, match=f"image {ref}"):
            build_bundle(BuildOptions(manifest=manifest, out=tmp_path / "b2", sign_key=medai_keys.key, with_tools=False))
        assert not (tmp_path / "b2" / "index.json").exists()
    finally:
        os.environ.pop("MEDAI_KEY_PASSWORD", None)


def test_no_secret_in_bundle_or_output(signed_bundle, medai_keys):
    """Neither the key password nor any part of the private key is in any file of the bundle."""
    key_pem = medai_keys.key.read_text()
    body = "".join(key_pem.splitlines()[1:-1])
    needles = [medai_keys.password.encode(), body[:48].encode(), b"PRIVATE KEY"]
    from cryptography.hazmat.primitives import serialization

    from installer.trust.keys import load_private_key

    sk = load_private_key(medai_keys.key, medai_keys.password.encode())
    der = sk.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    scalar = sk.private.private_numbers().private_value.to_bytes(32, "big")
    needles += [der[-40:], scalar]
    for p in signed_bundle.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for n in needles:
                assert n not in data, f"{p}: contains secret material"


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    """docker-registry serving TLS on loopback with a throwaway private CA."""
    from tests.support.servers import make_tls_pair, run_registry

    d = tmp_path_factory.mktemp("tls-registry")
    ca, cert, key = make_tls_pair(d / "pki")
    with run_registry(d, tls=(cert, key)) as reg:
        yield reg.host, ca


def test_push_over_tls_with_a_private_ca(signed_bundle, tls_registry, medai_keys):
    host, ca = tls_registry
    out = subprocess.run(
        ["medai", "bundle", "push", str(signed_bundle), f"{host}/site", "--ca-file", str(ca), "--json", "--key", str(medai_keys.pub)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    pushed = json.loads(out.stdout)
    assert len(pushed) == 3 and all(p["signatures"] for p in pushed)
    with RegistryClient(https=[host], ca_file=ca) as client:
        for p in pushed:
            check, _ = verify_registry_image(client, p["dest"], p["digest"], load_public_key(medai_keys.pub))
            assert check.ok, check.detail
    # without the CA the registry's certificate is not trusted: a one-line error, non-zero exit
    out = subprocess.run(
        [
            "medai",
            "bundle",
            "push",
            str(signed_bundle),
            f"{host}/again",
            "--ca-file",
            "/etc/ssl/certs/ca-certificates.crt",
            "--key",
            str(medai_keys.pub),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and "CERTIFICATE_VERIFY_FAILED" in errors[0], out.stderr


def test_rebuild_replaces_its_own_signature(signed_bundle, medai_keys, seeded_registry, demo_sources, tmp_path):
    """Signing again (a rebuild into the same directory) keeps one signature per key, not one per run."""
    import shutil

    from installer.oci.layout import OCILayout
    from installer.trust.signing import existing_layers, sign_build, signature_ref_name

    b = tmp_path / "b"
    shutil.copytree(signed_bundle, b)
    images = [(a["ref"], a["digest"]) for a in images_of(b)]
    oci = OCILayout(b / "oci", b / ".tmp")
    before = {r: existing_layers(oci, signature_ref_name(r, d)) for r, d in images}
    assert all(len(v) == 1 for v in before.values())
    from installer.trust.keys import load_private_key

    written = sign_build(b, images, load_private_key(medai_keys.key, medai_keys.password.encode()))
    assert written and all(p.is_file() for p in written)
    after = {r: existing_layers(oci, signature_ref_name(r, d)) for r, d in images}
    assert all(len(v) == 1 for v in after.values())
    assert all(after[r][0].payload == before[r][0].payload for r in after)  # same claim, one signature (kept when it already verifies)


# ---------------------------------------------------------------- push verifies first


def test_push_refuses_without_key_and_is_loud_when_told_to_skip(signed_bundle, registry, medai_home):
    out = subprocess.run(
        ["medai", "bundle", "push", str(signed_bundle), f"{registry.host}/nokey"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2 and "no --key" in out.stderr and "--insecure-skip-signature" in out.stderr
    out = subprocess.run(
        ["medai", "bundle", "push", str(signed_bundle), f"{registry.host}/skipped", "--insecure-skip-signature"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "SIGNATURES NOT CHECKED" in out.stderr


@pytest.mark.parametrize("case", ["edited-oci-index", "retargeted-ref"])
def test_push_of_an_edited_oci_index_is_refused(signed_bundle, registry, medai_keys, tmp_path, medai_home, case):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(signed_bundle, b, symlinks=True)
    oci_index = b / "oci" / "index.json"
    doc = json.loads(oci_index.read_text())
    if case == "edited-oci-index":
        doc["manifests"].append(dict(doc["manifests"][0], annotations={"org.opencontainers.image.ref.name": "evil/extra:1"}))
    else:  # point the first image's name at another manifest of the layout
        a, b2 = doc["manifests"][0], next(m for m in doc["manifests"][1:] if m["digest"] != doc["manifests"][0]["digest"])
        a["digest"], a["size"] = b2["digest"], b2["size"]
    oci_index.write_text(json.dumps(doc))
    out = subprocess.run(
        ["medai", "bundle", "push", str(b), f"{registry.host}/tampered", "--key", str(medai_keys.pub)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1, out.stderr
    assert "oci/index.json" in errors[0] and "refused" in errors[0]
    from installer.deploy.push import destination
    from installer.oci.refs import parse_ref

    with RegistryClient() as client:  # nothing reached the registry: the copy was refused before any push
        for a in images_of(signed_bundle):
            assert client.head_manifest(parse_ref(destination(f"{registry.host}/tampered", a["ref"]) + ":x"), a["digest"]) is None


def test_push_help_renders():
    """`[/PREFIX]` in a help text was read as rich markup and crashed `bundle push --help`."""
    out = subprocess.run(["medai", "bundle", "push", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-500:]
    assert "--insecure-skip-signature" in out.stdout and "--key" in out.stdout
