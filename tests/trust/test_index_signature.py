"""One index-signature check, called by bundle verify, install (preinstall) and evidence."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from installer.bundle.layout import BundleLayout
from installer.compliance.report import bundle_status
from installer.core.errors import TrustError
from installer.trust.index_signature import index_signature_problem, read_signature_file, require_index_signature
from installer.trust.keys import SigningKey, public_key_pem
from installer.trust.verify import _check_index_signature

INDEX = b'{"kind": "BundleIndex", "files": []}\n'


@pytest.fixture
def signed(tmp_path):
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "index.json").write_bytes(INDEX)
    der = key.sign(INDEX)
    pub = tmp_path / "site.pub"
    pub.write_bytes(public_key_pem(key.public))
    return b, key, der, pub


def test_base64_signature_verifies_everywhere(signed):
    b, key, der, pub = signed
    (b / "index.json.sig").write_bytes(base64.b64encode(der) + b"\n")
    assert index_signature_problem(key.public, INDEX, (b / "index.json.sig").read_bytes()) is None
    assert _check_index_signature(BundleLayout.at(b), INDEX, key.public) is None
    assert bundle_status(b, pub)["signature"] == f"verified with {pub}"
    require_index_signature(key.public, INDEX, b / "index.json.sig")


def test_raw_der_signature_is_refused_by_every_caller(signed):
    """compliance/report.py used to accept raw bytes that trust/verify.py refused: now both refuse."""
    b, key, der, pub = signed
    (b / "index.json.sig").write_bytes(der)
    assert "not base64" in index_signature_problem(key.public, INDEX, der)
    assert "not base64" in _check_index_signature(BundleLayout.at(b), INDEX, key.public)
    st = bundle_status(b, pub)["signature"]
    assert st.startswith("INVALID") and "not base64" in st
    with pytest.raises(TrustError, match="not base64"):
        require_index_signature(key.public, INDEX, b / "index.json.sig")


def test_other_bytes_missing_symlink_and_oversized(signed, tmp_path):
    b, key, der, pub = signed
    sig = b / "index.json.sig"
    sig.write_bytes(base64.b64encode(der))
    assert "does not verify" in index_signature_problem(key.public, INDEX + b" ", sig.read_bytes())
    assert "missing" in index_signature_problem(key.public, INDEX, None)
    outside = tmp_path / "elsewhere.sig"
    outside.write_bytes(base64.b64encode(der))
    sig.unlink()
    sig.symlink_to(outside)
    with pytest.raises(TrustError, match="symlink is refused"):
        read_signature_file(sig)
    assert "symlink" in _check_index_signature(BundleLayout.at(b), INDEX, key.public)
    sig.unlink()
    sig.write_bytes(b"A" * 5000)
    with pytest.raises(TrustError, match="larger than"):
        read_signature_file(sig)
