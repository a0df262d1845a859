"""The code's own contracts, run as tests: the layers (import-linter), ruff's rules, and a proof that the layer
contract can fail (a scratch copy where a low layer imports the CLI)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    # import-linter imports nothing; it reads the sources under the root it is started in
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_layers_contract_is_kept():
    res = _lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    scratch = tmp_path / "repo"
    shutil.copytree(REPO / "installer", scratch / "installer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", scratch / "pyproject.toml")
    bad = scratch / "installer" / "bundle" / "layout.py"
    bad.write_text(bad.read_text() + "\n\ndef _upward():\n    from installer.deploy.runner import run_playbook  # noqa\n")
    res = _lint_imports(scratch)
    assert res.returncode != 0
    assert "BROKEN" in res.stdout and "installer.bundle.layout -> installer.deploy.runner" in res.stdout


def test_ruff_is_clean():
    res = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
