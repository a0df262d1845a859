"""`medai render` on inventories/example with a bundle of ALL the upstream fixture charts: every release is
rendered with the site's values from its role, validated (the CNPG Clusters against the operator's own CRDs) and
gated, in PLATFORM_ORDER. The stand-in images are small real OCI images (upstream layers cannot be downloaded)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from installer.platform.order import ORDER as PLATFORM_ORDER
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import FIXTURES, ROOT, needs_fixtures

pytestmark = needs_fixtures
INVENTORY = ROOT / "inventories" / "example" / "site.yml"
UPSTREAM = tuple(p.name.rsplit("-", 1)[0] for p in sorted(FIXTURES.glob("*.tgz"))) if FIXTURES.is_dir() else ()
# spec.images of platform.yaml that site objects and values name: the Clusters' PostgreSQL, Trivy's databases
CARRIED = ("ghcr.io/cloudnative-pg/postgresql:17.5", "ghcr.io/aquasecurity/trivy-db:2",
           "ghcr.io/aquasecurity/trivy-java-db:1")


def _render(bundle, out, inventory=INVENTORY):
    return subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", str(inventory),
                           "--bundle", str(bundle), "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


@pytest.fixture(scope="module")
def all_charts(tmp_path_factory):
    assert len(UPSTREAM) == 8, UPSTREAM
    bundle = make_fixture_bundle(tmp_path_factory.mktemp("all") / "b", fixture_manifest(UPSTREAM), images=CARRIED)
    out = tmp_path_factory.mktemp("render") / "out"
    r = _render(bundle, out)
    assert r.returncode == 0, r.stdout + r.stderr
    return bundle, out, r.stdout


def _docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_fixture_chart_renders_validates_and_is_gated_in_platform_order(all_charts):
    bundle, out, stdout = all_charts
    order = [n for n in PLATFORM_ORDER if n in UPSTREAM + ("medai-harbor-redis",)]
    assert order == ["cilium", "metallb", "longhorn", "vault", "cloudnative-pg", "keycloakx", "medai-harbor-redis",
                     "harbor", "nvidia-device-plugin"]
    stems = sorted(p.name.removesuffix(".yaml") for p in out.glob("*.yaml")
                   if not p.name.endswith((".values.yaml", ".site.yaml")))
    assert stems == [f"{i:02d}-{n}" for i, n in enumerate(order, 1)]
    for stem in stems:
        assert len(_docs(out / f"{stem}.yaml")) > 2, stem
    assert "images, all in the bundle; Kubernetes 1.34.2" in " ".join(stdout.split())


def test_site_values_come_from_the_roles(all_charts):
    _, out, _ = all_charts
    harbor = yaml.safe_load((out / "08-harbor.values.yaml").read_text())
    assert harbor["externalURL"] == "https://harbor.radiology.hospital.internal"
    assert harbor["trivy"]["initContainers"][0]["args"][0].count("harbor.radiology.hospital.internal/platform/") == 2
    assert harbor["database"]["external"]["host"] == "harbor-db-rw"
    cnpg = yaml.safe_load((out / "05-cloudnative-pg.values.yaml").read_text())
    assert cnpg["crds"]["create"] is True and cnpg["config"]["clusterWide"] is True
    keycloak = yaml.safe_load((out / "06-keycloakx.values.yaml").read_text())
    assert keycloak["replicas"] == 2  # min(servers, 2), the role's Ansible expression evaluated
    plugin = yaml.safe_load((out / "09-nvidia-device-plugin.values.yaml").read_text())
    assert plugin["tolerations"][0] == {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def test_postgres_clusters_are_site_objects_pinned_by_the_index_digest(all_charts):
    bundle, out, _ = all_charts
    import json
    index = json.loads((bundle / "index.json").read_text())
    pg = next(a for a in index["artifacts"] if a.get("ref") == CARRIED[0])
    site = _docs(out / "05-cloudnative-pg.site.yaml")
    clusters = {o["metadata"]["name"]: o for o in site if o["kind"] == "Cluster"}
    assert set(clusters) == {"keycloak-db", "harbor-db"}
    assert {o["spec"]["imageName"] for o in clusters.values()} == {f"{CARRIED[0]}@{pg['digest']}"}
    assert clusters["harbor-db"]["spec"]["bootstrap"]["initdb"]["database"] == "registry"
    assert clusters["keycloak-db"]["spec"]["instances"] == 3
    # its own namespace and the databases' (labelled, with their NetworkPolicies, before the release)
    assert {o["metadata"]["name"] for o in site if o["kind"] == "Namespace"} == {"cnpg-system", "keycloak", "harbor"}
    assert {o["metadata"]["name"] for o in site if o["kind"] == "ScheduledBackup"} == {"keycloak-db-daily", "harbor-db-daily"}


def test_cpu_only_site_leaves_the_gpu_charts_out(all_charts, tmp_path):
    bundle, _, _ = all_charts
    doc = yaml.safe_load(INVENTORY.read_text())
    doc["all"]["children"]["gpu"] = {"hosts": {}}
    inv = tmp_path / "cpu.yml"
    inv.write_text(yaml.safe_dump(doc))
    r = _render(bundle, tmp_path / "o", inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list((tmp_path / "o").glob("*nvidia-device-plugin*"))
    assert (tmp_path / "o" / "08-harbor.yaml").is_file()


def test_a_bundle_without_the_postgres_image_is_refused_naming_it(tmp_path):
    bundle = make_fixture_bundle(tmp_path / "b", fixture_manifest(UPSTREAM), images=CARRIED[1:])
    r = _render(bundle, tmp_path / "o")
    assert r.returncode == 2
    assert "index.json: no ghcr.io/cloudnative-pg/postgresql image" in " ".join(r.stderr.split() + r.stdout.split())
    assert not (tmp_path / "o").exists()


def test_harbor_without_a_hostname_is_refused_naming_the_variable(all_charts, tmp_path):
    bundle, _, _ = all_charts
    doc = yaml.safe_load(INVENTORY.read_text())
    del doc["all"]["vars"]["medai_harbor_hostname"]
    inv = tmp_path / "nohost.yml"
    inv.write_text(yaml.safe_dump(doc))
    r = _render(bundle, tmp_path / "o", inv)
    assert r.returncode == 2
    assert "all.vars.medai_harbor_hostname: required for the harbor release" in " ".join((r.stderr + r.stdout).split())
