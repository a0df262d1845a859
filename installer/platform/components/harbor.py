"""Harbor: behind a MetalLB address with TLS, its database on the CloudNativePG Cluster, every credential an
existing Secret (from Vault); OIDC login is configured through Harbor's API afterwards
(installer/deploy/harbor/oidc.py), so the client secret is in no chart value. Trivy scans offline from the
databases the bundle carries (copied into Harbor's platform project by `medai harbor seed`)."""
from __future__ import annotations

NAME = "harbor"
DEFAULTS = {
    "medai_harbor_hostname": "",  # required with the harbor chart: e.g. harbor.radiology.internal
    "medai_harbor_lb_address": "",
    "medai_harbor_storage_class": "longhorn",
    "medai_harbor_registry_size": "200Gi",
    "medai_harbor_db_host": "harbor-db-rw",
    "medai_harbor_db_name": "registry",
    "medai_harbor_db_user": "harbor",
    "medai_harbor_db_secret": "harbor-db-credentials",
    "medai_harbor_trivy_db_repository": None,  # None: HOSTNAME/platform/aquasecurity/trivy-db:2
    "medai_harbor_trivy_java_db_repository": None,  # None: HOSTNAME/platform/aquasecurity/trivy-java-db:1
    "medai_harbor_trivy_image": "docker.io/goharbor/trivy-adapter-photon:v2.13.0",
    "medai_harbor_namespace": "harbor",
    "medai_harbor_release": "harbor",
    "medai_harbor_secret_names": {
        "tls": "medai-harbor-tls", "ca": "medai-harbor-site-ca", "admin": "medai-harbor-admin",
        "secret_key": "medai-harbor-secret-key", "core": "medai-harbor-core", "core_token": "medai-harbor-core-token",
        "jobservice": "medai-harbor-jobservice", "registry": "medai-harbor-registry",
        "registry_credentials": "medai-harbor-registry-credentials", "trivy_db_pull": "medai-harbor-trivy-db-pull",
    },
    "medai_harbor_release_timeout": 900,
}


def computed(v: dict) -> dict:
    host = v["medai_harbor_hostname"]
    if v["medai_harbor_trivy_db_repository"] is None:
        v["medai_harbor_trivy_db_repository"] = f"{host}/platform/aquasecurity/trivy-db:2"
    if v["medai_harbor_trivy_java_db_repository"] is None:
        v["medai_harbor_trivy_java_db_repository"] = f"{host}/platform/aquasecurity/trivy-java-db:1"
    return v


def _trivy_init(v: dict) -> dict:
    s = v["medai_harbor_secret_names"]
    cache = "/home/scanner/.cache/trivy"
    ref = lambda key: {"secretKeyRef": {"name": s["trivy_db_pull"], "key": key}}  # noqa: E731
    return {
        "name": "trivy-db", "image": v["medai_harbor_trivy_image"], "command": ["/bin/sh", "-ec"],
        "args": [f"trivy --cache-dir {cache} image --download-db-only --db-repository "
                 f"{v['medai_harbor_trivy_db_repository']} && trivy --cache-dir {cache} image --download-java-db-only "
                 f"--java-db-repository {v['medai_harbor_trivy_java_db_repository']}"],
        "env": [{"name": "SSL_CERT_FILE", "value": "/harbor_cust_cert/custom-ca.crt"},
                {"name": "TRIVY_USERNAME", "valueFrom": ref("username")},
                {"name": "TRIVY_PASSWORD", "valueFrom": ref("password")}],
        "volumeMounts": [{"name": "data", "mountPath": "/home/scanner/.cache"},
                         {"name": "ca-bundle-certs", "mountPath": "/harbor_cust_cert/custom-ca.crt", "subPath": "ca.crt"}],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def values(v: dict) -> dict:
    s, sc = v["medai_harbor_secret_names"], v["medai_harbor_storage_class"]
    lb: dict = {"name": v["medai_harbor_release"], "IP": v["medai_harbor_lb_address"],
                "ports": {"httpPort": 80, "httpsPort": 443}}
    if v["medai_harbor_lb_address"]:
        lb["annotations"] = {"metallb.io/loadBalancerIPs": v["medai_harbor_lb_address"]}
    return {
        "externalURL": f"https://{v['medai_harbor_hostname']}",
        "expose": {"type": "loadBalancer", "tls": {"enabled": True, "certSource": "secret",
                                                   "secret": {"secretName": s["tls"]}}, "loadBalancer": lb},
        "caBundleSecretName": s["ca"],
        "existingSecretAdminPassword": s["admin"],
        "existingSecretAdminPasswordKey": "password",
        "existingSecretSecretKey": s["secret_key"],
        "persistence": {"enabled": True, "resourcePolicy": "keep", "persistentVolumeClaim": {
            "registry": {"storageClass": sc, "size": v["medai_harbor_registry_size"]},
            "jobservice": {"jobLog": {"storageClass": sc, "size": "1Gi"}},
            "redis": {"storageClass": sc, "size": "1Gi"},
            "trivy": {"storageClass": sc, "size": "5Gi"}}},
        "database": {"type": "external", "external": {
            "host": v["medai_harbor_db_host"], "port": "5432", "username": v["medai_harbor_db_user"],
            "coreDatabase": v["medai_harbor_db_name"], "existingSecret": v["medai_harbor_db_secret"], "sslmode": "require"}},
        "core": {"existingSecret": s["core"], "existingXsrfSecret": s["core"], "existingXsrfSecretKey": "CSRF_KEY",
                 "secretName": s["core_token"]},
        "jobservice": {"existingSecret": s["jobservice"], "existingSecretKey": "JOBSERVICE_SECRET"},
        "registry": {"existingSecret": s["registry"], "existingSecretKey": "REGISTRY_HTTP_SECRET",
                     "credentials": {"username": "harbor_registry_user", "existingSecret": s["registry_credentials"]}},
        "trivy": {"enabled": True, "skipUpdate": True, "skipJavaDBUpdate": True, "offlineScan": True,
                  # fill the cache volume Trivy reads from Harbor's copy of the bundle's databases
                  "initContainers": [_trivy_init(v)]},
        "metrics": {"enabled": False},
    }
