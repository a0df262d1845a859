"""`medai render --explain` on the full platform render (every upstream fixture chart, inventories/example): the
Pod Security table (each pod template, its namespace's level, the violations there) and the flow table (what the
rendered NetworkPolicies allow between namespaces), as the coherence check reads them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from installer.platform.coherence.model import namespace_labels, pod_rows
from installer.platform.explain import NODES, explain, lines
from installer.render.netpol import Connections
from installer.render.podsecurity import evaluate, namespace_level
from tests.support.fixture_bundles import fixture_manifest, make_fixture_bundle
from tests.support.fixture_charts import ROOT, needs_fixtures
from tests.support.render_platform import fixture_render

pytestmark = needs_fixtures
INVENTORY = ROOT / "inventories" / "example" / "site.yml"


@pytest.fixture(scope="module")
def rendered():
    return fixture_render(INVENTORY)


@pytest.fixture(scope="module")
def explained(rendered):
    return explain(rendered.site, rendered.inv)


def test_every_pod_template_is_listed_with_its_namespace_level(rendered, explained):
    rows = list(pod_rows(rendered.site))
    assert [(r.namespace, r.kind, r.name) for r in explained.pods] == [(r.namespace, r.kind, r.name) for r in rows]
    assert ("metallb-system", "DaemonSet", "metallb-speaker") in {(r.namespace, r.kind, r.name) for r in explained.pods}
    assert explained.admission.enforce == "restricted" and explained.admission.exempt_namespaces == {"kube-system"}
    labels = namespace_labels(rendered.site)
    for r, row in zip(explained.pods, rows):
        assert r.level == namespace_level(r.namespace, labels.get(r.namespace), explained.admission)
        assert list(r.violations) == evaluate(row.obj, r.level.level)
    assert explained.pod("kube-system", "cilium").level.why == "exempt"
    assert explained.pod("longhorn-system", "longhorn-pre-upgrade").hook


def test_flows_follow_the_rendered_network_policies(explained):
    assert explained.flow("metallb-system", "metallb-system")  # inside a namespace: the policies' own business
    assert explained.flow("kube-system", "kube-system") == Connections.all()  # no policy there: open
    rows = {(f.source, f.destination) for f in explained.flows}
    assert all(explained.flow(a, b) for a, b in rows) and (NODES, NODES) not in rows
    assert "metallb-system" in explained.isolated  # every pod selected both ways by a default deny


def test_the_tables_as_printed(explained):
    text = "\n".join(lines(explained))
    assert "cluster default restricted, exempt: kube-system" in text
    refused = sum(1 for r in explained.pods if r.violations)
    assert f"{refused} of {len(explained.pods)} pod templates refused at the level their namespace enforces" in text
    for f in explained.flows:
        assert any(line.split() == [f.source, f.destination, *str(f.connections).split()]
                   for line in text.split("\n")), f


def test_medai_render_explain_prints_both_tables_before_the_verdict(tmp_path):
    bundle = make_fixture_bundle(tmp_path / "b", fixture_manifest(("metallb",)))
    out = subprocess.run([sys.executable, "-m", "installer.cli.main", "render", "--inventory", str(INVENTORY),
                          "--bundle", str(bundle), "--out", str(tmp_path / "o"), "--explain"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})
    assert "metallb-speaker" in out.stdout and "Flows the rendered NetworkPolicies allow" in out.stdout
    assert (tmp_path / "o" / "01-metallb.yaml").is_file()  # the render is written as without --explain
    refused = "the platform cannot come up as rendered" in out.stderr
    assert (out.returncode != 0) == refused, out.stdout + out.stderr
    assert refused or "ok coherence" in out.stdout.replace("[green]", "")
