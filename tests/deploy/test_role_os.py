"""The os role on a real lab node (podman, systemd, --internal network with no route to any archive):
`molecule test` = syntax, create, prepare, converge, idempotence (changed=0), verify, destroy.

What the lab does NOT exercise (the node is a container sharing this host's kernel): loading kernel modules,
applying vm.*/kernel.* sysctls live, swapoff, chronyd controlling the clock and auditd running; the role writes
their configuration and verify checks the files (and net.ipv4.ip_forward live, which belongs to the container).
The RHEL/Rocky tasks are not executed (the lab nodes are Debian 12).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.lab
@pytest.mark.network
def test_os_role_molecule(debian_repo, lab_image):
    layout, _ = debian_repo
    molecule = shutil.which("molecule")
    assert molecule, "molecule is installed by .ci/setup-host.sh (pip extra 'test')"
    env = {**os.environ, "MEDAI_OS_TEST_BUNDLE": str(layout.root), "MEDAI_SRC": str(ROOT),
           "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"}
    res = subprocess.run([molecule, "test"], cwd=ROOT / "roles" / "os", env=env, capture_output=True, text=True,
                         timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "Idempotence completed successfully" in out or "idempotence" in out.lower()
    assert "Verifier completed successfully" in out or "verify" in out.lower()
