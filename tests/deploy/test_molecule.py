"""Each deploy role's Molecule scenario (one lab node: converge, idempotence, verify), run from pytest for CI."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("role", ["preflight", "stage", "k3s"])
def test_molecule_default(role, lab_image):
    env = dict(os.environ, MEDAI_SRC=str(ROOT), ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    r = subprocess.run(["molecule", "test", "-s", "default"], cwd=ROOT / "roles" / role, env=env,
                       capture_output=True, text=True, timeout=600)
    tail = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, tail
    assert "idempotence: Executed: Successful" in (r.stdout + r.stderr).replace("\x1b", ""), tail


def test_molecule_k3s_harbor_mirror(lab_image):
    """registries.yaml on a lab node once Harbor is seeded: Harbor first, site CA, pull robot, 0600."""
    env = dict(os.environ, MEDAI_SRC=str(ROOT), ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    r = subprocess.run(["molecule", "test", "-s", "harbor-mirror"], cwd=ROOT / "roles" / "k3s", env=env,
                       capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "molecule-pull-S3cret" not in out  # the pull robot's secret stays out of the output
