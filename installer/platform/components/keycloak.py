"""Keycloak (keycloakx chart): production mode with TLS on Keycloak itself, its database on the CloudNativePG
Cluster, every credential a secretKeyRef; an HTTPS LoadBalancer Service; the realm ConfigMap and the
keycloak-config-cli Job that applies it (installer/deploy/idp_step.py runs it once the release is ready)."""
from __future__ import annotations

import hashlib
import json

import yaml

from installer.platform.components.postgres import instance_pods
from installer.platform.flows import SITE, Flow, dns

NAME = "keycloak"
NAMESPACE = "keycloak"
CHART = "keycloakx"
DEFAULTS = {
    "medai_keycloak_hostname": "",  # e.g. keycloak.radiology.internal (inventory)
    "medai_keycloak_lb_address": "",  # an address of medai_metallb_pool, or "" for MetalLB's choice
    "medai_keycloak_replicas": None,  # None: min(2, servers)
    "medai_keycloak_resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "medai_keycloak_db_host": "keycloak-db-rw",  # the CNPG Cluster's read-write Service
    "medai_keycloak_db_name": "keycloak",
    "medai_keycloak_db_user": "keycloak",
    "medai_keycloak_db_secret": "keycloak-db-credentials",
    "medai_keycloak_tls_secret": "keycloak-tls",
    "medai_keycloak_bootstrap_secret": "keycloak-bootstrap-admin",
    "medai_keycloak_bootstrap": True,  # the temporary bootstrap admin; false once medai removed it
    "medai_keycloak_admin_username": "medai-admin",
    "medai_keycloak_config_cli_env_secret": "keycloak-config-cli-env",
    "medai_keycloak_image": "quay.io/keycloak/keycloak:26.0.7",
    "medai_keycloak_namespace": "keycloak",
    "medai_keycloak_release_timeout": 600,
}
PERMANENT_ADMIN_SECRET = "keycloak-permanent-admin"
JOB_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}}  # the realm Job's JVMs
LABELS = {"app.kubernetes.io/managed-by": "medai"}


def fullname(release: str) -> str:
    """The chart's keycloak.fullname: the release name when it contains the chart's name, else RELEASE-keycloakx."""
    return (release if CHART in release else f"{release}-{CHART}")[:63].rstrip("-")


def _env(v: dict) -> list[dict]:
    # Infinispan's kubernetes stack (the chart's KC_CACHE_STACK) finds the other servers by a DNS query of the
    # release's headless Service; the chart's own extraEnv carries it, and these values replace that list.
    discovery = ('-Djgroups.dns.query={{ include "keycloak.fullname" . }}-headless'
                 '.{{ .Release.Namespace }}.svc.cluster.local')
    env = [{"name": "JAVA_OPTS_APPEND", "value": discovery},
           {"name": "KC_HOSTNAME", "value": f"https://{v['medai_keycloak_hostname']}"},
           {"name": "KC_HTTPS_CERTIFICATE_FILE", "value": "/opt/keycloak/conf/tls/tls.crt"},
           {"name": "KC_HTTPS_CERTIFICATE_KEY_FILE", "value": "/opt/keycloak/conf/tls/tls.key"},
           {"name": "KC_TRUSTSTORE_PATHS", "value": "/opt/keycloak/conf/tls/ca.crt"}]
    if v["medai_keycloak_bootstrap"]:
        ref = lambda key: {"secretKeyRef": {"name": v["medai_keycloak_bootstrap_secret"], "key": key}}  # noqa: E731
        env += [{"name": "KC_BOOTSTRAP_ADMIN_USERNAME", "valueFrom": ref("username")},
                {"name": "KC_BOOTSTRAP_ADMIN_PASSWORD", "valueFrom": ref("password")}]
    return env


def values(v: dict) -> dict:
    dump = lambda obj: yaml.safe_dump(obj, sort_keys=False)  # noqa: E731  (the chart takes these as tpl strings)
    return {
        "replicas": int(v["medai_keycloak_replicas"]),
        "command": ["/opt/keycloak/bin/kc.sh", "start"],
        "args": ["--https-port=8443", "--http-enabled=false"],
        "proxy": {"enabled": False, "http": {"enabled": False}},
        "http": {"relativePath": "/", "internalScheme": "HTTPS"},
        "service": {"type": "ClusterIP", "httpsPort": 8443},
        "cache": {"stack": "default"},
        "database": {"vendor": "postgres", "hostname": v["medai_keycloak_db_host"], "port": 5432,
                     "database": v["medai_keycloak_db_name"], "username": v["medai_keycloak_db_user"],
                     "existingSecret": v["medai_keycloak_db_secret"], "existingSecretKey": "password"},
        "resources": v["medai_keycloak_resources"],
        "extraEnv": dump(_env(v)),
        "extraVolumes": dump([{"name": "tls", "secret": {"secretName": v["medai_keycloak_tls_secret"],
                                                         "defaultMode": 0o440}}]),
        "extraVolumeMounts": dump([{"name": "tls", "mountPath": "/opt/keycloak/conf/tls", "readOnly": True}]),
        "securityContext": {"runAsUser": 1000, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    }


def lb_service(v: dict, release: str, namespace: str) -> dict:
    """HTTPS only, on a MetalLB address (the chart's Service also carries the management port 9000, which stays
    inside the cluster)."""
    meta: dict = {"name": f"{fullname(release)}-https", "namespace": namespace, "labels": dict(LABELS)}
    if v["medai_keycloak_lb_address"]:
        meta["annotations"] = {"metallb.io/loadBalancerIPs": v["medai_keycloak_lb_address"]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                     "selector": {"app.kubernetes.io/name": CHART, "app.kubernetes.io/instance": release},
                     "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]}}


def objects(v: dict, release: str, namespace: str) -> list[dict]:
    return [lb_service(v, release, namespace)]


def realm_job(v: dict, release: str, namespace: str, documents: dict[str, str], image: str, bootstrap: bool) -> list[dict]:
    """The ConfigMap with the realm documents and the keycloak-config-cli Job that applies them idempotently;
    $(env:...) values come from Secret medai_keycloak_config_cli_env_secret. The Job is named after the documents
    and the admin it logs in as: a Job's template is immutable, so a change of either is a new Job, and an
    unchanged rerun re-applies the finished one as it is."""
    digest = hashlib.sha256((json.dumps(documents, sort_keys=True) + str(bootstrap)).encode()).hexdigest()[:10]
    admin = v["medai_keycloak_bootstrap_secret"] if bootstrap else PERMANENT_ADMIN_SECRET
    ref = lambda key: {"secretKeyRef": {"name": admin, "key": key}}  # noqa: E731
    drop = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    env = [{"name": "KEYCLOAK_URL", "value": f"https://{fullname(release)}-http.{namespace}.svc:8443/"},
           {"name": "KEYCLOAK_USER", "valueFrom": ref("username")},
           {"name": "KEYCLOAK_PASSWORD", "valueFrom": ref("password")},
           {"name": "KEYCLOAK_AVAILABILITYCHECK_ENABLED", "value": "true"},
           {"name": "IMPORT_FILES_LOCATIONS", "value": "/config/*"},
           {"name": "IMPORT_VARSUBSTITUTION_ENABLED", "value": "true"}]
    env += [{"name": f"IMPORT_MANAGED_{k}", "value": "full"}
            for k in ("CLIENT", "GROUP", "REQUIRED_ACTION", "AUTHENTICATION_FLOW")]
    env.append({"name": "JAVA_TOOL_OPTIONS",
                "value": "-Djavax.net.ssl.trustStore=/trust/ca.p12 -Djavax.net.ssl.trustStoreType=PKCS12"})
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "keycloak-realm-config", "namespace": namespace, "labels": dict(LABELS)},
                  "data": dict(sorted(documents.items()))}
    # Java reads no PEM trust store: the init container builds a PKCS12 one (public certificates only).
    truststore = {"name": "truststore", "image": v["medai_keycloak_image"],
                  "command": ["/bin/sh", "-c", "keytool -importcert -noprompt -storetype PKCS12 -alias site-ca "
                              "-file /tls/ca.crt -keystore /trust/ca.p12 -storepass:env STOREPASS"],
                  "env": [{"name": "STOREPASS", "value": "public-certificates-only"}],
                  "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True},
                                   {"name": "trust", "mountPath": "/trust"}],
                  "resources": JOB_RESOURCES, "securityContext": drop}
    cli = {"name": "keycloak-config-cli", "image": image, "env": env,
           "envFrom": [{"secretRef": {"name": v["medai_keycloak_config_cli_env_secret"]}}],
           "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True},
                            {"name": "trust", "mountPath": "/trust", "readOnly": True}],
           "resources": JOB_RESOURCES, "securityContext": drop}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": f"keycloak-config-cli-{digest}", "namespace": namespace, "labels": dict(LABELS)},
           "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": 86400, "template": {
               "metadata": {"labels": {**LABELS, **CONFIG_CLI}}, "spec": {
               "restartPolicy": "Never", "automountServiceAccountToken": False,
               "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
               "initContainers": [truststore], "containers": [cli],
               "volumes": [{"name": "config", "configMap": {"name": "keycloak-realm-config"}},
                           {"name": "tls", "secret": {"secretName": v["medai_keycloak_tls_secret"],
                                                      "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                           {"name": "trust", "emptyDir": {}}]}}}}
    return [config_map, job]


PODS = {"app.kubernetes.io/name": CHART}
CONFIG_CLI = {"app.kubernetes.io/name": "keycloak-config-cli"}
JGROUPS_PORT = 7800


def flows(v: dict, ns: dict) -> list[Flow]:
    """Logins from the site on the LoadBalancer (8443 behind 443), Keycloak to its database, the servers'
    JGroups cluster (DNS discovery on the headless Service), the realm Job to the admin API."""
    me = ns[NAME]
    db = instance_pods(v["medai_keycloak_db_host"].removesuffix("-rw"))
    return dns(me, PODS) + dns(me, CONFIG_CLI) + [
        Flow(SITE, me, "https", "TCP", {}, PODS, "logins and OIDC from the site (the HTTPS LoadBalancer)"),
        Flow(me, me, 5432, "TCP", PODS, db, "Keycloak's database (the CloudNativePG Cluster)"),
        Flow(me, me, JGROUPS_PORT, "TCP", PODS, PODS, "Infinispan's JGroups cluster between the servers"),
        Flow(me, me, "https", "TCP", CONFIG_CLI, PODS, "the realm Job calls the admin API"),
    ]
