"""CloudNativePG: the operator (cluster-wide) and one PostgreSQL Cluster per platform database, owner passwords
from Vault (Secret <name>-db-credentials); the operator never invents a password medai does not know."""
from __future__ import annotations

from installer.platform.flows import NODES, SITE, Flow, api, dns, url_port

NAME = "postgres"
NAMESPACE = "cnpg-system"
IMAGE = "ghcr.io/cloudnative-pg/postgresql"
DEFAULTS = {
    "medai_postgres_image": "",  # "": the bundle's one ghcr.io/cloudnative-pg/postgresql image, by digest
    "medai_postgres_instances": None,  # None: min(3, hosts)
    "medai_postgres_resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "medai_postgres_operator_resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "medai_postgres_storage_class": "longhorn",
    "medai_postgres_storage_size": "10Gi",
    "medai_postgres_wal_storage_size": "5Gi",
    "medai_postgres_backup_method": "volumeSnapshot",  # or barmanObjectStore (medai_postgres_backup_object_store)
    "medai_postgres_backup_snapshot_class": "longhorn",
    "medai_postgres_backup_schedule": "0 0 2 * * *",  # six fields (seconds first), CNPG's cron format
    "medai_postgres_backup_retention": "30d",
    "medai_postgres_backup_object_store": {},  # {destinationPath, endpointURL, credentialsSecret, caSecret}
    "medai_postgres_databases": [
        {"name": "keycloak", "namespace": "keycloak", "owner": "keycloak"},
        {"name": "harbor", "namespace": "harbor", "owner": "harbor", "database": "registry"},
    ],
    "medai_postgres_release_timeout": 600,
}
LABELS = {"app.kubernetes.io/managed-by": "medai"}


def values(v: dict) -> dict:
    return {"replicaCount": 1, "crds": {"create": True}, "config": {"clusterWide": True},
            "resources": v["medai_postgres_operator_resources"],
            "monitoring": {"podMonitorEnabled": False, "grafanaDashboard": {"create": False}}}


def _backup(v: dict, name: str) -> dict:
    if v["medai_postgres_backup_method"] == "volumeSnapshot":
        return {"volumeSnapshot": {"className": v["medai_postgres_backup_snapshot_class"], "online": True}}
    store = v["medai_postgres_backup_object_store"]
    creds = store.get("credentialsSecret")
    out = {"destinationPath": f"{store.get('destinationPath')}/{name}", "endpointURL": store.get("endpointURL"),
           "s3Credentials": {"accessKeyId": {"name": creds, "key": "ACCESS_KEY_ID"},
                             "secretAccessKey": {"name": creds, "key": "ACCESS_SECRET_KEY"}}}
    if store.get("caSecret"):
        out["endpointCA"] = {"name": store["caSecret"], "key": "ca.crt"}
    return {"retentionPolicy": v["medai_postgres_backup_retention"], "barmanObjectStore": out}


def cluster(v: dict, db: dict) -> dict:
    storage = lambda size: {"storageClass": v["medai_postgres_storage_class"], "size": size}  # noqa: E731
    return {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": f"{db['name']}-db", "namespace": db["namespace"], "labels": dict(LABELS)},
        "spec": {
            "instances": int(v["medai_postgres_instances"]),
            "imageName": v["medai_postgres_image"],
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "resources": v["medai_postgres_resources"],
            "storage": storage(v["medai_postgres_storage_size"]),
            "walStorage": storage(v["medai_postgres_wal_storage_size"]),
            "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname",
                         "podAntiAffinityType": "preferred"},
            "bootstrap": {"initdb": {"database": db.get("database") or db["name"], "owner": db["owner"],
                                     "secret": {"name": f"{db['name']}-db-credentials"}}},
            "backup": _backup(v, db["name"]),
        },
    }


def scheduled_backup(v: dict, db: dict) -> dict:
    return {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
        "metadata": {"name": f"{db['name']}-db-daily", "namespace": db["namespace"], "labels": dict(LABELS)},
        "spec": {"schedule": v["medai_postgres_backup_schedule"], "backupOwnerReference": "self",
                 "method": v["medai_postgres_backup_method"], "cluster": {"name": f"{db['name']}-db"}},
    }


def objects(v: dict) -> list[dict]:
    """A Cluster and a ScheduledBackup per database: applied once the operator's CRDs exist (the owner credentials
    Secrets come from Vault, in the install's Vault step; the database namespaces from installer.platform.render)."""
    out: list[dict] = []
    for db in v["medai_postgres_databases"]:
        out += [cluster(v, db), scheduled_backup(v, db)]
    return out

OPERATOR = {"app.kubernetes.io/name": "cloudnative-pg"}


def instance_pods(cluster_name: str) -> dict:
    return {"cnpg.io/cluster": cluster_name}


def flows(v: dict, ns: dict) -> list[Flow]:
    """The operator's webhook from the API server and its calls to each instance's manager (8000); per Cluster
    the instances' API access (leader election, status), streaming replication between them, and, with an
    object store, the backups leaving for it."""
    me = ns[NAME]
    out = dns(me) + [api(me, OPERATOR, "the operator reconciles Clusters"),
                     Flow(NODES, me, 9443, "TCP", {}, OPERATOR, "the API server calls the operator's webhook")]
    for db in v["medai_postgres_databases"]:
        pods, where = instance_pods(f"{db['name']}-db"), db["namespace"]
        out += dns(where, pods) + [
            api(where, pods, "instance managers update their Cluster's status"),
            Flow(me, where, 8000, "TCP", OPERATOR, pods, "the operator polls each instance manager"),
            Flow(where, where, 5432, "TCP", pods, pods, "streaming replication from the primary"),
            Flow(where, where, 8000, "TCP", pods, pods, "instances fetch the primary's status"),
        ]
        if v["medai_postgres_backup_method"] == "barmanObjectStore":
            store = str(v["medai_postgres_backup_object_store"].get("endpointURL") or "")
            out.append(Flow(where, SITE, url_port(store), "TCP", pods, {}, "base backups and WAL to the object store"))
    return out
