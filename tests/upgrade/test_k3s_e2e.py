"""The rolling upgrade and the snapshot restore against a REAL K3s cluster. Skipped unless MEDAI_E2E_K3S names a
directory holding site.yml (a cluster installed from v1/ by medai install), v1/ and v2/ (bundles one K3s minor
apart) and site.pub. Not executed on the development machines (no K3s there); what runs here instead is the
plan, the refusals and every decision from recorded API responses."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.deploy.inventory import load_inventory
from installer.deploy.state import kubeconfig_path, state_dir
from installer.upgrade.changes import k3s_version
from installer.upgrade.cluster_api import ClusterAPI
from installer.upgrade.skew import node_versions

pytestmark = pytest.mark.e2e
E2E = os.environ.get("MEDAI_E2E_K3S")


@pytest.fixture
def e2e():
    if not E2E:
        pytest.skip("MEDAI_E2E_K3S not set: snapshot, drain, restart and restore were NOT executed (needs a real K3s cluster)")
    root = Path(E2E)
    return root, root / "site.yml", root / "v1", root / "v2", root / "site.pub"


def medai(*args):
    return subprocess.run([sys.executable, "-m", "installer.cli.main", *args], capture_output=True, text=True, timeout=7200)


def versions(inv) -> dict:
    return {n: v for n, (_r, v) in node_versions(ClusterAPI(kubeconfig_path(inv.cluster)).get("/api/v1/nodes")).items()}


def test_rolling_upgrade_then_rollback_by_snapshot(e2e):
    import json

    root, site, v1, v2, pub = e2e
    inv = load_inventory(site)
    old, new = (k3s_version(json.loads((b / "index.json").read_text())) for b in (v1, v2))
    assert set(versions(inv).values()) == {old}
    r = medai("upgrade", "-i", str(site), "--bundle", str(v2), "--key", str(pub), "--current", str(v1), "--plan")
    assert r.returncode == 0, r.stdout + r.stderr
    r = medai("upgrade", "-i", str(site), "--bundle", str(v2), "--key", str(pub), "--current", str(v1), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(versions(inv).values()) == {new}
    snaps = list((state_dir() / "snapshots" / inv.cluster).glob("medai-*"))
    assert snaps, "the pre-upgrade snapshot was not fetched to the control host"
    r = medai("rollback", "-i", str(site), "--bundle", str(v1), "--key", str(pub), "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(versions(inv).values()) == {old}
