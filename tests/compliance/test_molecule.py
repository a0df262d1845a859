"""The compliance and hardening roles' Molecule scenarios (one lab node: prepare, converge, idempotence, verify)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


# Measured on an idle 2-core host: hardening ~2 min, compliance ~2 min (with test_verify_lab ~1 min: area ~5 min).
@pytest.mark.parametrize("role", ["hardening", "compliance"])
def test_molecule_default(role, lab_image, local_repo):
    env = dict(os.environ, MEDAI_SRC=str(ROOT), ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    r = subprocess.run(["molecule", "test", "-s", "default"], cwd=ROOT / "roles" / role, env=env,
                       capture_output=True, text=True, timeout=600)
    out = (r.stdout + r.stderr).replace("\x1b", "")
    assert r.returncode == 0, out[-6000:]
    assert "idempotence: Executed: Successful" in out and "verify: Executed: Successful" in out, out[-6000:]
