"""roles/vault's Molecule scenario (one lab node, render-only: values written 0600 and checked; no K3s)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def test_molecule_vault_render_only(lab_image):
    env = dict(os.environ, MEDAI_SRC=str(ROOT), ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    r = subprocess.run(["molecule", "test", "-s", "default"], cwd=ROOT / "roles" / "vault", env=env,
                       capture_output=True, text=True, timeout=600)
    tail = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, tail
    assert "idempotence: Executed: Successful" in (r.stdout + r.stderr).replace("\x1b", ""), tail
