"""Vault's first TLS certificate, before Vault exists: signed by the offline site root, handed to roles/vault as
secret vars (medai_vault_tls_cert, medai_vault_tls_key, medai_vault_tls_ca) through the install's secret-vars
file, which is deleted after the run. The key is never written anywhere else on the control host.
"""
from __future__ import annotations

from pathlib import Path

from installer.core.resources import state_dir
from installer.deploy.vault import pki
from installer.platform.components import vault
from installer.platform.values import role_vars

# The install's runner passes these as extra vars and scrubs them from artifacts (installer.deploy.state).
SECRET_VARS = ("medai_vault_tls_key",)


def root_ca_dir(inv, override: Path | None = None) -> Path:
    return override or state_dir() / "pki" / inv.cluster


def vault_tls_vars(inv, root_dir: Path | None = None) -> dict[str, str]:
    root = pki.root_ca(root_ca_dir(inv, root_dir), inv.cluster)
    v = role_vars("vault", inv)
    key_pem, chain = pki.issue_offline_pem(root, vault.server_names(v))
    return {"medai_vault_tls_cert": chain.decode(), "medai_vault_tls_key": key_pem.decode(),
            "medai_vault_tls_ca": root.cert_pem}
