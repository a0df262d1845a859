"""`medai vault setup`: the whole sequence, each step idempotent, shares held in memory only."""
from __future__ import annotations

from collections.abc import Callable

import hvac.exceptions

from installer.core.errors import VaultError
from installer.deploy.vault import pki
from installer.deploy.vault.bootstrap_tls import root_ca_dir as default_dir
from installer.deploy.vault.client import endpoints, service_endpoint
from installer.deploy.vault.configure import configure
from installer.deploy.vault.init import initialize
from installer.deploy.vault.pki_engine import issue, setup_intermediate
from installer.deploy.vault.settings import VaultSettings
from installer.deploy.vault.token import revoke_other_root_tokens, root_session
from installer.deploy.vault.unseal import unseal_member


def root_ca_dir(s: VaultSettings):
    return default_dir(s.inventory, s.root_ca_dir)


def run_setup(s: VaultSettings, ask_share: Callable[[int, int], str], echo: Callable[[str], None] = print,
              with_root: Callable | None = None) -> dict:
    """with_root(client, endpoint): called with the short-lived root token after configuration and PKI, before
    every root token is revoked (the install writes the generated platform secrets there)."""
    with endpoints(s) as eps:
        init = initialize(s, eps[0])
        echo(("initialised: " if init.initialized_now else "already initialised: ")
             + f"{s.threshold} of {len(s.operators)} shares, files under {init.files[0].parent.parent}")
        shares = [ask_share(i + 1, s.threshold).strip() for i in range(s.threshold)]
        sealed = [o.member for o in (unseal_member(ep, shares) for ep in eps) if o.sealed]
        if sealed:
            raise VaultError(f"still sealed after {len(shares)} shares: {', '.join(sealed)} (wrong share?)")
        echo(f"unsealed: {', '.join(ep.name for ep in eps)}")
        ep = service_endpoint(s, eps)
        root = pki.root_ca(root_ca_dir(s), s.cluster)
        with root_session(ep, shares) as client:
            rep = configure(s, ep, client)
            changed = rep.changed + setup_intermediate(s, ep, client, root)
            issued = []
            for svc in ("keycloak", "harbor", "inference", "vault"):
                if not _has_tls(client, s, svc):
                    issued.append(issue(s, ep, client, svc)["service"])
            if with_root is not None:
                with_root(client, ep)
            revoked = revoke_other_root_tokens(ep, client)
        del shares
    for line in changed:
        echo(f"configured: {line}")
    echo(f"secrets created: {', '.join(rep.secrets_created) or 'none'}; already there: {', '.join(rep.secrets_kept) or 'none'}")
    echo(f"certificates issued: {', '.join(issued) or 'none (all present)'}")
    echo(f"root tokens revoked: {revoked} (+ the one this run used)")
    return {"initializedNow": init.initialized_now, "changed": changed, "secretsCreated": rep.secrets_created,
            "secretsKept": rep.secrets_kept, "certificatesIssued": issued, "rootTokensRevoked": revoked}


def _has_tls(client, s: VaultSettings, svc: str) -> bool:
    try:
        client.secrets.kv.v2.read_secret_version(path=f"{svc}/tls", mount_point=s.kv_mount, raise_on_deleted_version=True)
        return True
    except hvac.exceptions.InvalidPath:
        return False
