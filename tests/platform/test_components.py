"""The PostgreSQL, Keycloak and Harbor components (installer/platform/components) for a site: their objects and
values as `medai render` produces them, the charts rendered by Helm at the bundle's K3s version with those values,
then validated (core kinds strictly, CNPG resources against the CNPG chart's own CRDs). NOT executed here: the
in-cluster apply (helm install, Secrets from Vault, the keycloak-config-cli Job): that runs in the K3s e2e test."""
from __future__ import annotations

import base64
import copy
import json
import re

import pytest
import yaml

from installer.core.errors import InventoryError
from installer.deploy.idp_step import realm_job_objects
from installer.deploy.inventory import load_inventory
from installer.platform.components import keycloak, postgres
from installer.platform.values import role_vars, site_values
from tests.platform_idp.render import helm_template, validate_core, validate_cr
from tests.platform_idp.site import SITE_VARS
from tests.support.fixture_charts import ROOT

PG_IMAGE = "ghcr.io/cloudnative-pg/postgresql:17.5@sha256:" + "ab" * 32
DEFAULT_PASSWORDS = ("Harbor12345", "changeit", "not-a-secure-key")  # the charts' built-in defaults
_SECRETISH = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|_KEY$", re.I)


def _pod_specs(objs):
    for o in objs:
        spec = o.get("spec") or {}
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield o, spec["template"]["spec"]


def assert_no_inline_secrets(objs: list[dict]) -> None:
    """Secrets only by reference: no env var that looks secret carries a literal value, no chart default
    password appears, and every Secret the charts render is empty or holds no credential."""
    text = json.dumps(objs)
    for p in DEFAULT_PASSWORDS:
        assert p not in text and base64.b64encode(p.encode()).decode().rstrip("=") not in text, p
    for o, pod in _pod_specs(objs):
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for e in c.get("env") or []:
                if _SECRETISH.search(e["name"]) and not e["name"].endswith(("_FILE", "_PATHS")):
                    assert "valueFrom" in e and "value" not in e, f"{o['kind']}/{o['metadata']['name']} {c['name']}: {e}"
    for o in objs:
        if o["kind"] == "Secret":
            for k, v in {**(o.get("data") or {}), **(o.get("stringData") or {})}.items():
                assert not (v and _SECRETISH.search(k)), f"Secret/{o['metadata']['name']} renders {k} inline"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("idp-components")


def site(work, name: str, **over):
    """The example inventory (3 servers, 2 GPU agents) with the idp site settings and ``over`` in all.vars."""
    doc = yaml.safe_load((ROOT / "inventories" / "example" / "site.yml").read_text())
    doc["all"]["vars"].update(copy.deepcopy(SITE_VARS))
    doc["all"]["vars"].update(over)
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc))
    return load_inventory(path)


def values_file(work, name: str, values: dict):
    path = work / f"{name}.values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def pg_objects(work, name: str, **over) -> dict[str, dict]:
    """kind-name -> object, e.g. 'Cluster/keycloak-db'."""
    objs = postgres.objects(role_vars("postgres", site(work, name, medai_postgres_image=PG_IMAGE, **over)))
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objs}


# ---------------- postgres ----------------

@pytest.fixture(scope="module")
def pg(work):
    return pg_objects(work, "pg")


def test_postgres_clusters_validate_against_the_cnpg_crds(pg):
    for db in ("keycloak", "harbor"):
        cluster, backup = pg[f"Cluster/{db}-db"], pg[f"ScheduledBackup/{db}-db-daily"]
        validate_cr(cluster)
        validate_cr(backup)
        spec = cluster["spec"]
        assert spec["instances"] == 3  # 5 nodes -> 3 (primary + 2 replicas)
        assert spec["imageName"] == PG_IMAGE
        assert spec["storage"]["storageClass"] == "longhorn" and spec["walStorage"]["storageClass"] == "longhorn"
        assert spec["bootstrap"]["initdb"]["secret"] == {"name": f"{db}-db-credentials"}
        assert spec["backup"]["volumeSnapshot"]["className"] == "longhorn"
        assert backup["spec"]["method"] == "volumeSnapshot" and backup["spec"]["cluster"]["name"] == f"{db}-db"
    assert pg["Cluster/harbor-db"]["spec"]["bootstrap"]["initdb"]["database"] == "registry"
    assert not [o for o in pg.values() if o["kind"] == "Namespace"]  # installer.platform.render labels and adds them


def test_postgres_object_store_backups_validate(work):
    out = pg_objects(work, "pg-s3", medai_postgres_backup_method="barmanObjectStore",
                     medai_postgres_backup_object_store={"destinationPath": "s3://pg-backups",
                                                         "endpointURL": "https://minio.radiology.internal",
                                                         "credentialsSecret": "pg-backup-s3", "caSecret": "site-ca"})
    cluster = out["Cluster/keycloak-db"]
    validate_cr(cluster)
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://pg-backups/keycloak"
    assert store["s3Credentials"]["secretAccessKey"] == {"name": "pg-backup-s3", "key": "ACCESS_SECRET_KEY"}
    assert store["endpointCA"] == {"name": "site-ca", "key": "ca.crt"}
    validate_cr(out["ScheduledBackup/keycloak-db-daily"])


@pytest.mark.parametrize("image", ["ghcr.io/cloudnative-pg/postgresql:17.5", "docker.io/bitnami/postgresql:17"])
def test_postgres_refuses_an_image_not_pinned_by_digest(work, image):
    with pytest.raises(InventoryError, match=r"all.vars.medai_postgres_image: .* must be pinned by digest"):
        role_vars("postgres", site(work, "pg-bad", medai_postgres_image=image))


def test_postgres_single_node_gets_one_instance(work):
    assert pg_objects(work, "pg-1", medai_postgres_instances=1)["Cluster/keycloak-db"]["spec"]["instances"] == 1


def test_cnpg_operator_chart_renders_valid_objects(work):
    inv = site(work, "cnpg")
    objs = helm_template("cloudnative-pg-0.28.3.tgz", "cnpg", "cnpg-system",
                         values_file(work, "cnpg", site_values("cloudnative-pg", inv)))
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "CustomResourceDefinition", "MutatingWebhookConfiguration"} <= kinds
    for o in objs:
        validate_core(o)
    assert_no_inline_secrets(objs)


# ---------------- keycloak ----------------

INDEX = {"artifacts": [{"kind": "image", "ref": "docker.io/adorsys/keycloak-config-cli:6.5.1-26.0.5",
                        "digest": "sha256:" + "cd" * 32}]}


def _kc(work, name, **over):
    inv = site(work, name, medai_keycloak_lb_address="10.20.0.200", **over)
    objs = helm_template("keycloakx-7.0.1.tgz", "keycloakx", "keycloak",
                         values_file(work, name, site_values("keycloakx", inv)))
    return inv, objs


@pytest.fixture(scope="module")
def kc(work):
    return _kc(work, "kc")


def _env(container):
    return {e["name"]: e for e in container.get("env") or []}


def test_keycloak_runs_in_production_mode_on_the_cnpg_database(kc):
    _, objs = kc
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["/opt/keycloak/bin/kc.sh", "start"] and "start-dev" not in json.dumps(c)
    env = _env(c)
    assert env["KC_DB"]["value"] == "postgres" and env["KC_DB_URL_HOST"]["value"] == "keycloak-db-rw"
    assert env["KC_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "keycloak-db-credentials", "key": "password"}
    assert env["KC_HOSTNAME"]["value"] == "https://keycloak.radiology.internal"
    assert env["KC_HTTPS_CERTIFICATE_FILE"]["value"].startswith("/opt/keycloak/conf/tls/")
    for n in ("KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD"):
        assert env[n]["valueFrom"]["secretKeyRef"]["name"] == "keycloak-bootstrap-admin"
    assert "KC_HTTP_ENABLED" not in env and "--http-enabled=false" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    for o in objs:
        validate_core(o)
    assert_no_inline_secrets(objs)


def test_keycloak_lb_service_and_config_job_validate(kc):
    inv, objs = kc
    svc = keycloak.lb_service(role_vars("keycloak", inv), "keycloakx", "keycloak")
    validate_core(svc)
    http = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"].endswith("-http"))
    assert svc["spec"]["selector"].items() <= http["spec"]["selector"].items()  # the chart's own pods
    assert svc["spec"]["type"] == "LoadBalancer" and [p["port"] for p in svc["spec"]["ports"]] == [443]
    assert svc["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "10.20.0.200"
    cm, job = realm_job_objects(inv, INDEX, True)
    validate_core(cm)
    validate_core(job)
    realm = yaml.safe_load(cm["data"]["medical-ai.yaml"])
    assert realm["realm"] == "medical-ai" and all("CONFIGURE_TOTP" in u["requiredActions"] for u in realm["users"])
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = _env(c)
    assert env["KEYCLOAK_URL"]["value"] == f"https://{http['metadata']['name']}.keycloak.svc:8443/"  # the chart's Service
    assert env["IMPORT_VARSUBSTITUTION_ENABLED"]["value"] == "true"
    assert env["KEYCLOAK_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "keycloak-bootstrap-admin"
    assert c["envFrom"] == [{"secretRef": {"name": "keycloak-config-cli-env"}}]
    assert_no_inline_secrets([cm, job])


def test_keycloak_after_bootstrap_drops_the_temporary_admin(work):
    inv, objs = _kc(work, "kc-2", medai_keycloak_bootstrap=False)
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
    assert "KC_BOOTSTRAP_ADMIN_PASSWORD" not in _env(sts["spec"]["template"]["spec"]["containers"][0])
    job = realm_job_objects(inv, INDEX, False)[1]
    assert _env(job["spec"]["template"]["spec"]["containers"][0])["KEYCLOAK_USER"]["valueFrom"]["secretKeyRef"]["name"] \
        == "keycloak-permanent-admin"


# ---------------- harbor ----------------

@pytest.fixture(scope="module")
def harbor(work):
    inv = site(work, "harbor", medai_harbor_hostname="harbor.radiology.internal", medai_harbor_lb_address="10.20.0.201",
               medai_harbor_trivy=True)  # as after `medai harbor seed`
    return helm_template("harbor-1.17.0.tgz", "harbor", "harbor", values_file(work, "harbor", site_values("harbor", inv)))


def test_harbor_first_install_runs_without_trivy_until_the_databases_are_seeded(work):
    """Trivy's init container pulls its databases from Harbor's platform project, empty before `medai harbor
    seed`: the first install leaves the scanner out, so the release becomes ready."""
    inv = site(work, "harbor-first", medai_harbor_hostname="harbor.radiology.internal")
    values = site_values("harbor", inv)
    objs = helm_template("harbor-1.17.0.tgz", "harbor", "harbor", values_file(work, "harbor-first", values))
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "harbor-trivy"]
    assert sts["spec"]["replicas"] == 0  # Service and registration rendered (core names them), no pod to wait on
    assert any(o["kind"] == "Service" and o["metadata"]["name"] == "harbor-trivy" for o in objs)


def test_harbor_renders_valid_objects_with_secrets_only_by_reference(harbor):
    for o in harbor:
        validate_core(o)
    assert_no_inline_secrets(harbor)
    assert not [o for o in harbor if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "harbor-database"]


def test_harbor_is_exposed_by_metallb_with_tls_and_its_external_url(harbor):
    (svc,) = [o for o in harbor if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer"]
    assert svc["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "10.20.0.201"
    assert 443 in [p["port"] for p in svc["spec"]["ports"]]
    (core_cm,) = [o for o in harbor if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "harbor-core"]
    assert core_cm["data"]["EXT_ENDPOINT"] == "https://harbor.radiology.internal"
    nginx = next(o for o in harbor if o["kind"] == "Deployment" and o["metadata"]["name"] == "harbor-nginx")
    vols = {v["name"]: v for v in nginx["spec"]["template"]["spec"]["volumes"]}
    assert vols["certificate"]["secret"]["secretName"] == "medai-harbor-tls"
    core = next(o for o in harbor if o["kind"] == "Deployment" and o["metadata"]["name"] == "harbor-core")
    env = _env(core["spec"]["template"]["spec"]["containers"][0])
    assert env["HARBOR_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "medai-harbor-admin", "key": "password"}
    assert env["POSTGRESQL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "harbor-db-credentials"


def test_harbor_trivy_is_offline_and_reads_the_bundled_databases(harbor):
    (sts,) = [o for o in harbor if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "harbor-trivy"]
    pod = sts["spec"]["template"]["spec"]
    env = _env(pod["containers"][0])
    assert env["SCANNER_TRIVY_SKIP_UPDATE"]["value"] == "true"
    assert env["SCANNER_TRIVY_SKIP_JAVA_DB_UPDATE"]["value"] == "true"
    assert env["SCANNER_TRIVY_OFFLINE_SCAN"]["value"] == "true"
    (init,) = pod["initContainers"]
    script = " ".join(init["args"])
    assert "--db-repository harbor.radiology.internal/platform/aquasecurity/trivy-db:2" in script
    assert "--java-db-repository harbor.radiology.internal/platform/aquasecurity/trivy-java-db:1" in script
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert mounts["data"] == "/home/scanner/.cache" == {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}["data"]


def test_inline_secret_detector_can_fail():
    bad = [{"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [
        {"name": "c", "env": [{"name": "DB_PASSWORD", "value": "hunter2hunter2"}]}]}}}}]
    with pytest.raises(AssertionError, match="DB_PASSWORD"):
        assert_no_inline_secrets(bad)
    with pytest.raises(AssertionError, match="renders password"):
        assert_no_inline_secrets([{"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "x"}}])


def test_detector_catches_the_harbor_chart_with_its_defaults():
    """Harbor's own defaults put the admin password and other credentials inline: the check must see that."""
    with pytest.raises(AssertionError):
        assert_no_inline_secrets(helm_template("harbor-1.17.0.tgz", "harbor", "harbor"))
