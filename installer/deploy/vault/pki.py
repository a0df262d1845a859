"""The site PKI: an offline root CA on the control host, an intermediate inside Vault's PKI engine.

    root CA (control host, or a removable medium the operator names; never in the bundle)
      └── intermediate (key generated inside Vault; CSR signed here, offline, then set back into Vault)
            └── service certificates (vault, keycloak, harbor, inference) issued by Vault's PKI roles

Vault's own first server certificate cannot come from Vault (it is not running yet): the root signs it
directly (`issue_offline`), and `medai vault rotate-cert vault` re-issues it from the intermediate later.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from installer.core.atomic import atomic_write_bytes
from installer.core.errors import VaultError

ROOT_KEY = "root-ca.key"
ROOT_CERT = "root-ca.pem"
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 1825
SERVER_DAYS = 397


@dataclass
class RootCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    dir: Path

    @property
    def cert_path(self) -> Path:
        return self.dir / ROOT_CERT

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def root_ca(directory: Path, cluster: str) -> RootCA:
    """Load the site root CA from `directory`, or create it there once (key 0600, directory 0700)."""
    key_path, cert_path = directory / ROOT_KEY, directory / ROOT_CERT
    if key_path.exists() or cert_path.exists():
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as e:
            raise VaultError(f"{directory}: cannot load the site root CA ({ROOT_KEY}, {ROOT_CERT}): {e}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise VaultError(f"{key_path}: the key does not belong to {cert_path}")
        return RootCA(key, cert, directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name(f"medai {cluster} root CA", f"medai {cluster}")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA384())
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    atomic_write_bytes(key_path, pem_key, 0o600)
    atomic_write_bytes(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return RootCA(key, cert, directory)


def sign_intermediate(root: RootCA, csr_pem: str) -> str:
    """Sign the CSR Vault's PKI engine generated (its key never leaves Vault): a CA for servers only."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as e:
        raise VaultError(f"Vault's intermediate CSR is not a PEM CSR: {e}") from None
    if not csr.is_signature_valid:
        raise VaultError("Vault's intermediate CSR has an invalid signature")
    cert = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(root.cert.subject).public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(min(_now() + dt.timedelta(days=INTERMEDIATE_DAYS), root.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False)
        .sign(root.key, hashes.SHA384())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def issue_offline_pem(root: RootCA, names: list[str]) -> tuple[bytes, bytes]:
    """A server certificate signed by the root directly, for Vault's own first start: (key PEM, cert+root PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    org = root.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    cn = next((n for n in names if not n.startswith("*")), names[0])
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn, str(org))).issuer_name(root.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM) + root.cert.public_bytes(serialization.Encoding.PEM)


def issue_offline(root: RootCA, names: list[str], key_out: Path, cert_out: Path) -> None:
    """issue_offline_pem written to files (key 0600): for a Vault that runs outside Kubernetes."""
    key_pem, chain = issue_offline_pem(root, names)
    atomic_write_bytes(key_out, key_pem, 0o600)
    atomic_write_bytes(cert_out, chain, 0o644)
