"""`medai render --explain` on the full platform render (every upstream fixture chart, inventories/example): the
Pod Security table (each pod template, its namespace's level, the violations there) and the flow table (what the
rendered NetworkPolicies allow between platform namespaces). Report only: the render as it is today violates Pod
Security, and these tables say where."""
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
    for r in explained.pods:  # no namespace carries a label today: the default, kube-system exempt
        assert (r.level.level, r.level.why) == (("privileged", "exempt") if r.namespace == "kube-system"
                                                else ("restricted", "cluster default")), r


def test_known_refusals_at_restricted(explained):
    speaker = explained.pod("metallb-system", "metallb-speaker")
    assert "hostNamespaces" in _checks(speaker)
    assert any(v.path == "spec.template.spec.hostNetwork" for v in speaker.violations)
    assert any("NET_RAW" in v.detail and v.check == "capabilities_restricted" for v in speaker.violations)
    assert _checks(explained.pod("metallb-system", "metallb-controller")) == {"seccompProfile_restricted"}
    manager = explained.pod("longhorn-system", "longhorn-manager")
    assert {"privileged", "restrictedVolumes"} <= _checks(manager)
    assert explained.pod("longhorn-system", "longhorn-pre-upgrade").hook
    assert {"capabilities_restricted", "seccompProfile_restricted"} <= _checks(explained.pod("vault", "vault"))
    assert "restrictedVolumes" in _checks(explained.pod("nvidia-device-plugin", "nvidia-device-plugin"))
    assert not explained.pod("cnpg-system", "cloudnative-pg").violations
    assert not explained.pod("kube-system", "cilium").violations  # exempt


def test_flows_follow_the_rendered_network_policies(explained):
    dns = explained.flow("metallb-system", "kube-system")
    assert dns == Connections.of([("TCP", 53, 53), ("UDP", 53, 53)])  # only DNS leaves metallb-system for kube-system
    assert str(explained.flow("longhorn-system", NODES)) == "TCP 6443"  # the API servers
    assert str(explained.flow(NODES, "longhorn-system")) == "TCP 2049,3260,9500-9502"
    assert str(explained.flow(NODES, "metallb-system")) == "TCP 9443"
    assert not explained.flow("vault", "metallb-system") and not explained.flow("longhorn-system", "metallb-system")
    assert explained.flow("metallb-system", "metallb-system") == Connections.all()
    assert {"metallb-system", "longhorn-system"} <= set(explained.isolated)


def test_the_tables_as_printed(explained):
    text = "\n".join(lines(explained))
    assert "cluster default restricted, exempt: kube-system" in text
    assert "hostNamespaces: spec.template.spec.hostNetwork: must not be true" in text
    refused = sum(1 for r in explained.pods if r.violations)
    assert f"{refused} of {len(explained.pods)} pod templates refused at the level their namespace enforces" in text
    assert "(nodes)               longhorn-system       TCP 2049,3260,9500-9502" in text


def test_medai_render_explain_prints_both_tables(bundle, tmp_path):
    out = subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", str(INVENTORY),
                          "--bundle", str(bundle), "--out", str(tmp_path / "o"), "--explain"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "metallb-speaker" in out.stdout and "hostNamespaces" in out.stdout
    assert "Flows the rendered NetworkPolicies allow" in out.stdout
    assert (tmp_path / "o" / "02-metallb.yaml").is_file()  # the render is written as without --explain
