"""How the platform's generated secrets are made (random text, Harbor's htpasswd line and token key pair).

Where they live, which fields they have and which Secret they fill is the one catalogue's business
(installer/deploy/vault/catalogue.py), which calls these makers once per missing entry. Nothing here returns a
value to a caller other than the catalogue, or logs one.
"""
from __future__ import annotations

import datetime
import secrets
import string

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_ALNUM = string.ascii_letters + string.digits


def random_text(length: int) -> str:
    """Letters and digits, at least one of each class (what Harbor's and PostgreSQL's rules accept everywhere)."""
    while True:
        s = "".join(secrets.choice(_ALNUM) for _ in range(length))
        if any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s):
            return s


def _htpasswd(user: str, password: str) -> str:
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}"


def _token_pair() -> dict[str, str]:
    """The key pair Harbor core signs registry tokens with (self-signed; only core and the registry use it)."""

    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harbor-token-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    return {"tls.crt": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "tls.key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()}


REGISTRY_USER = "harbor_registry_user"  # roles/harbor values: registry.credentials.username


class Maker:
    """A value maker that declares the fields it makes (the catalogue's field names, the Secret's keys)."""

    def __init__(self, fields: tuple[str, ...], make):
        self.fields, self._make = fields, make

    def __call__(self) -> dict[str, str]:
        return self._make()


def keycloak_password() -> str:
    """Letters, digits and a symbol of each class, so Keycloak's password policy accepts it as an initial password."""
    return secrets.token_urlsafe(24) + "aA1!"


def harbor_makers() -> list[tuple[str, str, Maker]]:
    """(catalogue name under harbor/, roles/harbor medai_harbor_secret_names key, maker) for Harbor's components."""
    def registry_credentials():
        pw = random_text(32)
        return {"REGISTRY_PASSWD": pw, "REGISTRY_HTPASSWD": _htpasswd(REGISTRY_USER, pw)}

    def redis():
        """Harbor's Redis: the password its clients send (letters and digits: it sits in redis:// URLs as is) and
        the line charts/medai-harbor-redis's redis.conf includes from the Secret's file."""
        pw = random_text(32)
        return {"password": pw, "requirepass.conf": f"requirepass {pw}\n"}

    return [
        ("admin", "admin", Maker(("username", "password"), lambda: {"username": "admin", "password": random_text(32)})),
        # Harbor's encryption key: exactly 16 characters
        ("secret-key", "secret_key", Maker(("secretKey",), lambda: {"secretKey": random_text(16)})),
        ("core", "core", Maker(("secret", "CSRF_KEY"), lambda: {"secret": random_text(16), "CSRF_KEY": random_text(32)})),
        ("core-token", "core_token", Maker(("tls.crt", "tls.key"), _token_pair)),
        ("jobservice", "jobservice", Maker(("JOBSERVICE_SECRET",), lambda: {"JOBSERVICE_SECRET": random_text(16)})),
        ("registry", "registry", Maker(("REGISTRY_HTTP_SECRET",), lambda: {"REGISTRY_HTTP_SECRET": random_text(16)})),
        ("registry-credentials", "registry_credentials",
         Maker(("REGISTRY_PASSWD", "REGISTRY_HTPASSWD"), registry_credentials)),
        ("redis", "redis", Maker(("password", "requirepass.conf"), redis)),
    ]
