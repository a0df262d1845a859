"""Molecule (render mode on the control host: syntax, converge, idempotence, verify) for the platform roles
postgres, keycloak and harbor. The apply path needs a cluster and runs only in the K3s end-to-end test."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("role", ["postgres", "keycloak", "harbor"])
def test_molecule_render_mode(role):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", ANSIBLE_FORCE_COLOR="0",
               PY_COLORS="0", NO_COLOR="1")
    r = subprocess.run([str(Path(sys.executable).with_name("molecule")), "test", "-s", "default"],
                       cwd=ROOT / "roles" / role, env=env, capture_output=True, text=True, timeout=600)
    out = (r.stdout + r.stderr).replace("\x1b", "")
    assert r.returncode == 0, out[-6000:]
    assert "idempotence: Executed: Successful" in out and "verify: Executed: Successful" in out, out[-3000:]
