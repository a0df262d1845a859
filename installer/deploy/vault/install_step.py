"""Vault inside `medai install` (only when K3s really runs, so only on a real cluster / the K3s end-to-end path):

  before the playbook   the inventory's Vault settings are checked (no host contacted yet) and Vault's first TLS
                        certificate is issued from the offline site root: secret vars for roles/vault (no_log),
                        which creates the `vault-tls` Secret and puts the site root in every node's trust store
  the release           applied by the platform step without --wait (a sealed Vault is never Ready)
  after the release     the pods run: init (one share per operator, encrypted to their key), the operators type
                        the threshold of shares, unseal, configure, PKI (installer/deploy/vault/setup.py), and,
                        with the same short-lived root token, the generated platform secrets go into KV through
                        the SecretSink and are synced into the Kubernetes Secrets the later releases name; then
                        every root token is revoked. Nothing secret is written on the control host.
Not executed here (no K3s): tests/deploy/test_e2e_vault_idp.py runs it with MEDAI_E2E_K3S.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from installer.core.errors import InstallError
from installer.deploy.vault.bootstrap_tls import vault_tls_vars
from installer.deploy.vault.catalogue import ensure, for_inventory, secret_objects
from installer.deploy.vault.kv_sink import VaultKvSink
from installer.deploy.vault.portforward import pod_names
from installer.deploy.vault.settings import vault_settings
from installer.deploy.vault.setup import run_setup
from installer.deploy.vault.share_prompt import share_reader


def has_vault(site) -> bool:
    return site is not None and any(r.chart.name == "vault" for r in site.releases)


def vault_secret_vars(inv, site, k3s_present: bool) -> dict[str, str]:
    """The TLS secret vars for roles/vault, and the settings check, before any host is contacted."""
    if not (k3s_present and has_vault(site)):
        return {}

    vault_settings(inv)  # one-line VaultError naming all.vars.medai_vault_* before anything runs
    return vault_tls_vars(inv)


def wait_running(kube, namespace: str, names: list[str], timeout_s: int, sleep=time.sleep) -> None:
    """Every Vault pod Running (not Ready: sealed), else one line naming the first that is not."""
    deadline = time.monotonic() + timeout_s
    while True:
        pods = {(p.get("metadata") or {}).get("name"): (p.get("status") or {}).get("phase") for p in kube.pods(namespace)}
        missing = [n for n in names if pods.get(n) != "Running"]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise InstallError(f"release vault: pod {namespace}/{missing[0]} is {pods.get(missing[0]) or 'absent'} "
                               f"after {timeout_s}s (init and unseal need it Running)")
        sleep(5)


class HeldSecrets:
    """The few values medai itself uses after Vault's root token is revoked (Harbor's admin password and the
    robots' and OIDC client secrets for Harbor's API, Keycloak's permanent admin for removing the bootstrap
    admin): read from Vault once, held in this process's memory only, never printed (repr shows names)."""

    def __init__(self):
        self._values: dict[str, dict[str, str]] = {}
        self.created: list[str] = []

    def keep(self, path: str, data) -> None:
        self._values[path] = dict(data)

    def get(self, path: str, field: str) -> str:
        try:
            return self._values[path][field]
        except KeyError:
            raise InstallError(f"secrets catalogue: {path} ({field}) was not read from Vault in this run") from None

    def __repr__(self) -> str:
        return f"HeldSecrets({sorted(self._values)})"


# catalogue entries the later install steps use themselves (Harbor's API configuration, the Keycloak admin API)
HELD = ("harbor/admin", "harbor/robots/cluster-pull", "harbor/robots/site-ci", "keycloak/clients/harbor", "keycloak/admin")


def platform_secrets_into_vault(inv, sink, kube, held: HeldSecrets | None = None, bootstrap: bool = True) -> dict[str, list[str]]:
    """Generate what the one catalogue lacks in Vault KV, then sync every Kubernetes Secret it names (in memory,
    server-side apply) into the namespaces before the releases that read them. Returns paths and names only."""

    cat = for_inventory(inv)
    created, _kept = ensure(cat, sink)
    for ns in dict.fromkeys(s.namespace for s in cat.secrets):
        kube.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": "medai"}}})
    synced = []
    for obj in secret_objects(cat, sink.read_secret, bootstrap=bootstrap):
        kube.apply(obj)
        synced.append(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")
    if held is not None:
        paths = {e.path for e in cat.entries}
        for p in HELD:
            if p in paths:
                held.keep(p, sink.read_secret(p))
        held.created = list(created)
    return {"created": created, "synced": synced}


def vault_after_release(inv, kube, record, echo: Callable[[str], None], ask_share=None,
                        held: HeldSecrets | None = None, bootstrap: Callable[[], bool] = lambda: True):
    """The platform step's hook for release vault (installer.platform.apply.ApplyOptions.after)."""
    def hook(release) -> None:
        s = vault_settings(inv)
        wait_running(kube, release.namespace, pod_names(s), 600)
        outcome: dict = {}

        def with_root(client, ep) -> None:
            outcome.update(platform_secrets_into_vault(inv, VaultKvSink(client, s.kv_mount, ep), kube, held,
                                                       bootstrap=bootstrap()))

        report = run_setup(s, ask_share or share_reader(False), echo=echo, with_root=with_root)
        record.data["vault"] = {**report, "platformSecrets": outcome}  # paths and names only, never a value
        record.save()
        echo(f"platform secrets: {len(outcome.get('created', []))} created in Vault, "
             f"{len(outcome.get('synced', []))} Kubernetes Secrets synced")
    return hook
