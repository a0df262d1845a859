"""`medai backup create` and `restore --component etcd` against a real K3s in lab nodes (MEDAI_E2E_K3S=DIR, as
tests/deploy/test_e2e_k3s.py): `k3s etcd-snapshot save` through playbooks/backup.yml, fetched, checked, encrypted
onto a directory, verified with an operator's identity, and restored with `k3s server --cluster-reset`.
Skipped otherwise, saying so: K3s cannot be downloaded here and no stand-in binary is ever used. Vault,
PostgreSQL and Longhorn on a live cluster (the CronJobs included) are not executed in any test here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_e2e_k3s import K3S_SET, NEEDED, _bundle_from
from tests.support.medai_cli import SITE_KEY, sign

pytestmark = [pytest.mark.e2e, pytest.mark.lab]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not K3S_SET, reason="MEDAI_E2E_K3S is not set: no real K3s to back up; `k3s etcd-snapshot "
                                        "save`, its fetch and the cluster-reset restore were not executed")
def test_backup_create_verify_and_etcd_restore_on_k3s(lab_nodes, tmp_path, operators):
    src = Path(K3S_SET)
    assert not [n for n in NEEDED if not (src / n).is_file()], f"MEDAI_E2E_K3S={src} is incomplete"
    lab = lab_nodes(servers=1, agents=0)
    bundle = _bundle_from(src, tmp_path / "bundle")
    inv = lab.inventory(tmp_path / "site.yml", cluster_name="e2e", bundle_dir=bundle, extra_vars={
        "medai_preflight_min_cpus": {"servers": 1}, "medai_preflight_min_memory_mb": {"servers": 256},
        "medai_preflight_min_disk_gb": {"servers": 1}, "medai_preflight_require_time_sync": False,
        "medai_backup_recipients": [o.recipient for o in operators]})
    env = dict(os.environ, MEDAI_HOME=str(tmp_path / "home"))
    medai = [sys.executable, "-m", "installer.cli.main"]
    r = subprocess.run([*medai, "install", "--inventory", str(inv), "--yes", "--insecure-skip-signature"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    pub = sign(bundle, tmp_path)
    key = SITE_KEY["key"]
    env["MEDAI_KEY_PASSWORD"] = "lab-site-key-pw"
    stick = tmp_path / "stick"
    stick.mkdir()
    r = subprocess.run([*medai, "backup", "create", "--inventory", str(inv), "--to", str(stick), "--sign-key",
                        str(key), "--component", "etcd", "--component", "site", "--json"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    r = subprocess.run([*medai, "backup", "verify", str(stick), "--key", str(pub), "--identity",
                        str(operators[0].file), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)["set"] == made["set"], r.stderr
    r = subprocess.run([*medai, "backup", "restore", str(stick), "--yes", "--component", "etcd", "--inventory", str(inv),
                        "--key", str(pub), "--identity", str(operators[1].file)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
