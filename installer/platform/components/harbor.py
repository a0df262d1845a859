"""Harbor: behind a MetalLB address with TLS, its database on the CloudNativePG Cluster, every credential an
existing Secret (from Vault); OIDC login is configured through Harbor's API afterwards
(installer/deploy/harbor/oidc.py), so the client secret is in no chart value. Trivy scans offline from the
databases the bundle carries (copied into Harbor's platform project by `medai harbor seed`)."""
from __future__ import annotations

from installer.platform.components import keycloak
from installer.platform.components.postgres import instance_pods
from installer.platform.flows import NODES, SITE, Flow, dns

NAME = "harbor"
NAMESPACE = "harbor"
DEFAULTS = {
    "medai_harbor_hostname": "",  # required with the harbor chart: e.g. harbor.radiology.internal
    "medai_harbor_lb_address": "",
    "medai_harbor_storage_class": "longhorn",
    "medai_harbor_registry_size": "200Gi",
    "medai_harbor_db_host": "harbor-db-rw",
    "medai_harbor_db_name": "registry",
    "medai_harbor_db_user": "harbor",
    "medai_harbor_db_secret": "harbor-db-credentials",
    # Trivy's init container fills its cache from Harbor's platform project, which `medai harbor seed` fills after
    # the install: no scanner pod on the first install; true (and `medai upgrade`/`install` again) once seeded.
    "medai_harbor_trivy": False,
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
        "redis": "medai-harbor-redis",
    },
    "medai_harbor_resources": {  # requests (and memory limits) per Harbor component
        "core": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "jobservice": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "portal": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "nginx": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "registry": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "registryctl": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "redis": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "trivy": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
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


# Harbor's Redis: the project's chart charts/medai-harbor-redis, released as REDIS_RELEASE in Harbor's namespace
# before Harbor. Harbor's chart runs with `redis.type: external` and no password in its values (its ConfigMaps
# carry password-free URLs); every client container gets the password from the Secret synced from Vault
# (harbor/redis) by secretKeyRef, and its Redis URLs as env entries naming it, which Kubernetes expands when it
# starts the container ($(VAR) of an earlier entry) and which override the ConfigMaps' keys (envFrom).
REDIS_CHART = REDIS_RELEASE = "medai-harbor-redis"
REDIS_PORT = 6379
REDIS_PASSWORD_ENV = "MEDAI_REDIS_PASSWORD"
REDIS_INDEXES = {"coreDatabaseIndex": "0", "jobserviceDatabaseIndex": "1", "registryDatabaseIndex": "2",
                 "trivyAdapterIndex": "5"}
# client container -> {variable: database index, None for a bare password}: what each reads its Redis from
# (harbor 1.17.0's core and jobservice ConfigMaps, the jobservice config.yml's redis_url that
# JOB_SERVICE_POOL_REDIS_URL overrides, the registry's config.yml password that REGISTRY_REDIS_PASSWORD overrides,
# the Trivy adapter's SCANNER_*_REDIS_URL)
REDIS_CLIENTS = {
    "core": {"_REDIS_URL_CORE": "coreDatabaseIndex", "_REDIS_URL_REG": "registryDatabaseIndex"},
    "jobservice": {"_REDIS_URL_CORE": "coreDatabaseIndex", "JOB_SERVICE_POOL_REDIS_URL": "jobserviceDatabaseIndex"},
    "registry": {"REGISTRY_REDIS_PASSWORD": None},
    "registryctl": {"REGISTRY_REDIS_PASSWORD": None},
    "trivy": {"SCANNER_REDIS_URL": "trivyAdapterIndex", "SCANNER_STORE_REDIS_URL": "trivyAdapterIndex",
              "SCANNER_JOB_QUEUE_REDIS_URL": "trivyAdapterIndex"},
}
# the chart adds ?idle_timeout_seconds=30 to every URL but the job queue's
NO_IDLE_TIMEOUT = ("JOB_SERVICE_POOL_REDIS_URL",)


def redis_env(v: dict, client: str) -> list[dict]:
    """The env entries of one Redis client container: the password by secretKeyRef, then the URLs naming it."""
    ref = {"secretKeyRef": {"name": v["medai_harbor_secret_names"]["redis"], "key": "password"}}
    urls = {k: i for k, i in REDIS_CLIENTS[client].items() if i is not None}
    out = [{"name": k, "valueFrom": ref} for k, i in REDIS_CLIENTS[client].items() if i is None]
    if urls:
        out.append({"name": REDIS_PASSWORD_ENV, "valueFrom": ref})
    for name, index in urls.items():
        query = "" if name in NO_IDLE_TIMEOUT else "?idle_timeout_seconds=30"
        out.append({"name": name, "value": f"redis://:$({REDIS_PASSWORD_ENV})@{REDIS_RELEASE}:{REDIS_PORT}/"
                                          f"{REDIS_INDEXES[index]}{query}"})
    return out


def redis_values(v: dict) -> dict:
    """charts/medai-harbor-redis's site values: the Secret, Harbor's storage class and the Redis resources."""
    return {"passwordSecret": v["medai_harbor_secret_names"]["redis"], "resources": v["medai_harbor_resources"]["redis"],
            "persistence": {"storageClass": v["medai_harbor_storage_class"], "size": "1Gi"}}


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
        "resources": v["medai_harbor_resources"]["trivy"],
        "volumeMounts": [{"name": "data", "mountPath": "/home/scanner/.cache"},
                         {"name": "ca-bundle-certs", "mountPath": "/harbor_cust_cert/custom-ca.crt", "subPath": "ca.crt"}],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def _trivy(v: dict, resources: dict) -> dict:
    """The scanner is rendered and registered either way (core's configuration names its Service), with no pod
    until the databases are seeded: a pod before that could never get past its init container."""
    return {"enabled": True, "replicas": 1 if v["medai_harbor_trivy"] else 0, "resources": resources,
            "skipUpdate": True, "skipJavaDBUpdate": True, "offlineScan": True,
            # fill the cache volume Trivy reads from Harbor's copy of the bundle's databases
            "initContainers": [_trivy_init(v)], "extraEnvVars": redis_env(v, "trivy")}


def values(v: dict) -> dict:
    s, sc, res = v["medai_harbor_secret_names"], v["medai_harbor_storage_class"], v["medai_harbor_resources"]
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
            "trivy": {"storageClass": sc, "size": "5Gi"}}},
        "database": {"type": "external", "external": {
            "host": v["medai_harbor_db_host"], "port": "5432", "username": v["medai_harbor_db_user"],
            "coreDatabase": v["medai_harbor_db_name"], "existingSecret": v["medai_harbor_db_secret"], "sslmode": "require"}},
        "nginx": {"resources": res["nginx"]},
        "portal": {"resources": res["portal"]},
        "redis": {"type": "external", "external": {"addr": f"{REDIS_RELEASE}:{REDIS_PORT}", **REDIS_INDEXES}},
        "core": {"resources": res["core"], "existingSecret": s["core"], "existingXsrfSecret": s["core"],
                 "existingXsrfSecretKey": "CSRF_KEY",
                 "secretName": s["core_token"], "extraEnvVars": redis_env(v, "core")},
        "jobservice": {"resources": res["jobservice"], "existingSecret": s["jobservice"], "existingSecretKey": "JOBSERVICE_SECRET",
                       "extraEnvVars": redis_env(v, "jobservice")},
        "registry": {"registry": {"resources": res["registry"], "extraEnvVars": redis_env(v, "registry")},
                     "controller": {"resources": res["registryctl"], "extraEnvVars": redis_env(v, "registryctl")},
                     "existingSecret": s["registry"], "existingSecretKey": "REGISTRY_HTTP_SECRET",
                     "credentials": {"username": "harbor_registry_user", "existingSecret": s["registry_credentials"]}},
        "trivy": _trivy(v, res["trivy"]),
        "metrics": {"enabled": False},
    }


def pods(component: str) -> dict:
    return {"app": "harbor", "component": component}


# (from, to, port, why): Harbor's components calling each other inside the namespace
INTERNAL = (
    ("nginx", "core", 8080, "the proxy in front of the API and token service"),
    ("nginx", "portal", 8080, "the proxy in front of the web UI"),
    ("nginx", "registry", 5000, "the proxy in front of the registry"),
    ("core", "registry", 5000, "core reads manifests"),
    ("core", "registry", 8080, "core drives registryctl (garbage collection)"),
    ("core", "redis", 6379, "sessions and caches"),
    ("core", "jobservice", 8080, "core submits jobs"),
    ("core", "trivy", 8080, "core asks the scanner adapter"),
    ("jobservice", "core", 8080, "jobs report back"),
    ("jobservice", "redis", 6379, "the job queue"),
    ("jobservice", "registry", 5000, "replication and retention jobs"),
    ("jobservice", "registry", 8080, "garbage collection through registryctl"),
    ("jobservice", "trivy", 8080, "scan jobs"),
    ("registry", "core", 8080, "token checks"),
    ("registry", "redis", 6379, "the registry's blob descriptor cache"),
    ("trivy", "redis", 6379, "the adapter's job queue"),
    ("trivy", "core", 8080, "the adapter pulls the artifact it scans"),
)


def flows(v: dict, ns: dict) -> list[Flow]:
    """The site (and the nodes' containerd, pulling through the mirror) on the LoadBalancer's nginx, Harbor's
    internals, core and jobservice to the database, core to Keycloak for OIDC (the hostname resolves to
    Keycloak's LoadBalancer address; Cilium translates it to the pods before policy)."""
    me = ns[NAME]
    db = instance_pods(v["medai_harbor_db_host"].removesuffix("-rw"))
    out = [f for c in ("core", "jobservice", "registry", "trivy", "nginx") for f in dns(me, pods(c))]
    out += [Flow(SITE, me, port, "TCP", {}, pods("nginx"), "the registry and UI from the site") for port in (8080, 8443)]
    out.append(Flow(NODES, me, 8443, "TCP", {}, pods("nginx"), "containerd pulls through the Harbor mirror"))
    out += [Flow(me, me, port, "TCP", pods(a), pods(b), why) for a, b, port, why in INTERNAL]
    out += [Flow(me, me, 5432, "TCP", pods(c), db, "Harbor's database (the CloudNativePG Cluster)")
            for c in ("core", "jobservice", "registry")]
    out.append(Flow(me, me, 8443, "TCP", pods("trivy"), pods("nginx"),
                    "Trivy's init container pulls the databases from the platform project"))
    if keycloak.NAME in ns:
        out.append(Flow(me, ns[keycloak.NAME], "https", "TCP", pods("core"), keycloak.PODS, "OIDC login through Keycloak"))
    return out
