"""roles/postgres, roles/keycloak, roles/harbor rendered for real (ansible-playbook, render mode) and their
charts rendered by Helm at the bundle's K3s version, then validated. NOT executed here: the in-cluster apply
(helm install, Secrets from Vault, the keycloak-config-cli Job): that runs in the K3s e2e test."""
from __future__ import annotations

import base64
import copy
import json
import re

import pytest
import yaml

from installer.deploy.keycloak.realm import render_master_admin, render_realm
from installer.deploy.keycloak.settings import keycloak_site
from tests.platform_idp.render import RoleFailed, helm_template, load_docs, run_role, validate_core, validate_cr
from tests.platform_idp.site import SITE_VARS

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
    return tmp_path_factory.mktemp("idp-roles")


# ---------------- postgres ----------------

@pytest.fixture(scope="module")
def pg(work):
    return run_role("postgres", {"medai_postgres_image": PG_IMAGE}, work / "pg")


def test_postgres_clusters_validate_against_the_cnpg_crds(pg):
    for db in ("keycloak", "harbor"):
        (cluster,) = load_docs(pg / f"cluster-{db}.yaml")
        (backup,) = load_docs(pg / f"backup-{db}.yaml")
        validate_cr(cluster)
        validate_cr(backup)
        spec = cluster["spec"]
        assert spec["instances"] == 3  # 5 nodes -> 3 (primary + 2 replicas)
        assert spec["imageName"] == PG_IMAGE
        assert spec["storage"]["storageClass"] == "longhorn" and spec["walStorage"]["storageClass"] == "longhorn"
        assert spec["bootstrap"]["initdb"]["secret"] == {"name": f"{db}-db-credentials"}
        assert spec["backup"]["volumeSnapshot"]["className"] == "longhorn"
        assert backup["spec"]["method"] == "volumeSnapshot" and backup["spec"]["cluster"]["name"] == f"{db}-db"
    assert load_docs(pg / "cluster-harbor.yaml")[0]["spec"]["bootstrap"]["initdb"]["database"] == "registry"


def test_postgres_object_store_backups_validate(work):
    out = run_role("postgres", {"medai_postgres_image": PG_IMAGE, "medai_postgres_backup_method": "barmanObjectStore",
                                "medai_postgres_backup_object_store": {"destinationPath": "s3://pg-backups",
                                 "endpointURL": "https://minio.radiology.internal", "credentialsSecret": "pg-backup-s3",
                                 "caSecret": "site-ca"}}, work / "pg-s3")
    (cluster,) = load_docs(out / "cluster-keycloak.yaml")
    validate_cr(cluster)
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://pg-backups/keycloak"
    assert store["s3Credentials"]["secretAccessKey"] == {"name": "pg-backup-s3", "key": "ACCESS_SECRET_KEY"}
    validate_cr(load_docs(out / "backup-keycloak.yaml")[0])


@pytest.mark.parametrize("image", ["ghcr.io/cloudnative-pg/postgresql:17.5", "docker.io/bitnami/postgresql:17"])
def test_postgres_refuses_an_image_not_pinned_by_digest(work, image):
    with pytest.raises(RoleFailed, match="must be pinned by digest"):
        run_role("postgres", {"medai_postgres_image": image}, work / "pg-bad")


def test_postgres_single_node_gets_one_instance(work):
    out = run_role("postgres", {"medai_postgres_image": PG_IMAGE, "medai_postgres_instances": 1}, work / "pg-1")
    assert load_docs(out / "cluster-keycloak.yaml")[0]["spec"]["instances"] == 1


def test_cnpg_operator_chart_renders_valid_objects(pg):
    objs = helm_template("cloudnative-pg-0.28.3.tgz", "cnpg", "cnpg-system", pg / "operator-values.yaml")
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "CustomResourceDefinition", "MutatingWebhookConfiguration"} <= kinds
    for o in objs:
        validate_core(o)
    assert_no_inline_secrets(objs)


# ---------------- keycloak ----------------

def _kc_vars(**over):
    site = keycloak_site(copy.deepcopy(SITE_VARS))
    docs = {"medical-ai.yaml": yaml.safe_dump(render_realm(site), sort_keys=False),
            "master.yaml": yaml.safe_dump(render_master_admin(), sort_keys=False)}
    return {"medai_keycloak_hostname": "keycloak.radiology.internal", "medai_keycloak_lb_address": "10.20.0.200",
            "medai_keycloak_realm_documents": docs, **over}


@pytest.fixture(scope="module")
def kc(work):
    out = run_role("keycloak", _kc_vars(), work / "kc")
    objs = helm_template("keycloakx-7.0.1.tgz", "keycloak", "keycloak", out / "values.yaml")
    return out, objs


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
    out, _ = kc
    (svc,) = load_docs(out / "lb-service.yaml")
    validate_core(svc)
    assert svc["spec"]["type"] == "LoadBalancer" and [p["port"] for p in svc["spec"]["ports"]] == [443]
    assert svc["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "10.20.0.200"
    cm, job = load_docs(out / "config-cli-job.yaml")
    validate_core(cm)
    validate_core(job)
    realm = yaml.safe_load(cm["data"]["medical-ai.yaml"])
    assert realm["realm"] == "medical-ai" and all("CONFIGURE_TOTP" in u["requiredActions"] for u in realm["users"])
    c = job["spec"]["template"]["spec"]["containers"][0]
    env = _env(c)
    assert env["IMPORT_VARSUBSTITUTION_ENABLED"]["value"] == "true"
    assert env["KEYCLOAK_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "keycloak-bootstrap-admin"
    assert c["envFrom"] == [{"secretRef": {"name": "keycloak-config-cli-env"}}]
    assert_no_inline_secrets([cm, job])


def test_keycloak_after_bootstrap_drops_the_temporary_admin(work):
    out = run_role("keycloak", _kc_vars(medai_keycloak_bootstrap=False), work / "kc-2")
    objs = helm_template("keycloakx-7.0.1.tgz", "keycloak", "keycloak", out / "values.yaml")
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
    assert "KC_BOOTSTRAP_ADMIN_PASSWORD" not in _env(sts["spec"]["template"]["spec"]["containers"][0])
    job = load_docs(out / "config-cli-job.yaml")[1]
    assert _env(job["spec"]["template"]["spec"]["containers"][0])["KEYCLOAK_USER"]["valueFrom"]["secretKeyRef"]["name"] \
        == "keycloak-permanent-admin"


# ---------------- harbor ----------------

@pytest.fixture(scope="module")
def harbor(work):
    out = run_role("harbor", {"medai_harbor_hostname": "harbor.radiology.internal",
                              "medai_harbor_lb_address": "10.20.0.201"}, work / "harbor")
    return helm_template("harbor-1.17.0.tgz", "harbor", "harbor", out / "values.yaml")


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
