"""`medai render --explain` on the full platform render (every upstream fixture chart, inventories/example): the
Pod Security table (each pod template, its namespace's level, the violations there) and the flow table (what the
rendered NetworkPolicies allow between platform namespaces). Report only: the render as it is today violates Pod
Security only where the install never goes (a chart's `helm test` Pod), and these tables say where."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from installer.deploy.inventory import load_inventory
from installer.platform.explain import NODES, explain, lines
from installer.platform.render import render_site
from installer.render.netpol import Connections
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import ROOT, needs_fixtures

pytestmark = needs_fixtures
INVENTORY = ROOT / "inventories" / "example" / "site.yml"
CHARTS = ("cilium", "metallb", "longhorn", "cloudnative-pg", "vault", "keycloakx", "harbor", "nvidia-device-plugin")
EXTRA_IMAGES = ("docker.io/adorsys/keycloak-config-cli:6.5.1-26.0.5", "ghcr.io/cloudnative-pg/postgresql:17.5",
                "ghcr.io/aquasecurity/trivy-db:2", "ghcr.io/aquasecurity/trivy-java-db:1")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_fixture_bundle(tmp_path_factory.mktemp("explain") / "b", fixture_manifest(CHARTS), images=EXTRA_IMAGES)


@pytest.fixture(scope="module")
def explained(bundle):
    inv = load_inventory(INVENTORY)
    return explain(render_site(inv, bundle), inv)


def _checks(row) -> set[str]:
    return {v.check for v in row.violations}


def test_every_pod_template_is_listed_with_its_namespace_level(explained):
    names = {(r.namespace, r.kind, r.name) for r in explained.pods}
    assert ("metallb-system", "DaemonSet", "metallb-speaker") in names
    assert ("vault", "StatefulSet", "vault") in names
    assert ("kube-system", "DaemonSet", "cilium") in names
    assert explained.admission.enforce == "restricted" and explained.admission.exempt_namespaces == {"kube-system"}
    for r in explained.pods:  # every platform namespace carries the label the render gives it; kube-system exempt
        assert r.level.why == ("exempt" if r.namespace == "kube-system" else "label"), r
    assert explained.pod("metallb-system", "metallb-speaker").level.level == "privileged"
    assert explained.pod("vault", "vault").level.level == "restricted"


def test_pods_are_admitted_at_their_namespace_level(explained):
    """The least level each namespace's pods need: nothing refused but the Vault chart's `helm test` Pod (a test
    hook the install never creates, which the chart gives no securityContext)."""
    refused = {(r.namespace, r.name) for r in explained.pods if r.violations}
    assert refused == {("vault", "vault-server-test")}
    assert explained.pod("vault", "vault-server-test").hook
    assert explained.pod("longhorn-system", "longhorn-pre-upgrade").hook
    assert not explained.pod("cnpg-system", "cloudnative-pg").violations
    assert not explained.pod("kube-system", "cilium").violations  # exempt


def test_flows_follow_the_rendered_network_policies(explained):
    dns = explained.flow("metallb-system", "kube-system")
    assert dns == Connections.of([("TCP", 53, 53), ("UDP", 53, 53)])  # only DNS leaves metallb-system for kube-system
    assert str(explained.flow("longhorn-system", NODES)) == "TCP 6443"  # the API servers
    assert str(explained.flow(NODES, "longhorn-system")) == "TCP 2049,3260,9500-9503"
    assert str(explained.flow(NODES, "metallb-system")) == "TCP 9443"
    assert not explained.flow("vault", "metallb-system") and not explained.flow("longhorn-system", "metallb-system")
    assert not explained.flow("harbor", "vault") and not explained.flow("keycloak", "harbor")
    assert str(explained.flow("harbor", "keycloak")) == "TCP 8443"  # OIDC
    assert {"metallb-system", "longhorn-system", "vault", "cnpg-system", "keycloak", "harbor",
            "nvidia-device-plugin"} <= set(explained.isolated)


def test_the_tables_as_printed(explained):
    text = "\n".join(lines(explained))
    assert "cluster default restricted, exempt: kube-system" in text
    assert "privileged (label)" in text and "restricted (label)" in text
    refused = sum(1 for r in explained.pods if r.violations)
    assert f"{refused} of {len(explained.pods)} pod templates refused at the level their namespace enforces" in text
    assert "(nodes)               longhorn-system       TCP 2049,3260,9500-9503" in text


def test_medai_render_explain_prints_both_tables(bundle, tmp_path):
    out = subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", str(INVENTORY),
                          "--bundle", str(bundle), "--out", str(tmp_path / "o"), "--explain"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "metallb-speaker" in out.stdout and "privileged (label)" in out.stdout
    assert "Flows the rendered NetworkPolicies allow" in out.stdout
    assert (tmp_path / "o" / "02-metallb.yaml").is_file()  # the render is written as without --explain
