"""Keyless verification behind the gap, with a real production Sigstore bundle and no network at all.

Signing keyless (sign_index_keyless) needs an OIDC identity and Fulcio/Rekor on the internet: NOT executed here.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from installer.core.errors import TrustError
from installer.trust import sigstore as ss

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "sigstore"
SIGSTORE_BUNDLE = FIXTURES / "rfc8785-0.1.2-py3-none-any.whl.sigstore"
WHEEL = "rfc8785-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="session")
def signed_wheel(tmp_path_factory) -> Path:
    """The artifact the fixture bundle signs, fetched as the fixture's README says (pip, before going offline)."""
    if not SIGSTORE_BUNDLE.is_file():
        pytest.skip(f"{SIGSTORE_BUNDLE} not present")
    d = tmp_path_factory.mktemp("wheel")
    out = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "rfc8785==0.1.2", "-d", str(d)],
                         capture_output=True, text=True, timeout=300)
    wheel = d / WHEEL
    if out.returncode != 0 or not wheel.is_file():
        pytest.skip(f"cannot fetch {WHEEL} from the package index: {out.stderr.strip()[-200:]}")
    from installer.core.hashing import sha256_file

    assert sha256_file(wheel) == WHEEL_SHA256
    return wheel


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails loudly; proxies point at a closed loopback port as well."""
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    attempts: list = []

    def refuse(self, address, *a, **kw):
        attempts.append(address)
        raise OSError(f"network disabled in this test: connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts
    assert not attempts, f"verification tried to reach the network: {attempts}"


@pytest.mark.network  # the signed wheel is fetched from PyPI first
def test_production_bundle_verifies_offline(signed_wheel, no_network):
    check = ss.verify_artifact(signed_wheel, SIGSTORE_BUNDLE, IDENTITY, ISSUER, offline=True)
    assert check.ok and "production" in check.trusted_root


@pytest.mark.network  # the signed wheel is fetched from PyPI first
def test_changed_artifact_is_refused(signed_wheel, tmp_path, no_network):
    changed = tmp_path / WHEEL
    data = bytearray(signed_wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed.write_bytes(bytes(data))
    check = ss.check_artifact(changed, SIGSTORE_BUNDLE, IDENTITY, ISSUER)
    assert not check.ok
    with pytest.raises(TrustError, match=WHEEL):
        ss.verify_artifact(changed, SIGSTORE_BUNDLE, IDENTITY, ISSUER)


@pytest.mark.network
@pytest.mark.parametrize("identity,issuer", [
    (IDENTITY.replace("v0.1.2", "v0.1.3"), ISSUER),
    ("https://github.com/attacker/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2", ISSUER),
    (IDENTITY, "https://accounts.google.com"),
])
def test_wrong_identity_or_issuer_is_refused(signed_wheel, identity, issuer, no_network):
    check = ss.check_artifact(signed_wheel, SIGSTORE_BUNDLE, identity, issuer)
    assert not check.ok and "verification failed" in check.detail
    with pytest.raises(TrustError):
        ss.verify_artifact(signed_wheel, SIGSTORE_BUNDLE, identity, issuer)


@pytest.mark.network  # the signed wheel is fetched from PyPI first
def test_carried_trusted_root_is_used_only_when_anchored(signed_wheel, tmp_path, no_network):
    carried = tmp_path / "trusted_root.json"
    carried.write_bytes(ss.production_root_json())
    assert ss.anchored_root(carried) == carried
    assert ss.verify_artifact(signed_wheel, SIGSTORE_BUNDLE, IDENTITY, ISSUER, trusted_root=carried).ok

    # a root that brings its own CA (what an attacker who rebuilt the bundle would carry) is refused
    doc = json.loads(carried.read_text())
    doc["certificateAuthorities"].append({**doc["certificateAuthorities"][0], "certChain": {"certificates": [
        {"rawBytes": "TUlJQmF0dGFja2VyLWNh"}]}})
    evil = tmp_path / "evil_root.json"
    evil.write_text(json.dumps(doc))
    with pytest.raises(TrustError, match="not in sigstore-python's production root"):
        ss.anchored_root(evil)
    # unless the operator anchors it out of band
    assert ss.anchored_root(evil, anchor=evil) == evil


@pytest.mark.network  # the signed wheel is fetched from PyPI first
def test_malformed_sigstore_bundle_is_a_one_line_error(signed_wheel, tmp_path):
    bad = tmp_path / "bad.sigstore"
    bad.write_text("{}")
    with pytest.raises(TrustError, match="not a valid Sigstore bundle"):
        ss.verify_artifact(signed_wheel, bad, IDENTITY, ISSUER)


def test_keyless_signing_without_identity_fails_clearly(tmp_path, monkeypatch):
    for var in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "SIGSTORE_ID_TOKEN", "GITLAB_CI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sigstore.oidc.detect_credential", lambda *a, **k: None)
    (tmp_path / "index.json").write_bytes(b"{}")
    with pytest.raises(TrustError, match="no OIDC identity"):
        ss.sign_index_keyless(tmp_path, b"{}")


@pytest.mark.loopback
def test_bundle_verify_checks_the_keyless_signature_when_asked(bundle_copy, medai_keys, no_network):
    from installer.trust.verify import verify_bundle

    # asked for, but the bundle has none: a named failure, not a pass
    res = verify_bundle(bundle_copy, key=medai_keys.pub, sigstore_identity=IDENTITY, sigstore_issuer=ISSUER,
                        write_report=False)
    assert not res.ok and any("index.sigstore.json: missing" in p for p in res.problems)

    # a genuine Sigstore bundle, but over another artifact, with the production root carried beside it
    shutil.copyfile(SIGSTORE_BUNDLE, bundle_copy / "index.sigstore.json")
    (bundle_copy / "sigstore").mkdir(exist_ok=True)
    # (not listed in index.json, so the files check also flags it: carried roots must be written before the index)
    (bundle_copy / "sigstore" / "trusted_root.json").write_bytes(ss.production_root_json())
    res = verify_bundle(bundle_copy, key=medai_keys.pub, sigstore_identity=IDENTITY, sigstore_issuer=ISSUER,
                        write_report=False)
    assert res.sigstore["result"] == "failed" and res.sigstore["trustedRoot"].endswith("trusted_root.json")
    assert any(p.startswith("index.json: Sigstore verification failed") for p in res.problems)
    assert any("extra: sigstore/trusted_root.json" in p for p in res.problems)


def test_identity_without_issuer_is_refused(tmp_path):
    from installer.core.errors import BundleError
    from installer.trust.verify import verify_bundle

    with pytest.raises((TrustError, BundleError)):
        verify_bundle(tmp_path, sigstore_identity=IDENTITY)


@pytest.mark.loopback
@pytest.mark.network
def test_build_checks_a_files_entry_sigstore_bundle(signed_wheel, file_server, tmp_path):
    """files[] with sigstore {bundle, identity, issuer}: the build verifies before accepting the file."""
    import yaml

    from installer.collect.build import BuildOptions, build_bundle

    served = file_server.root / "sigstore-upstream"
    served.mkdir(exist_ok=True)
    shutil.copyfile(signed_wheel, served / WHEEL)

    def manifest(identity: str) -> Path:
        doc = {"apiVersion": "medai/v1", "kind": "Bundle", "metadata": {"name": "sigstore-file"}, "spec": {
            "files": [{"name": WHEEL, "url": f"{file_server.url}/sigstore-upstream/{WHEEL}", "sha256": WHEEL_SHA256,
                       "sigstore": {"bundle": str(SIGSTORE_BUNDLE), "identity": identity, "issuer": ISSUER}}]}}
        p = tmp_path / "m.yaml"
        p.write_text(yaml.safe_dump(doc))
        return p

    build_bundle(BuildOptions(manifest=manifest(IDENTITY), out=tmp_path / "ok", with_tools=False))
    assert (tmp_path / "ok" / "files" / WHEEL).is_file() and (tmp_path / "ok" / "index.json").is_file()
    with pytest.raises(TrustError, match=WHEEL):
        build_bundle(BuildOptions(manifest=manifest(IDENTITY + "-evil"), out=tmp_path / "bad", with_tools=False))
    assert not (tmp_path / "bad" / "index.json").exists()
