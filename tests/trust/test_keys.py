"""Key format: cosign's encrypted PEM, both directions, checked against cosign itself."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess

import pytest

from installer.core.errors import TrustError
from installer.trust import keys
from tests.trust.conftest import COSIGN


def _envelope(path) -> dict:
    kind, body = keys._unpem(path.read_bytes(), str(path))
    assert kind == "ENCRYPTED SIGSTORE PRIVATE KEY"
    return json.loads(body)


def test_go_securesystemslib_vector_decrypts():
    # TestDecrypt's vector from secure-systems-lab/go-securesystemslib encrypted/encrypted_test.go
    enc = (b'{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},'
           b'"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},'
           b'"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}')
    assert keys.decrypt_envelope(enc, b"supersecret") == b"reallyimportant"
    with pytest.raises(TrustError, match="wrong password"):
        keys.decrypt_envelope(enc, b"supersecreT")


def test_generated_key_is_cosign_shaped_and_private(medai_keys):
    mode = stat.S_IMODE(os.stat(medai_keys.key).st_mode)
    assert mode == 0o600
    env = _envelope(medai_keys.key)
    assert env["kdf"]["name"] == "scrypt" and env["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(env["kdf"]["salt"])) == 32
    assert env["cipher"]["name"] == "nacl/secretbox" and len(base64.b64decode(env["cipher"]["nonce"])) == 24
    assert medai_keys.pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    loaded = keys.load_private_key(medai_keys.key, medai_keys.password.encode())
    assert loaded.fingerprint == keys.fingerprint(keys.load_public_key(medai_keys.pub))
    assert medai_keys.password not in repr(loaded)


def test_wrong_password_names_file_not_password(medai_keys):
    with pytest.raises(TrustError) as e:
        keys.load_private_key(medai_keys.key, b"not-the-password")
    assert str(medai_keys.key) in str(e.value) and "wrong password" in str(e.value)
    assert "not-the-password" not in str(e.value)


def test_unsupported_scrypt_parameters_refused(tmp_path):
    env = json.loads(keys.encrypt_envelope(b"x", b"pw"))
    env["kdf"]["params"]["N"] = 1 << 24  # would need 16 GiB
    with pytest.raises(TrustError, match="unsupported scrypt parameters"):
        keys.decrypt_envelope(json.dumps(env).encode(), b"pw")


def test_existing_key_is_not_overwritten(medai_keys):
    before = medai_keys.key.read_bytes()
    with pytest.raises(TrustError, match="already exists"):
        keys.generate_keypair(medai_keys.prefix, b"x")
    assert medai_keys.key.read_bytes() == before


def test_private_key_refused_where_public_key_expected(medai_keys):
    with pytest.raises(TrustError, match="not a PUBLIC KEY"):
        keys.load_public_key(medai_keys.key)


def test_cosign_reads_medai_private_key(medai_keys):
    out = subprocess.run([COSIGN, "public-key", "--key", str(medai_keys.key)], capture_output=True, text=True,
                         env={**os.environ, "COSIGN_PASSWORD": medai_keys.password}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == medai_keys.pub.read_text().strip()


def test_medai_reads_cosign_key_and_cosign_accepts_its_signature(cosign_keys, tmp_path):
    key = keys.load_private_key(cosign_keys.key, cosign_keys.password.encode())
    assert key.fingerprint == keys.fingerprint(keys.load_public_key(cosign_keys.pub))
    blob = tmp_path / "blob"
    blob.write_bytes(b"signed by medai with a cosign-made key\n")
    sig = tmp_path / "blob.sig"
    sig.write_bytes(base64.b64encode(key.sign(blob.read_bytes())))
    out = subprocess.run([COSIGN, "verify-blob", "--key", str(cosign_keys.pub), "--signature", str(sig),
                          "--insecure-ignore-tlog", str(blob)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Verified OK" in out.stderr + out.stdout


def test_cli_generate_never_prints_the_password(tmp_path):
    password = "cli-S3cret-pass-92841"
    out = subprocess.run(["medai", "keys", "generate", "--out", str(tmp_path / "k"), "--json"], capture_output=True,
                         text=True, env={**os.environ, "MEDAI_KEY_PASSWORD": password}, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["fingerprint"].startswith("sha256:")
    key_pem = (tmp_path / "k.key").read_text()
    body = "".join(key_pem.splitlines()[1:-1])
    for secret in (password, body[:40], body[-40:]):
        assert secret not in out.stdout and secret not in out.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "k.key").st_mode) == 0o600
    # the password really protects it
    assert keys.load_private_key(tmp_path / "k.key", password.encode()).fingerprint == doc["fingerprint"]


def test_cli_generate_without_password_fails_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MEDAI_KEY_PASSWORD"}
    out = subprocess.run(["medai", "keys", "generate", "--out", str(tmp_path / "k")], capture_output=True, text=True,
                         env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert out.returncode != 0
    assert not (tmp_path / "k.key").exists()


@pytest.mark.loopback
def test_signed_build_from_the_cli_keeps_the_password_out_of_output(medai_keys, seeded_registry, demo_sources, tmp_path):
    from tests.trust.conftest import trust_manifest

    manifest = trust_manifest(tmp_path / "m.yaml", demo_sources, seeded_registry)
    env = {**os.environ, "MEDAI_KEY_PASSWORD": medai_keys.password}
    out = subprocess.run(["medai", "bundle", "build", str(manifest), "--out", str(tmp_path / "b"), "--sign-key",
                          str(medai_keys.key), "--no-tools", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["signed"] is True
    assert medai_keys.password not in out.stdout + out.stderr
    # a wrong password: one-line error naming the key file, no password echoed, no finished bundle
    env["MEDAI_KEY_PASSWORD"] = "wrong-" + medai_keys.password
    out = subprocess.run(["medai", "bundle", "build", str(manifest), "--out", str(tmp_path / "b2"), "--sign-key",
                          str(medai_keys.key), "--no-tools"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(medai_keys.key) in errors[0] and "wrong password" in errors[0]
    assert medai_keys.password not in out.stdout + out.stderr
    assert not (tmp_path / "b2" / "index.json").exists()
