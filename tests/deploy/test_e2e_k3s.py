"""K3s start and the Ready/registration wait, with a real K3s airgap set (MEDAI_E2E_K3S=DIR holding `k3s`,
`k3s-install.sh` and `k3s-airgap-images-amd64.tar.zst`). Skipped otherwise: K3s cannot be downloaded here and no
stand-in binary is ever used.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.bundle.layout import BundleLayout
from installer.core.hashing import sha256_file

pytestmark = [pytest.mark.e2e, pytest.mark.lab]
ROOT = Path(__file__).resolve().parents[2]
K3S_SET = os.environ.get("MEDAI_E2E_K3S")
NEEDED = ("k3s", "k3s-install.sh", "k3s-airgap-images-amd64.tar.zst")


def _bundle_from(src: Path, root: Path) -> Path:
    layout = BundleLayout.at(root)
    (layout.root / "files").mkdir(parents=True)
    artifacts, known = [], {}
    for name in NEEDED:
        rel = f"files/{name}"
        data = (src / name).read_bytes()
        (layout.root / rel).write_bytes(data)
        known[rel] = sha256_file(layout.root / rel)
        artifacts.append(Artifact(kind="file", name=name, path=rel, size=len(data), sha256=known[rel], neededBy=["all"]))
    write_index(layout, {"name": "e2e-k3s", "version": "0", "created": "", "manifestSha256": "0" * 64,
                         "platforms": ["linux/amd64"]}, artifacts, known)
    return layout.root


@pytest.mark.skipif(not K3S_SET, reason="MEDAI_E2E_K3S is not set: no real K3s airgap set (k3s, k3s-install.sh, "
                                        "k3s-airgap-images-amd64.tar.zst) to start; K3s start and Ready wait not executed")
def test_k3s_starts_and_nodes_register(lab_nodes, tmp_path):
    src = Path(K3S_SET)
    missing = [n for n in NEEDED if not (src / n).is_file()]
    assert not missing, f"MEDAI_E2E_K3S={src} lacks {missing}"
    lab = lab_nodes(servers=1, agents=1)
    bundle = _bundle_from(src, tmp_path / "bundle")
    inv = lab.inventory(tmp_path / "site.yml", cluster_name="e2e", bundle_dir=bundle, extra_vars={
        "medai_preflight_min_cpus": {"servers": 1, "agents": 1},
        "medai_preflight_min_memory_mb": {"servers": 256, "agents": 256},
        "medai_preflight_min_disk_gb": {"servers": 1, "agents": 1},
        "medai_preflight_require_time_sync": False})
    env = dict(os.environ, MEDAI_HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", "install", "--inventory", str(inv), "--yes",
                        "--insecure-skip-signature"],  # the bundle is assembled here from MEDAI_E2E_K3S, unsigned
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    kc = tmp_path / "home" / "kubeconfig-e2e"
    assert kc.is_file() and oct(kc.stat().st_mode & 0o777) == "0o600"
    assert f"https://{lab.address(100)}:6443" in kc.read_text()
