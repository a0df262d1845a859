"""Cilium, MetalLB and Longhorn applied by `medai install` to a real K3s: needs MEDAI_E2E_K3S (a real K3s airgap
set, see test_e2e_k3s.py) and MEDAI_E2E_PLATFORM_BUNDLE (a bundle built by `medai bundle build` from
bundles/platform.yaml on a connected host, so it holds the real images). Skipped otherwise: neither K3s nor the
upstream images can be downloaded here, and no stand-in is ever used. Not executed on this project's CI.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.lab]
ROOT = Path(__file__).resolve().parents[2]
K3S_SET = os.environ.get("MEDAI_E2E_K3S")
PLATFORM_BUNDLE = os.environ.get("MEDAI_E2E_PLATFORM_BUNDLE")


def _site(lab_nodes, tmp_path, cluster: str) -> Path:
    """One server and one agent, with the preflight minimums a lab node meets."""
    lab = lab_nodes(servers=1, agents=1)
    return lab.inventory(tmp_path / "site.yml", cluster_name=cluster, bundle_dir=Path(PLATFORM_BUNDLE), extra_vars={
        "medai_preflight_min_cpus": {"servers": 1, "agents": 1},
        "medai_preflight_min_memory_mb": {"servers": 256, "agents": 256},
        "medai_preflight_min_disk_gb": {"servers": 1, "agents": 1},
        "medai_preflight_require_time_sync": False})


@pytest.mark.skipif(not (K3S_SET and PLATFORM_BUNDLE),
                    reason="MEDAI_E2E_K3S and MEDAI_E2E_PLATFORM_BUNDLE are not both set: no real K3s and no bundle "
                           "with the real platform images; the Helm apply of Cilium/MetalLB/Longhorn was not executed")
def test_platform_releases_come_up_in_order_and_a_rerun_changes_nothing(lab_nodes, tmp_path):
    inv = _site(lab_nodes, tmp_path, "e2e")
    env = dict(os.environ, MEDAI_HOME=str(tmp_path / "home"))

    def install():
        return subprocess.run([sys.executable, "-m", "installer.cli.main", "install", "--inventory", str(inv), "--yes"],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)

    first = install()
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    out = first.stdout
    assert out.index("release cilium") < out.index("release metallb") < out.index("release longhorn")
    kc = tmp_path / "home" / "kubeconfig-e2e"
    from installer.core.helm import helm_executable
    listed = json.loads(subprocess.run([helm_executable(), "--kubeconfig", str(kc), "list", "-A", "-o", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    revisions = {r["name"]: (r["status"], r["revision"]) for r in listed}
    assert {revisions[n][0] for n in ("cilium", "metallb", "longhorn")} == {"deployed"}
    second = install()
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    assert second.stdout.count("unchanged: release") >= 3
    listed = json.loads(subprocess.run([helm_executable(), "--kubeconfig", str(kc), "list", "-A", "-o", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert {r["name"]: (r["status"], r["revision"]) for r in listed} == revisions


PLATFORM_BUNDLE_V2 = os.environ.get("MEDAI_E2E_PLATFORM_BUNDLE_V2")
SITE_KEY = os.environ.get("MEDAI_E2E_SITE_KEY")


@pytest.mark.skipif(not (K3S_SET and PLATFORM_BUNDLE and PLATFORM_BUNDLE_V2 and SITE_KEY),
                    reason="MEDAI_E2E_K3S, MEDAI_E2E_PLATFORM_BUNDLE, MEDAI_E2E_PLATFORM_BUNDLE_V2 (a newer build with "
                           "other chart versions) and MEDAI_E2E_SITE_KEY are not all set: install, upgrade, rollback "
                           "--releases-only and reset through the one applier were not executed against a real K3s "
                           "(tests/platform/test_flows.py runs them at a recording API seam)")
def test_install_upgrade_rollback_reset_against_k3s(lab_nodes, tmp_path):
    inv = _site(lab_nodes, tmp_path, "e2e4")
    env = dict(os.environ, MEDAI_HOME=str(tmp_path / "home"))
    kc = tmp_path / "home" / "kubeconfig-e2e4"

    def medai(*args):
        r = subprocess.run([sys.executable, "-m", "installer.cli.main", *args, "--inventory", str(inv), "--yes"],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr
        return r.stdout

    def releases():
        from installer.core.helm import helm_executable
        out = subprocess.run([helm_executable(), "--kubeconfig", str(kc), "list", "-A", "-o", "json"],
                             capture_output=True, text=True, check=True).stdout
        return {r["name"]: (r["namespace"], r["chart"]) for r in json.loads(out)}

    medai("install", "--bundle", PLATFORM_BUNDLE, "--key", SITE_KEY)
    v1 = releases()
    medai("upgrade", "--bundle", PLATFORM_BUNDLE_V2, "--key", SITE_KEY)
    v2 = releases()
    assert {n: ns for n, (ns, _) in v2.items()} == {n: ns for n, (ns, _) in v1.items()}  # same namespaces
    medai("rollback", "--bundle", PLATFORM_BUNDLE, "--key", SITE_KEY, "--releases-only")
    assert releases() == v1
    medai("reset")
