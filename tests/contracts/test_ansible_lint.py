"""ansible-lint with the project's own production profile (.ansible-lint) over every role, playbook and Molecule
scenario: a finding fails the test, listing each one as `file:line: rule: message`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LINT = BIN / "ansible-lint"
# Every role (with its molecule/ scenarios), every playbook, and the shared Molecule create/destroy playbooks.
# The rest of the repository (charts, bundles, inventories, tests) is not Ansible content; leaving it out keeps the
# run near a minute on a small machine.
PATHS = ["roles", "playbooks", "molecule"]


@pytest.mark.skipif(not LINT.is_file(), reason=f"{LINT} is not installed (pip install -e '.[test]')")
def test_ansible_lint_production_profile_is_clean():
    assert "profile: production" in (ROOT / ".ansible-lint").read_text()
    # the venv's ansible-playbook/ansible-galaxy first, as ansible-lint runs them; no galaxy or network access
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               NO_COLOR="1")
    r = subprocess.run([str(LINT), "--offline", "--nocolor", "-f", "pep8", "-c", str(ROOT / ".ansible-lint"), *PATHS],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    findings = [line for line in r.stdout.splitlines() if line.strip()]
    assert r.returncode == 0 and not findings, (
        f"ansible-lint (production profile) exit {r.returncode}, {len(findings)} finding(s):\n"
        + "\n".join(findings) + "\n" + r.stderr[-3000:])
    # the profile really ran over the roles and playbooks (not an empty or wrongly rooted run)
    assert "Profile 'production' was required, and it passed" in r.stderr, r.stderr[-3000:]
