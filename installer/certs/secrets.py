"""The certificates the platform serves, read from their Kubernetes Secrets through the platform's adapter (the
API seam): Vault's own listener Secret and every TLS Secret of the catalogue (Keycloak, Harbor, vLLM), with the
intermediate and site root from their ca.crt. What `medai status` reads when the inventory lists no Vault member."""
from __future__ import annotations

import base64

from installer.certs.model import Cert, from_pem, pem_blocks
from installer.deploy.vault.catalogue import for_inventory

TLS_TYPE = "kubernetes.io/tls"


def _field(secret: dict, key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    try:
        return base64.b64decode(raw).decode() if raw else ""
    except (ValueError, UnicodeDecodeError):
        return ""


def tls_secret_names(inv) -> list[tuple[str, str]]:
    """(namespace, name) of every TLS Secret: Vault's, then the catalogue's."""
    out = [(inv.site.medai_vault_namespace, inv.site.medai_vault_tls_secret)]
    return out + [(s.namespace, s.name) for s in for_inventory(inv).secrets if s.type == TLS_TYPE]


def secret_certs(kube, inv) -> list[Cert]:
    """One Cert per TLS Secret (group vault), and the intermediate and root found in their ca.crt (once each)."""
    out: list[Cert] = []
    seen: set[str] = set()
    for ns, name in tls_secret_names(inv):
        where = f"Secret {ns}/{name}"
        secret = kube.get("v1", "Secret", name, ns)
        if secret is None:
            out.append(Cert("vault", "tls.crt", where, error="Secret not found"))
            continue
        out.append(from_pem(_field(secret, "tls.crt").encode(), "vault", "tls.crt", where))
        chain = pem_blocks(_field(secret, "ca.crt")) or pem_blocks(_field(secret, "tls.crt"))[1:]
        for block in chain:
            c = from_pem(block.encode(), "intermediate", "CA", where)
            c.name = "site root CA" if c.subject == c.issuer else "intermediate CA"
            if not c.error and c.serial not in seen:
                seen.add(c.serial)
                out.append(c)
    return out
