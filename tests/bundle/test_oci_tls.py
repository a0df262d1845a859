"""HTTPS to a registry signed by a private CA (as a site's Harbor is): trusted with ca_file, refused without.
The registry is Debian's docker-registry with http.tls on 127.0.0.1; the CA and certificate are made here."""
from __future__ import annotations

import datetime
import ipaddress
import subprocess

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from installer.bundle.images import collect_images, push_image
from installer.bundle.oci_layout import OCILayout
from installer.bundle.sources.oci import RegistryClient, parse_ref
from installer.errors import RegistryError
from tests.support.images import seed
from tests.support.servers import REGISTRY_BIN, free_port, wait_port

pytestmark = pytest.mark.loopback


def _cert(subject: str, key, issuer_name, issuer_key, ca: bool, san=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-registry")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("medai test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("127.0.0.1", key, ca.subject, ca_key, ca=False, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    port = free_port()
    (d / "config.yml").write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(d / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "medai-test",
                 "tls": {"certificate": str(d / "cert.pem"), "key": str(d / "key.pem")}},
    }))
    log = open(d / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(d / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        host = f"127.0.0.1:{port}"
        yield host, d / "ca.pem", seed(host, d / "seed")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_https_with_custom_ca(tls_registry, tmp_path):
    host, ca, images = tls_registry
    layout = OCILayout(tmp_path / "oci")
    with RegistryClient(https=[host], ca_file=ca, retries=1) as c:
        [img] = collect_images(c, layout, [images.app], ["linux/amd64"])
        assert c.base_url(parse_ref(images.app)) == f"https://{host}"
        res = push_image(c, layout, images.app, f"{host}/pushed/app:tls")
    assert res.digest == img.digest
    assert layout.verify() == []


def test_https_without_the_ca_is_refused(tls_registry, tmp_path):
    host, _, images = tls_registry
    with RegistryClient(https=[host], retries=1) as c, pytest.raises(RegistryError) as e:
        collect_images(c, OCILayout(tmp_path / "oci"), [images.app], ["linux/amd64"])
    assert str(e.value).startswith(images.app) and "CERTIFICATE_VERIFY_FAILED" in str(e.value)
