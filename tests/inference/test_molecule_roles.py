"""Molecule scenarios of the gpu and inference roles on lab nodes (converge, idempotence, verify).
What they cannot execute (no NVIDIA device, no K3s in a lab container): the driver install, the K3s restart and
the kubectl label/taint; the converge turns those off and says so."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import CHART, HELM

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("role", ["gpu", "inference"])
def test_molecule_default(role, lab_image, tmp_path):
    subprocess.run([str(HELM), "package", str(CHART), "-d", str(tmp_path)], check=True, capture_output=True)
    env = dict(os.environ, MEDAI_SRC=str(ROOT), ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1",
               MEDAI_INFERENCE_CHART=str(next(tmp_path.glob("medai-inference-*.tgz"))))
    r = subprocess.run([str(ROOT / ".venv/bin/molecule"), "test", "-s", "default"], cwd=ROOT / "roles" / role, env=env,
                       capture_output=True, text=True, timeout=900)
    tail = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, tail
    assert "idempotence: Executed: Successful" in (r.stdout + r.stderr).replace("\x1b", ""), tail
