"""The site PKI as Vault serves it: the intermediate and the site root above it (the mount's ca_chain, read
without a token), each member's listener certificate (from the TLS handshake), and, with a token that may list
and read ``<pki mount>/certs``, the newest certificate Vault issued per service name."""
from __future__ import annotations

import socket
import ssl
from urllib.parse import urlparse

import requests
from cryptography import x509

from installer.certs.model import Cert, from_pem, from_x509, pem_blocks
from installer.core.errors import MedaiError
from installer.deploy.vault.client import Endpoint, vault_call
from installer.deploy.vault.settings import VaultSettings

TIMEOUT_S = 10


def _first(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def chain_certs(s: VaultSettings, ep: Endpoint) -> list[Cert]:
    """The intermediate (group intermediate) and the site root CA it chains to, from ``<mount>/ca_chain``."""
    where = f"vault {s.pki_mount}/"
    try:
        r = requests.get(f"{ep.addr}/v1/{s.pki_mount}/ca_chain", verify=ep.verify, timeout=TIMEOUT_S)
    except requests.RequestException as e:
        return [Cert("intermediate", "intermediate CA", where, error=f"{ep.name} ({ep.addr}) unreachable: {_first(e)}")]
    blocks = pem_blocks(r.text) if r.status_code == 200 else []
    if not blocks:
        return [Cert("intermediate", "intermediate CA", where,
                     error=f"{ep.name}: no intermediate CA in {s.pki_mount}/ (HTTP {r.status_code}; run medai vault setup)")]
    out = [from_pem(blocks[0].encode(), "intermediate", "intermediate CA", where)]
    if len(blocks) > 1:
        out.append(from_pem(blocks[-1].encode(), "intermediate", "site root CA", where))
    return out


def listener_cert(ep: Endpoint) -> Cert | None:
    """The certificate a member's HTTPS listener presents (read, not verified: an expired one is reported);
    None for a plain-HTTP listener (no certificate to watch)."""
    u = urlparse(ep.addr)
    name = f"listener {ep.name}"
    if u.scheme != "https":
        return None
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((u.hostname, u.port or 443), timeout=TIMEOUT_S) as sock, \
                ctx.wrap_socket(sock, server_hostname=u.hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as e:
        return Cert("vault", name, ep.addr, error=f"unreachable: {_first(e)}")
    return from_x509(x509.load_der_x509_certificate(der), "vault", name, ep.addr)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def issued_certs(s: VaultSettings, ep: Endpoint, token: str) -> list[Cert]:
    """The newest certificate per common name among those Vault issued (revoked ones left out)."""
    client = ep.client(token)
    where = f"vault {s.pki_mount}/"
    newest: dict[str, Cert] = {}
    with vault_call(ep, f"list {s.pki_mount}/certs"):
        serials = client.secrets.pki.list_certificates(mount_point=s.pki_mount)["data"]["keys"]
        for serial in serials:
            data = client.secrets.pki.read_certificate(serial, mount_point=s.pki_mount)["data"]
            if data.get("revocation_time"):
                continue
            try:
                cert = x509.load_pem_x509_certificate(data["certificate"].encode())
            except ValueError:
                continue
            if _is_ca(cert):  # the intermediate itself is listed among the mount's certificates
                continue
            c = from_x509(cert, "vault", "", where)
            c.name = c.subject
            if c.name not in newest or c.not_before > newest[c.name].not_before:
                newest[c.name] = c
    return [newest[k] for k in sorted(newest)]


def vault_certs(s: VaultSettings, eps: list[Endpoint], token: str | None) -> list[Cert]:
    """Everything above for the members ``eps``; an unreachable member or a refused call is a Cert with the error."""
    out = [c for c in (listener_cert(ep) for ep in eps) if c is not None]
    out += chain_certs(s, eps[0])
    if token is None:
        return out
    try:
        out += issued_certs(s, eps[0], token)
    except (MedaiError, KeyError) as e:
        out.append(Cert("vault", "issued certificates", f"vault {s.pki_mount}/", error=_first(e)))
    return out
