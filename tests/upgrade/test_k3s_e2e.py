"""The rolling upgrade and the snapshot restore against REAL K3s in the podman lab. Needs two K3s airgap sets one
minor apart: MEDAI_E2E_K3S=DIR (as tests/deploy/test_e2e_k3s.py: `k3s`, `k3s-install.sh`,
`k3s-airgap-images-amd64.tar.zst`) for v1 and MEDAI_E2E_K3S_NEXT=DIR for v2, each with a `VERSION` file
(e.g. v1.33.5+k3s1). Skipped otherwise, saying so: on the development machines the snapshot, cordon/drain,
restart, wait-Ready and the restore were NOT executed; the plan and every decision are tested from recorded API
responses (test_decisions.py, test_upgrade_plan.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.deploy.state import kubeconfig_path
from installer.platform.apply import KubeApi
from installer.trust.keys import generate_keypair, load_private_key
from installer.trust.signing import sign_index
from installer.upgrade.skew import node_versions
from tests.deploy.test_e2e_k3s import _bundle_from
from tests.support.lab import LAB_VARS
from tests.support.medai_cli import medai

pytestmark = [pytest.mark.e2e, pytest.mark.lab]
V1, V2 = os.environ.get("MEDAI_E2E_K3S"), os.environ.get("MEDAI_E2E_K3S_NEXT")


def _signed_k3s_bundle(src: Path, root: Path, key) -> Path:
    _bundle_from(src, root)
    layout = BundleLayout.at(root)
    doc = json.loads(layout.index.read_text())
    version = (src / "VERSION").read_text().strip()
    for a in doc["artifacts"]:
        if a["name"] == "k3s":
            a["meta"] = {"version": version}
    data = (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()
    layout.index.write_bytes(data)
    sign_index(layout, data, key)
    return root


@pytest.mark.skipif(not (V1 and V2), reason="MEDAI_E2E_K3S and MEDAI_E2E_K3S_NEXT not both set: the etcd snapshot, "
                    "drain, K3s restart and the snapshot restore were NOT executed (they need two real K3s airgap sets)")
def test_rolling_upgrade_then_rollback_by_snapshot(lab_nodes, tmp_path):
    k, pub = generate_keypair(tmp_path / "site", b"e2e")
    key = load_private_key(k, b"e2e")
    v1 = _signed_k3s_bundle(Path(V1), tmp_path / "v1", key)
    v2 = _signed_k3s_bundle(Path(V2), tmp_path / "v2", key)
    lab = lab_nodes(servers=1, agents=1)
    inv = lab.inventory(tmp_path / "site.yml", cluster_name="e2e-upgrade", bundle_dir=v1, extra_vars=LAB_VARS)
    home = tmp_path / "home"
    os.environ["MEDAI_HOME"] = str(home)

    def versions() -> set:
        return {v for _n, (_r, v) in node_versions({"items": KubeApi(kubeconfig_path("e2e-upgrade", home)).list("v1", "Node")}).items()}

    try:
        r = medai(home, "install", "--inventory", str(inv), "--key", str(pub), "--yes", timeout=1800)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr
        old, new = (Path(d, "VERSION").read_text().strip() for d in (V1, V2))
        assert versions() == {old}
        args = ("upgrade", "--inventory", str(inv), "--bundle", str(v2), "--key", str(pub), "--current", str(v1))
        r = medai(home, *args, "--plan")
        assert r.returncode == 0 and "step: snapshot" in r.stdout, r.stdout + r.stderr
        r = medai(home, *args, "--yes", timeout=3600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr
        assert versions() == {new}
        assert list((home / "snapshots" / "e2e-upgrade").glob("medai-*")), "snapshot not fetched to the control host"
        r = medai(home, "rollback", "--inventory", str(inv), "--bundle", str(v1), "--key", str(pub), "--yes", timeout=3600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr
        assert versions() == {old}
    finally:
        os.environ.pop("MEDAI_HOME", None)
        lab.destroy()
