"""Secrets medai generates for the platform tier (PostgreSQL owners, Harbor's components), kept in Vault.

Each secret is generated once into the SecretSink (Vault KV) and never again while Vault holds it, so reruns and
upgrades keep every credential. ``harbor_secret_layout`` says which Vault path/key fills which key of which
Kubernetes Secret the harbor role points the chart at (roles/harbor ``medai_harbor_secret_names``).
Nothing here returns or logs a value.
"""
from __future__ import annotations

import datetime
import secrets
import string
from collections.abc import Mapping

from installer.deploy.secret_sink import SecretSink

_ALNUM = string.ascii_letters + string.digits


def random_text(length: int) -> str:
    """Letters and digits, at least one of each class (what Harbor's and PostgreSQL's rules accept everywhere)."""
    while True:
        s = "".join(secrets.choice(_ALNUM) for _ in range(length))
        if any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s):
            return s


def _ensure(sink: SecretSink, path: str, make) -> bool:
    if sink.has_secret(path):
        return False
    sink.put_secret(path, make())
    return True


def ensure_postgres_passwords(cluster: str, databases: list[str], sink: SecretSink) -> list[str]:
    """``medai/<cluster>/postgres/<db>`` {password}: the owner password roles/postgres puts in <db>-db-credentials."""
    paths = [f"medai/{cluster}/postgres/{db}" for db in databases]
    return [p for p in paths if _ensure(sink, p, lambda: {"password": random_text(32)})]


def _htpasswd(user: str, password: str) -> str:
    import bcrypt

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}"


def _token_pair() -> dict[str, str]:
    """The key pair Harbor core signs registry tokens with (self-signed; only core and the registry use it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

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


def _harbor_makers() -> dict[str, callable]:
    def registry_credentials():
        pw = random_text(32)
        return {"REGISTRY_PASSWD": pw, "REGISTRY_HTPASSWD": _htpasswd(REGISTRY_USER, pw)}

    return {
        "admin": lambda: {"HARBOR_ADMIN_PASSWORD": random_text(32)},
        "secret-key": lambda: {"secretKey": random_text(16)},   # Harbor's encryption key: exactly 16 characters
        "core": lambda: {"secret": random_text(16), "CSRF_KEY": random_text(32)},
        "core-token": _token_pair,
        "jobservice": lambda: {"JOBSERVICE_SECRET": random_text(16)},
        "registry": lambda: {"REGISTRY_HTTP_SECRET": random_text(16)},
        "registry-credentials": registry_credentials,
    }


# Vault item -> roles/harbor medai_harbor_secret_names key
_HARBOR_SECRET_NAMES = {"admin": "admin", "secret-key": "secret_key", "core": "core", "core-token": "core_token",
                        "jobservice": "jobservice", "registry": "registry", "registry-credentials": "registry_credentials"}


def ensure_harbor_secrets(cluster: str, sink: SecretSink) -> list[str]:
    """Generate Harbor's component secrets into ``medai/<cluster>/harbor/<item>`` where missing."""
    return [f"medai/{cluster}/harbor/{item}" for item, make in _harbor_makers().items()
            if _ensure(sink, f"medai/{cluster}/harbor/{item}", make)]


def harbor_secret_layout(cluster: str, secret_names: Mapping[str, str]) -> dict[str, str]:
    """{Kubernetes Secret name (from the role's medai_harbor_secret_names): Vault path holding its data}."""
    return {secret_names[key]: f"medai/{cluster}/harbor/{item}" for item, key in _HARBOR_SECRET_NAMES.items()}


def ensure_inference_api_key(cluster: str, sink: SecretSink) -> list[str]:
    """``medai/<cluster>/inference/api-key`` {api-key}: what vLLM requires on /v1 (the chart's secretKeyRef)."""
    path = f"medai/{cluster}/inference/api-key"
    return [path] if _ensure(sink, path, lambda: {"api-key": random_text(48)}) else []
