"""HashiCorp's Vault chart: HA Raft with TLS on every listener (the certificate from the site's offline root,
Secret medai_vault_tls_secret), data and audit on Longhorn, the injector, an optional Transit auto-unseal.

Also here: the names Vault's certificate must carry (pods, services, the port-forward's 127.0.0.1) and the TLS
Secret the chart mounts. roles/vault (the site root CA in each node's trust store, the first vault-tls Secret)
gets medai_vault_namespace and medai_vault_tls_secret from the install with the certificate.
"""
from __future__ import annotations

import base64

from installer.platform.flows import NODES, SITE, Flow, api, dns, url_port

NAME = "vault"
NAMESPACE = "vault"
DEFAULTS = {
    "medai_vault_namespace": "vault",
    "medai_vault_replicas": None,  # None: 3 with >= 3 nodes, else 1; an odd number (Raft quorum)
    "medai_vault_storage_class": "longhorn",
    "medai_vault_data_size": "10Gi",
    "medai_vault_audit_size": "10Gi",
    "medai_vault_tls_secret": "vault-tls",
    "medai_vault_extra_sans": [],  # more names in the server certificate
    "medai_vault_injector": True,
    "medai_vault_ui": False,
    "medai_vault_transit": None,  # {address, key_name, token_secret, mount_path, ca_secret}: Transit auto-unseal
    "medai_vault_resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "medai_vault_injector_resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "medai_vault_release_timeout": 600,
}


def _listener(tls_dir: str) -> str:
    return ('listener "tcp" {\n  address = "[::]:8200"\n  cluster_address = "[::]:8201"\n  tls_disable = 0\n'
            f'  tls_cert_file = "{tls_dir}/tls.crt"\n  tls_key_file = "{tls_dir}/tls.key"\n'
            '  tls_min_version = "tls12"\n}\n')


def _storage(tls_dir: str, replicas: int) -> str:
    joins = "".join(
        f'  retry_join {{\n    leader_api_addr = "https://vault-{i}.vault-internal:8200"\n'
        f'    leader_ca_cert_file = "{tls_dir}/ca.crt"\n    leader_tls_servername = "vault-{i}.vault-internal"\n  }}\n'
        for i in range(replicas))
    return f'storage "raft" {{\n  path = "/vault/data"\n{joins}}}\n'


def _seal(transit: dict) -> str:
    ca = '  tls_ca_cert = "/vault/userconfig/transit-ca/ca.crt"\n' if transit.get("ca_secret") else ""
    return (f'seal "transit" {{\n  address = "{transit["address"]}"\n  key_name = "{transit["key_name"]}"\n'
            f'  mount_path = "{transit.get("mount_path") or "transit/"}"\n{ca}}}\n')


def server_config(v: dict) -> str:
    """The HCL the chart writes into the server's config (ha.raft.config)."""
    tls_dir = f"/vault/userconfig/{v['medai_vault_tls_secret']}"
    transit = v["medai_vault_transit"]
    return (f"ui = {'true' if v['medai_vault_ui'] else 'false'}\ndisable_mlock = true\n" + _listener(tls_dir)
            + _storage(tls_dir, int(v["medai_vault_replicas"])) + (_seal(transit) if transit else "")
            + 'service_registration "kubernetes" {}\n')


def values(v: dict) -> dict:
    tls_dir = f"/vault/userconfig/{v['medai_vault_tls_secret']}"
    replicas = int(v["medai_vault_replicas"])
    transit = v["medai_vault_transit"] or {}
    volumes = [{"name": "tls", "secret": {"secretName": v["medai_vault_tls_secret"], "defaultMode": 0o400}}]
    mounts = [{"name": "tls", "mountPath": tls_dir, "readOnly": True}]
    if transit.get("ca_secret"):
        volumes.append({"name": "transit-ca", "secret": {"secretName": transit["ca_secret"]}})
        mounts.append({"name": "transit-ca", "mountPath": "/vault/userconfig/transit-ca", "readOnly": True})
    storage = lambda size: {"enabled": True, "size": size, "storageClass": v["medai_vault_storage_class"]}  # noqa: E731
    server: dict = {"extraEnvironmentVars": {"VAULT_CACERT": f"{tls_dir}/ca.crt"}}
    if transit:
        server["extraSecretEnvironmentVars"] = [{"envName": "VAULT_TOKEN", "secretName": transit["token_secret"],
                                                 "secretKey": "token"}]
    server.update({
        "volumes": volumes, "volumeMounts": mounts,
        "dataStorage": storage(v["medai_vault_data_size"]), "auditStorage": storage(v["medai_vault_audit_size"]),
        "standalone": {"enabled": False},
        "ha": {"enabled": True, "replicas": replicas,
               "raft": {"enabled": True, "setNodeId": True, "config": server_config(v)}},
    })
    server["statefulSet"] = {"securityContext": {"pod": pod_security(100, 1000), "container": RESTRICTED}}
    server["resources"] = v["medai_vault_resources"]
    return {"global": {"tlsDisable": False},
            "injector": {"enabled": v["medai_vault_injector"], "replicas": 2 if replicas > 1 else 1,
                         "resources": v["medai_vault_injector_resources"],
                         "securityContext": {"pod": pod_security(100, 1000), "container": RESTRICTED}},
            "server": server}


# Pod Security restricted: the chart's own defaults (non-root uid 100, gid 1000) plus the seccomp profile, and no
# capability at all (IPC_LOCK is not needed: the server runs with disable_mlock, as Raft storage on Kubernetes asks).
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod_security(uid: int, gid: int) -> dict:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid, "fsGroup": gid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def server_names(v: dict) -> list[str]:
    """Names in Vault's server certificate: the first one is its common name."""
    ns = v["medai_vault_namespace"]
    names = ["vault", f"vault.{ns}", f"vault.{ns}.svc", f"vault.{ns}.svc.cluster.local",
             f"vault-active.{ns}.svc", "*.vault-internal", f"*.vault-internal.{ns}.svc",
             f"*.vault-internal.{ns}.svc.cluster.local"]
    names += [f"vault-{i}.vault-internal" for i in range(v["medai_vault_replicas"])]
    names += list(v.get("medai_vault_extra_sans") or [])
    names.append("127.0.0.1")  # `medai vault` reaches each pod through kubectl port-forward on loopback
    return names


def tls_secret(v: dict, cert_chain_pem: bytes, key_pem: bytes, root_pem: bytes) -> dict:
    """The Secret the chart mounts; applied with the kubernetes client, never written to disk."""
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": v["medai_vault_tls_secret"], "namespace": v["medai_vault_namespace"],
                         "labels": {"app.kubernetes.io/managed-by": "medai"}},
            "data": {"tls.crt": b64(cert_chain_pem), "tls.key": b64(key_pem), "ca.crt": b64(root_pem)}}


SERVER = {"app.kubernetes.io/name": "vault", "component": "server"}
INJECTOR = {"app.kubernetes.io/name": "vault-agent-injector", "component": "webhook"}


def flows(v: dict, ns: dict) -> list[Flow]:
    """Raft and request forwarding between the servers, the API (service registration, the injector), the
    injector's webhook from the API server; with Transit auto-unseal, the site's unsealing Vault."""
    me = ns[NAME]
    out = dns(me) + [
        api(me, why="service registration (vault-active) and the injector"),
        Flow(me, me, 8200, "TCP", SERVER, SERVER, "raft joins and request forwarding to the active server"),
        Flow(me, me, 8201, "TCP", SERVER, SERVER, "raft replication and cluster traffic"),
    ]
    if v["medai_vault_injector"]:
        out.append(Flow(NODES, me, 8080, "TCP", {}, INJECTOR, "the API server calls the injector's webhook"))
    transit = v["medai_vault_transit"]
    if transit:
        out.append(Flow(me, SITE, url_port(transit["address"]), "TCP", SERVER, {}, "Transit auto-unseal"))
    return out
