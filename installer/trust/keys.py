"""Signing keys in cosign's on-disk format, so cosign and medai read each other's keys.

PREFIX.key is a PEM block ``ENCRYPTED SIGSTORE PRIVATE KEY`` (cosign also wrote ``ENCRYPTED COSIGN PRIVATE KEY``
before 2.x; both load) whose body is the JSON envelope of go-securesystemslib's ``encrypted`` package:

    {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": B64},
     "cipher": {"name": "nacl/secretbox", "nonce": B64},
     "ciphertext": B64}                        # secretbox(PKCS#8 DER of the private key), Poly1305 tag first

B64 is standard base64 with padding (Go's encoding of []byte). PREFIX.pub is a PEM ``PUBLIC KEY`` (PKIX).
The password and the private key never appear in output or exceptions.
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from installer.core.atomic import atomic_write_bytes
from installer.core.errors import TrustError

PASSWORD_ENV = "MEDAI_KEY_PASSWORD"
PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
PEM_TYPES = (PEM_TYPE, "ENCRYPTED COSIGN PRIVATE KEY")
# The only scrypt settings go-securesystemslib writes (legacy, standard, OWASP); anything else is refused, as
# cosign refuses it, so a crafted key file cannot make us burn gigabytes of memory.
SCRYPT_WRITE = {"N": 32768, "r": 8, "p": 1}
SCRYPT_ACCEPTED = ({"N": 32768, "r": 8, "p": 1}, {"N": 65536, "r": 8, "p": 1}, {"N": 131072, "r": 8, "p": 1})
SALT_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=nacl.secret.SecretBox.KEY_SIZE,
                          maxmem=128 * r * n * 2 + (1 << 20))


def encrypt_envelope(plaintext: bytes, password: bytes) -> bytes:
    """go-securesystemslib ``encrypted.Encrypt``: the JSON envelope cosign stores inside the PEM block."""
    salt = nacl.utils.random(SALT_BYTES)
    key = _scrypt(password, salt, n=SCRYPT_WRITE["N"], r=SCRYPT_WRITE["r"], p=SCRYPT_WRITE["p"])
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": dict(SCRYPT_WRITE), "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decrypt_envelope(envelope: bytes, password: bytes, source: str = "key") -> bytes:
    try:
        doc = json.loads(envelope)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = {k: int(kdf["params"][k]) for k in ("N", "r", "p")}
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        sealed = base64.b64decode(doc["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise TrustError(f"{source}: not a cosign encrypted key envelope ({type(e).__name__})") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise TrustError(f"{source}: unsupported key encryption {kdf.get('name')}/{cipher.get('name')} (need scrypt + nacl/secretbox)")
    if params not in SCRYPT_ACCEPTED:
        raise TrustError(f"{source}: unsupported scrypt parameters {params}")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise TrustError(f"{source}: bad secretbox nonce length {len(nonce)}")
    key = _scrypt(password, salt, n=params["N"], r=params["r"], p=params["p"])
    try:
        return nacl.secret.SecretBox(key).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise TrustError(f"{source}: wrong password, or the key file is corrupted") from None


def _pem(kind: str, body: bytes) -> bytes:
    b64 = base64.b64encode(body).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode()


def _unpem(data: bytes, source: str) -> tuple[str, bytes]:
    text = data.decode("ascii", "replace")
    start = text.find("-----BEGIN ")
    if start < 0:
        raise TrustError(f"{source}: no PEM block found")
    head_end = text.find("-----", start + 11)
    kind = text[start + 11:head_end]
    end = text.find(f"-----END {kind}-----", head_end)
    if head_end < 0 or end < 0:
        raise TrustError(f"{source}: truncated PEM block")
    body = "".join(line.strip() for line in text[head_end + 5:end].splitlines() if ":" not in line)
    try:
        return kind, base64.b64decode(body, validate=True)
    except ValueError:
        raise TrustError(f"{source}: PEM block is not valid base64") from None


def public_key_der(pub: ec.EllipticCurvePublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_pem(pub: ec.EllipticCurvePublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(pub: ec.EllipticCurvePublicKey) -> str:
    """'sha256:<hex>' of the public key's DER (SubjectPublicKeyInfo): what reports and logs name a key by."""
    return "sha256:" + hashlib.sha256(public_key_der(pub)).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """An unlocked ECDSA private key. Its repr never shows key material."""

    private: ec.EllipticCurvePrivateKey
    source: str = ""

    def __repr__(self) -> str:
        return f"SigningKey({self.source or 'in memory'}, {self.fingerprint})"

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, data: bytes) -> bytes:
        """ASN.1 DER ECDSA-SHA256 signature: the bytes cosign base64-encodes."""
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


def _check_curve(key, source: str):
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        raise TrustError(f"{source}: unsupported key type {type(key).__name__}: medai signs and verifies ECDSA keys (cosign's default)")
    if not isinstance(key.curve, (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)):
        raise TrustError(f"{source}: unsupported curve {key.curve.name}")
    return key


def encrypt_private_key(private: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return _pem(PEM_TYPE, encrypt_envelope(der, password))


def _read_pem(p: Path, what: str) -> tuple[bytes, str, bytes]:
    """(file bytes, PEM type, DER body)."""
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TrustError(f"{p}: cannot read {what}: {e.strerror}") from None
    return (data, *_unpem(data, str(p)))


def load_private_key(path: str | os.PathLike, password: bytes | None = None) -> SigningKey:
    """Load a cosign-format encrypted key; the password comes from the argument, MEDAI_KEY_PASSWORD or a prompt."""
    p = Path(path)
    _, kind, body = _read_pem(p, "private key")
    if kind not in PEM_TYPES:
        raise TrustError(f"{p}: PEM type {kind!r} is not a cosign encrypted private key ({PEM_TYPE})")
    if password is None:
        password = read_password(f"Password for {p}: ")
    der = decrypt_envelope(body, password, str(p))
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise TrustError(f"{p}: decrypted key is not PKCS#8") from None
    return SigningKey(_check_curve(key, str(p)), str(p))


def load_public_key(path: str | os.PathLike) -> ec.EllipticCurvePublicKey:
    p = Path(path)
    data, kind, _ = _read_pem(p, "public key")
    if kind != "PUBLIC KEY":
        raise TrustError(f"{p}: PEM type {kind!r} is not a PUBLIC KEY (give the .pub file, never the private key)")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise TrustError(f"{p}: not a valid PEM public key") from None
    return _check_curve(key, str(p))


def verify_signature(pub: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def read_password(prompt: str = "Key password: ", confirm: bool = False) -> bytes:
    """MEDAI_KEY_PASSWORD when set (even empty, as cosign treats COSIGN_PASSWORD), else a hidden prompt.

    The variable is removed from this process's environment as it is read: no child started afterwards (pip
    building an sdist, apt, gpg, helm) can inherit it."""
    env = os.environ.pop(PASSWORD_ENV, None)
    if env is not None:
        return env.encode()
    if not sys.stdin.isatty():
        raise TrustError(f"no key password: set {PASSWORD_ENV} or run on a terminal to be prompted")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != first:
        raise TrustError("the two passwords differ")
    return first.encode()


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    if path.exists() and not force:
        raise TrustError(f"{path}: already exists (use --force to replace it)")

    atomic_write_bytes(path, data, mode=mode)  # created with exactly `mode` (umask neither widens nor narrows)


def generate_keypair(prefix: str | os.PathLike, password: bytes, force: bool = False) -> tuple[Path, Path]:
    """Write PREFIX.key (0600, encrypted) and PREFIX.pub (0644). Returns both paths."""
    prefix = Path(prefix)
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    if not prefix.parent.is_dir():
        raise TrustError(f"{prefix.parent}: directory does not exist")
    for p in (key_path, pub_path):
        if p.exists() and not force:
            raise TrustError(f"{p}: already exists (use --force to replace it)")
    private = ec.generate_private_key(ec.SECP256R1())
    _write_new(key_path, encrypt_private_key(private, password), 0o600, force)
    _write_new(pub_path, public_key_pem(private.public_key()), 0o644, force)
    return key_path, pub_path
