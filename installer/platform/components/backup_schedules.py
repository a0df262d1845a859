"""The site's own backup schedules, writing daily into the in-site backup target with retention: objects only
(no chart). ``medai backup create`` collects the newest of each onto removable media.

The backup target is an NFS export inside the site (``medai_backup_nfs``: SERVER:/PATH). Each namespace that
backs something up gets a PersistentVolume on its own sub-directory of that export and a claim bound to it
(``medai-backup``), so the pods run under the restricted Pod Security profile (no inline nfs volume).

- Vault: a CronJob in Vault's namespace logs in with the Kubernetes auth role ``backup`` (policy medai-backup: read
  ``sys/storage/raft/snapshot``) and runs ``vault operator raft snapshot save`` into the claim.
- PostgreSQL: per CloudNativePG Cluster a CronJob runs pg_basebackup (installer.backup.postgres.BASEBACKUP_ARGS:
  plain format, WAL streamed, SHA256 manifest) as ``streaming_replica`` with the Cluster's replication client
  certificate against its ``-rw`` Service: no object store and no VolumeSnapshot API needed. CloudNativePG's own
  ScheduledBackup with the volumeSnapshot method is dropped from the site objects while this runs (K3s ships no
  snapshot controller or VolumeSnapshotClass, so it can only fail).
- Longhorn: the ``default`` BackupTarget pointed at the export, and a RecurringJob backing up every volume in the
  ``default`` group daily, keeping ``medai_backup_retain`` backups.
"""
from __future__ import annotations

from installer.platform.flows import SITE, Flow, dns

NAME = "backup"
DEFAULTS = {
    "medai_backup_nfs": "",  # SERVER:/PATH of the in-site NFS export; "" = no in-cluster schedules
    "medai_backup_schedule": "30 2 * * *",  # cron, five fields (Kubernetes CronJob and Longhorn RecurringJob)
    "medai_backup_retain": 14,  # backups kept per component on the target
    "medai_backup_size": "200Gi",  # capacity each namespace's claim asks of the export
}
CLAIM = "medai-backup"
# pg_basebackup's options: a plain data directory (pg_verifybackup reads only that), the WAL streamed into it (no
# archive needed for consistency), a manifest with SHA256 checksums, an immediate checkpoint, never a prompt.
BASEBACKUP_ARGS = ["--format=plain", "--wal-method=stream", "--checkpoint=fast", "--manifest-checksums=SHA256",
                   "--no-password"]
LABELS = {"app.kubernetes.io/managed-by": "medai", "app.kubernetes.io/component": "backup"}
PG_UID = 26  # the postgres user of CloudNativePG's images
VAULT_ROLE = "backup"  # the Vault catalogue's component: its Kubernetes auth role, policy medai-backup
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}


def _nfs(v: dict) -> tuple[str, str]:
    server, _, path = str(v["medai_backup_nfs"]).partition(":")
    return server, path.rstrip("/") or "/"


def claim(v: dict, namespace: str) -> list[dict]:
    """A PersistentVolume on SERVER:/PATH/<namespace> and the claim bound to it."""
    server, path = _nfs(v)
    pv = f"{CLAIM}-{namespace}"
    return [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv, "labels": dict(LABELS)},
         "spec": {"capacity": {"storage": v["medai_backup_size"]}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "nfs": {"server": server, "path": f"{path}/{namespace}"},
                  "claimRef": {"namespace": namespace, "name": CLAIM}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": CLAIM, "namespace": namespace, "labels": dict(LABELS)},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv,
                  "resources": {"requests": {"storage": v["medai_backup_size"]}}}},
    ]


def _prune(directory: str, keep: int) -> str:
    """Keep the newest ``keep`` entries of ``directory`` (names sort by time: date +%Y%m%dT%H%M%SZ)."""
    return f'ls -1d {directory}/* 2>/dev/null | sort | head -n -{int(keep)} | xargs -r rm -rf'


def _cronjob(v: dict, name: str, namespace: str, image: str, script: str, volumes: list[dict],
             mounts: list[dict], sa: str | None = None, uid: int = 1000) -> dict:
    pod = {"restartPolicy": "Never",
           "securityContext": {"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid, "runAsNonRoot": True,
                               "seccompProfile": {"type": "RuntimeDefault"}},
           "containers": [{"name": "backup", "image": image, "command": ["/bin/sh", "-ec", script],
                           "securityContext": RESTRICTED,
                           "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                           "volumeMounts": [{"name": "target", "mountPath": "/backup"}, *mounts]}],
           "volumes": [{"name": "target", "persistentVolumeClaim": {"claimName": CLAIM}}, *volumes]}
    if sa:
        pod["serviceAccountName"] = sa
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
            "spec": {"schedule": v["medai_backup_schedule"], "concurrencyPolicy": "Forbid",
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                     "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"metadata": {"labels": dict(LABELS)},
                                                                              "spec": pod}}}}}


def pg_basebackup_command(service: str, directory: str) -> list[str]:
    """The Job's pg_basebackup line (installer.backup.postgres runs the same BASEBACKUP_ARGS, and is tested)."""
    return ["pg_basebackup", "-h", service, "-U", "streaming_replica", "-D", directory, *BASEBACKUP_ARGS]


def _stamp(directory: str) -> str:
    return f'd={directory}/$(date -u +%Y%m%dT%H%M%SZ)'


def postgres_objects(v: dict, databases: list[dict], image: str) -> list[dict]:
    """Per CloudNativePG Cluster: its namespace's claim and a CronJob taking a base backup as streaming_replica
    (the Cluster's replication client certificate, its CA checked: verify-full), then pruning to the retention."""
    out: list[dict] = []
    seen: set[str] = set()
    for db in databases:
        ns, cluster = db["namespace"], f"{db['name']}-db"
        if ns not in seen:
            out += claim(v, ns)
            seen.add(ns)
        target = f"/backup/postgresql/{cluster}"
        cmd = " ".join(pg_basebackup_command(f"{cluster}-rw", '"$d.partial"'))
        script = (f'mkdir -p {target}; {_stamp(target)}; export PGSSLMODE=verify-full PGSSLCERT=/certs/tls.crt '
                  f'PGSSLKEY=/certs/tls.key PGSSLROOTCERT=/ca/ca.crt; {cmd}; mv "$d.partial" "$d"; '
                  f'{_prune(target, v["medai_backup_retain"])}')
        vols = [{"name": "certs", "secret": {"secretName": f"{cluster}-replication", "defaultMode": 0o400}},
                {"name": "ca", "secret": {"secretName": f"{cluster}-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]
        mounts = [{"name": "certs", "mountPath": "/certs", "readOnly": True},
                  {"name": "ca", "mountPath": "/ca", "readOnly": True}]
        out.append(_cronjob(v, f"{cluster}-basebackup", ns, image, script, vols, mounts, uid=PG_UID))
    return out


def vault_objects(v: dict, namespace: str, image: str, addr: str) -> list[dict]:
    """Vault's claim, the ServiceAccount its Kubernetes auth role ``backup`` is bound to, and the CronJob."""
    target = "/backup/vault"
    script = (f'mkdir -p {target}; {_stamp(target)}; export VAULT_ADDR={addr} VAULT_CACERT=/ca/ca.crt; '
              f'export VAULT_TOKEN="$(vault write -field=token auth/kubernetes/login role={VAULT_ROLE} '
              f'jwt=@/var/run/secrets/kubernetes.io/serviceaccount/token)"; '
              f'vault operator raft snapshot save "$d.partial"; mv "$d.partial" "$d.snap"; '
              f'{_prune(target, v["medai_backup_retain"])}')
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": CLAIM, "namespace": namespace, "labels": dict(LABELS)}}
    vols = [{"name": "ca", "configMap": {"name": "medai-site-ca"}}]
    mounts = [{"name": "ca", "mountPath": "/ca", "readOnly": True}]
    return [*claim(v, namespace), sa, _cronjob(v, "vault-raft-snapshot", namespace, image, script, vols, mounts, sa=CLAIM)]


def longhorn_objects(v: dict, namespace: str) -> list[dict]:
    """The default BackupTarget on the export (Longhorn 1.8+), and a daily RecurringJob over the default group."""
    server, path = _nfs(v)
    return [
        {"apiVersion": "longhorn.io/v1beta2", "kind": "BackupTarget",
         "metadata": {"name": "default", "namespace": namespace, "labels": dict(LABELS)},
         "spec": {"backupTargetURL": f"nfs://{server}:{path}/longhorn", "credentialSecret": "",
                  "pollInterval": "300s"}},
        {"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob",
         "metadata": {"name": "medai-daily-backup", "namespace": namespace, "labels": dict(LABELS)},
         "spec": {"name": "medai-daily-backup", "task": "backup", "cron": v["medai_backup_schedule"],
                  "groups": ["default"], "retain": int(v["medai_backup_retain"]), "concurrency": 2, "labels": {}}},
    ]


def replaced(obj: dict) -> bool:
    """CloudNativePG's volumeSnapshot ScheduledBackup, which the base-backup CronJob replaces (see module doc)."""
    return obj.get("kind") == "ScheduledBackup" and obj.get("spec", {}).get("method") == "volumeSnapshot"


def flows(v: dict, databases: list[dict], vault_ns: str = "vault", vault_port: int = 8200,
          longhorn_ns: str = "longhorn-system") -> list[Flow]:
    """The schedules' pods: each base-backup Job to its Cluster's primary, the Vault Job to Vault, Longhorn's
    managers to the NFS export (the claims' NFS mounts are the kubelet's, on the nodes' network)."""
    job = {"app.kubernetes.io/component": "backup"}
    out: list[Flow] = []
    for db in databases:
        ns, pods = db["namespace"], {"cnpg.io/cluster": f"{db['name']}-db"}
        out += [*dns(ns, job), Flow(ns, ns, 5432, "TCP", job, pods, "base backup from the primary (replication)")]
    out += [*dns(vault_ns, job),
            Flow(vault_ns, vault_ns, vault_port, "TCP", job, {"app.kubernetes.io/name": "vault"}, "raft snapshot"),
            Flow(longhorn_ns, SITE, 2049, "TCP", {"app": "longhorn-manager"}, {}, "backups to the NFS target"),
            Flow(longhorn_ns, SITE, 2049, "TCP", {"longhorn.io/component": "instance-manager"}, {},
                 "volume backups to the NFS target")]
    return out


# The flows with the platform's default databases and namespaces (installer.platform.flows reads flows(v, ...)).
FLOWS = flows(DEFAULTS, [{"name": "keycloak", "namespace": "keycloak"}, {"name": "harbor", "namespace": "harbor"}])


def site_vars(site: dict) -> dict:
    """The schedules' variables: DEFAULTS with the inventory's all.vars over them."""
    return {k: site.get(k, d) if site.get(k) is not None else d for k, d in DEFAULTS.items()}


def site_objects(chart: str, site: dict, namespace: str, pg: dict | None = None, vault_image: str = "",
                 vault_addr: str = "https://vault-active.vault.svc:8200") -> list[dict]:
    """The schedule objects a release adds (nothing without ``medai_backup_nfs``): for cloudnative-pg the
    base-backup CronJobs (``pg``: postgres's role vars), for vault the snapshot CronJob, for longhorn the target
    and RecurringJob."""
    v = site_vars(site)
    if not v["medai_backup_nfs"]:
        return []
    if chart == "cloudnative-pg" and pg is not None:
        return postgres_objects(v, pg["medai_postgres_databases"], pg["medai_postgres_image"])
    if chart == "vault" and vault_image:
        return vault_objects(v, namespace, vault_image, vault_addr)
    if chart == "longhorn":
        return longhorn_objects(v, namespace)
    return []
