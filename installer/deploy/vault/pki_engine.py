"""Vault's side of the site PKI: the intermediate mount, its CSR signed by the offline root, roles, issuance."""
from __future__ import annotations

import hvac
import hvac.exceptions
from cryptography import x509

from installer.core.errors import VaultError
from installer.deploy.vault.catalogue import COMPONENTS, KEYCLOAK, TLS_SERVICES
from installer.deploy.vault.client import Endpoint, vault_call
from installer.deploy.vault.pki import RootCA, sign_intermediate
from installer.deploy.vault.settings import VaultSettings
from installer.platform.components import keycloak

MAX_TTL = "43800h"
CERT_TTL = "2160h"


def _has_issuer(client: hvac.Client, mount: str) -> bool:
    try:
        pem = client.secrets.pki.read_ca_certificate(mount_point=mount)
    except hvac.exceptions.VaultError:
        return False
    return "BEGIN CERTIFICATE" in (pem or "")


def allowed_domains(s: VaultSettings, service: str) -> list[str]:
    ns = next(c.namespace for c in COMPONENTS if c.name == service)
    return [f"{service}.{s.domain}", f"{ns}.svc", f"{ns}.svc.cluster.local"]


def issued_names(domain: str, service: str) -> list[str]:
    """The names `issue` puts in a service's certificate, its common name first. Keycloak's also carries the
    Service its release creates (the realm Job and in-cluster clients call it)."""
    ns = next(c.namespace for c in COMPONENTS if c.name == service)
    names = [f"{service}.{domain}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.cluster.local"]
    if service == KEYCLOAK:
        http = f"{keycloak.fullname(keycloak.CHART)}-http"
        names += [f"{http}.{ns}.svc", f"{http}.{ns}.svc.cluster.local"]
    return names


def setup_intermediate(s: VaultSettings, ep: Endpoint, client: hvac.Client, root: RootCA) -> list[str]:
    """Mount PKI, have Vault make the intermediate key and CSR, sign it offline, set it back; roles per service."""
    changed = []
    m = s.pki_mount
    with vault_call(ep, f"PKI mount {m}/"):
        if f"{m}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("pki", path=m, config={"max_lease_ttl": MAX_TTL},
                                             description="medai site intermediate CA")
            changed.append(f"PKI at {m}/")
        if not _has_issuer(client, m):
            csr = client.secrets.pki.generate_intermediate(
                "internal", f"medai {s.cluster} intermediate CA",
                extra_params={"key_type": "ec", "key_bits": 384}, mount_point=m)["data"]["csr"]
            signed = sign_intermediate(root, csr)
            client.secrets.pki.set_signed_intermediate(signed + root.cert_pem, mount_point=m)
            changed.append("intermediate CA signed by the offline root")
        for svc in TLS_SERVICES:
            client.secrets.pki.create_or_update_role(svc, extra_params={
                "allowed_domains": allowed_domains(s, svc), "allow_bare_domains": True, "allow_subdomains": True,
                "allow_glob_domains": False, "allow_localhost": False, "allow_ip_sans": True,
                "server_flag": True, "client_flag": False, "key_type": "ec", "key_bits": 256,
                "max_ttl": CERT_TTL, "ttl": CERT_TTL}, mount_point=m)
    return changed


def issue(s: VaultSettings, ep: Endpoint, client: hvac.Client, service: str) -> dict:
    """Issue the service's certificate and keep it (key included) in KV at <service>/tls; never on disk."""
    if service not in TLS_SERVICES:
        raise VaultError(f"unknown service {service!r} (certificates exist for: {', '.join(TLS_SERVICES)})")
    names = issued_names(s.domain, service)
    with vault_call(ep, f"issue {service} certificate"):
        data = client.secrets.pki.generate_certificate(
            service, names[0], extra_params={"alt_names": ",".join(names[1:])},
            mount_point=s.pki_mount)["data"]
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{service}/tls", mount_point=s.kv_mount,
            secret={"certificate": data["certificate"], "private_key": data["private_key"],
                    "ca_chain": "\n".join(data.get("ca_chain") or [data["issuing_ca"]])})
    cert = x509.load_pem_x509_certificate(data["certificate"].encode())
    return {"service": service, "serial": data["serial_number"], "notAfter": cert.not_valid_after_utc.isoformat(),
            "kv": f"{s.kv_mount}/{service}/tls"}
