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

import base64
import time
from collections.abc import Callable

from installer.core.errors import InstallError


def has_vault(site) -> bool:
    return site is not None and any(r.chart.name == "vault" for r in site.releases)


def vault_secret_vars(inv, site, k3s_present: bool) -> dict[str, str]:
    """The TLS secret vars for roles/vault, and the settings check, before any host is contacted."""
    if not (k3s_present and has_vault(site)):
        return {}
    from installer.deploy.vault.bootstrap_tls import vault_tls_vars
    from installer.deploy.vault.settings import vault_settings

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


def secret_object(name: str, namespace: str, data: dict[str, str], type_: str = "Opaque") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "medai"}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def platform_secrets_into_vault(inv, sink, kube) -> dict[str, list[str]]:
    """Generate what is missing into Vault KV, then sync the Kubernetes Secrets the PostgreSQL Clusters and the
    Harbor chart name (in memory, server-side apply). Returns the Vault paths created and the Secrets synced."""
    from installer.deploy.platform_secrets import (
        ensure_harbor_secrets,
        ensure_inference_api_key,
        ensure_postgres_passwords,
        harbor_secret_layout,
    )
    from installer.deploy.site_values import role_vars

    pg = role_vars("postgres", inv)
    dbs = pg["medai_postgres_databases"]
    created = ensure_postgres_passwords(inv.cluster, [d["name"] for d in dbs], sink)
    created += ensure_harbor_secrets(inv.cluster, sink)
    hv = role_vars("harbor", inv)
    # the inference tier runs only where there are gpu hosts (docs/inference.md); its API key is never optional
    iv = role_vars("inference", inv) if inv.gpu else None
    if iv is not None:
        created += ensure_inference_api_key(inv.cluster, sink)
    synced = []
    # the Secrets come before the releases that create these namespaces (CNPG's site objects, harbor's chart)
    namespaces = [d["namespace"] for d in dbs] + [hv["medai_harbor_namespace"]]
    for ns in dict.fromkeys(namespaces + ([iv["medai_inference_namespace"]] if iv else [])):
        kube.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"app.kubernetes.io/managed-by": "medai"}}})
    for d in dbs:
        pw = sink.read_secret(f"medai/{inv.cluster}/postgres/{d['name']}")["password"]
        kube.apply(secret_object(f"{d['name']}-db-credentials", d["namespace"],
                                 {"username": d["owner"], "password": pw}, "kubernetes.io/basic-auth"))
        synced.append(f"{d['namespace']}/{d['name']}-db-credentials")
    for name, path in harbor_secret_layout(inv.cluster, hv["medai_harbor_secret_names"]).items():
        kube.apply(secret_object(name, hv["medai_harbor_namespace"], sink.read_secret(path)))
        synced.append(f"{hv['medai_harbor_namespace']}/{name}")
    if iv is not None:
        ns, name = iv["medai_inference_namespace"], iv["medai_inference_api_key_secret"]
        kube.apply(secret_object(name, ns, sink.read_secret(f"medai/{inv.cluster}/inference/api-key")))
        synced.append(f"{ns}/{name}")
    return {"created": created, "synced": synced}


def vault_after_release(inv, kube, record, echo: Callable[[str], None], ask_share=None):
    """The platform step's hook for release vault (installer.deploy.platform.ApplyOptions.after)."""
    def hook(release) -> None:
        from installer.deploy.vault.kv_sink import VaultKvSink
        from installer.deploy.vault.portforward import pod_names
        from installer.deploy.vault.settings import vault_settings
        from installer.deploy.vault.setup import run_setup
        from installer.deploy.vault.share_prompt import share_reader

        s = vault_settings(inv)
        wait_running(kube, release.namespace, pod_names(s), 600)
        outcome: dict = {}

        def with_root(client, ep) -> None:
            outcome.update(platform_secrets_into_vault(inv, VaultKvSink(client, s.kv_mount, ep), kube))

        report = run_setup(s, ask_share or share_reader(False), echo=echo, with_root=with_root)
        record.data["vault"] = {**report, "platformSecrets": outcome}  # paths and names only, never a value
        record.save()
        echo(f"platform secrets: {len(outcome.get('created', []))} created in Vault, "
             f"{len(outcome.get('synced', []))} Kubernetes Secrets synced")
    return hook
