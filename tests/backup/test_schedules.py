"""The in-cluster schedules: every object validates strictly (core kinds at the bundled Kubernetes version,
Longhorn's BackupTarget and RecurringJob against the CRDs the bundled Longhorn chart ships), the PostgreSQL Job
runs the tested pg_basebackup options, the pods run under the restricted profile, and retention is applied."""
from __future__ import annotations

from installer.platform.components import backup_schedules as bs
from installer.render.validate import crd_schemas, validate_object
from tests.support.fixture_charts import needs_fixtures, rendered

SITE = {"medai_backup_nfs": "10.0.0.5:/exports/medai", "medai_backup_retain": 7}
PG = {"medai_postgres_databases": [{"name": "keycloak", "namespace": "keycloak"},
                                   {"name": "harbor", "namespace": "harbor"}],
      "medai_postgres_image": "ghcr.io/cloudnative-pg/postgresql:16.4@sha256:" + "a" * 64}
VAULT_IMAGE = "hashicorp/vault:1.20.1@sha256:" + "b" * 64


def _all() -> list[dict]:
    return (bs.site_objects("cloudnative-pg", SITE, "cnpg-system", PG)
            + bs.site_objects("vault", SITE, "vault", vault_image=VAULT_IMAGE)
            + bs.site_objects("longhorn", SITE, "longhorn-system"))


def test_nothing_without_a_backup_target():
    assert bs.site_objects("longhorn", {}, "longhorn-system") == []
    assert bs.site_objects("cloudnative-pg", {"medai_backup_nfs": ""}, "cnpg-system", PG) == []


@needs_fixtures
def test_every_object_validates_strictly():
    crds = crd_schemas(rendered("longhorn"))
    kinds = {(o["kind"], validate_object("backup", o, "1.34.2", crds)) for o in _all()}
    assert {("CronJob", "core"), ("PersistentVolume", "core"), ("PersistentVolumeClaim", "core"),
            ("BackupTarget", "crd"), ("RecurringJob", "crd")} <= kinds


def test_jobs_back_up_with_the_tested_options_keep_the_retention_and_run_restricted():
    jobs = {o["metadata"]["name"]: o for o in _all() if o["kind"] == "CronJob"}
    assert set(jobs) == {"keycloak-db-basebackup", "harbor-db-basebackup", "vault-raft-snapshot"}
    for job in jobs.values():
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        script = pod["containers"][0]["command"][-1]
        assert "head -n -7" in script  # keeps the newest 7
        assert pod["securityContext"]["runAsNonRoot"] and pod["containers"][0]["securityContext"]["capabilities"] == {
            "drop": ["ALL"]}
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pg = jobs["keycloak-db-basebackup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert " ".join(bs.BASEBACKUP_ARGS) in pg["command"][-1] and "keycloak-db-rw" in pg["command"][-1]
    assert "PGSSLMODE=verify-full" in pg["command"][-1]
    pvs = [o for o in _all() if o["kind"] == "PersistentVolume"]
    assert {pv["spec"]["nfs"]["path"] for pv in pvs} == {"/exports/medai/keycloak", "/exports/medai/harbor",
                                                        "/exports/medai/vault"}
    target = next(o for o in _all() if o["kind"] == "BackupTarget")
    assert target["spec"]["backupTargetURL"] == "nfs://10.0.0.5:/exports/medai/longhorn"


def test_the_failing_volume_snapshot_schedule_is_what_is_replaced():
    from installer.platform.components import postgres

    v = {**postgres.DEFAULTS, "medai_postgres_instances": 1, "medai_postgres_image": PG["medai_postgres_image"]}
    dropped = [o for o in postgres.objects(v) if bs.replaced(o)]
    assert [o["kind"] for o in dropped] == ["ScheduledBackup"] * len(v["medai_postgres_databases"])


def test_flows_cover_each_job():
    flows = bs.flows(SITE, PG["medai_postgres_databases"])
    assert any(f.dst_namespace == "keycloak" and f.port == 5432 for f in flows)
    assert any(f.dst_namespace == "vault" and f.port == 8200 for f in flows)
    assert bs.FLOWS


def test_the_site_render_adds_the_schedules_and_drops_the_failing_one(tmp_path):
    from installer.deploy.inventory import load_inventory
    from installer.platform.values import site_objects

    inv = tmp_path / "site.yml"
    inv.write_text("all:\n  vars:\n    medai_cluster_name: site1\n    medai_metallb_pool: 10.0.0.200-10.0.0.210\n"
                   "    medai_keycloak_hostname: sso.site.test\n    medai_backup_nfs: 10.0.0.5:/exports/medai\n"
                   "  children:\n    servers:\n      hosts:\n        s0: {ansible_host: 10.0.0.10}\n")
    kinds = [o["kind"] for o in site_objects("cloudnative-pg", "cloudnative-pg", load_inventory(inv), "cnpg-system")]
    assert "ScheduledBackup" not in kinds and kinds.count("CronJob") == 2 and kinds.count("Cluster") == 2
    lh = [o["kind"] for o in site_objects("longhorn", "longhorn", load_inventory(inv), "longhorn-system")]
    assert {"BackupTarget", "RecurringJob"} <= set(lh)


def test_the_site_declares_the_schedules_flows_and_renders_their_policies(tmp_path):
    from installer.deploy.inventory import load_inventory
    from installer.platform.flows import policies
    from installer.platform.site_flows import declared

    inv = tmp_path / "site.yml"
    inv.write_text("all:\n  vars:\n    medai_cluster_name: site1\n    medai_metallb_pool: 10.0.0.200-10.0.0.210\n"
                   "    medai_keycloak_hostname: sso.site.test\n    medai_backup_nfs: 10.0.0.5:/exports/medai\n"
                   "  children:\n    servers:\n      hosts:\n        s0: {ansible_host: 10.0.0.10}\n")
    site = load_inventory(inv)
    flows = declared(site)
    job = {"app.kubernetes.io/component": "backup"}
    assert any(f.src_namespace == "keycloak" and f.port == 5432 and dict(f.src_pods) == job for f in flows)
    rendered = policies(flows, "keycloak", site)
    assert any(p["spec"]["podSelector"].get("matchLabels") == job for p in rendered)
    inv.write_text(inv.read_text().replace("    medai_backup_nfs: 10.0.0.5:/exports/medai\n", ""))
    assert not any(dict(f.src_pods) == job for f in declared(load_inventory(inv)))
