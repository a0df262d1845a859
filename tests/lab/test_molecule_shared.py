"""molecule/shared/create.yml + destroy.yml run installer.lab.molecule: real lab nodes for a role's scenario.

The full `molecule test` on the shared scenario runs in each role's own test (tests/deploy/test_molecule.py and
others); here the create/destroy contract Molecule relies on is checked directly and cheaply."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from installer.lab.molecule import specs_from_platforms
from installer.lab.nodes import Lab

ROOT = Path(__file__).resolve().parents[2]


def lab_molecule(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "installer.lab.molecule", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_platform_groups_decide_node_roles():
    specs = specs_from_platforms([{"name": "s1", "groups": ["servers"]}, {"name": "a1"},
                                  {"name": "g1", "groups": ["agents", "gpu"]}])
    assert [(s.hostname, s.role, s.gpu) for s in specs] == [("s1", "server", False), ("a1", "agent", False),
                                                            ("g1", "agent", True)]


def test_bad_platform_name_is_one_line_and_starts_nothing(tmp_path):
    r = lab_molecule("create", "--state-dir", str(tmp_path), "--instance-config", str(tmp_path / "ic.yml"),
                     "--platforms", json.dumps([{"name": "Bad_Name"}]))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'Bad_Name'" in r.stderr
    assert not (tmp_path / "lab.json").exists()


@pytest.mark.lab
def test_create_is_idempotent_writes_instance_config_and_destroy_cleans_up(tmp_path, lab_image):
    platforms = json.dumps([{"name": "mol-srv-1", "groups": ["servers"]}])
    args = ["create", "--state-dir", str(tmp_path), "--instance-config", str(tmp_path / "ic.yml"), "--platforms", platforms]
    try:
        first = lab_molecule(*args)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["changed"] is True
        second = lab_molecule(*args)
        assert json.loads(second.stdout) == {"changed": False, "lab": json.loads(first.stdout)["lab"]}
        lab = Lab.load(tmp_path / "lab.json")
        (entry,) = yaml.safe_load((tmp_path / "ic.yml").read_text())
        assert entry == {"instance": "mol-srv-1", "address": lab.nodes[0].ip, "user": "root", "port": "22",
                         "identity_file": str(tmp_path / "ssh" / "id_ed25519")}
        assert (tmp_path / "ic.yml").stat().st_mode & 0o077 == 0
        ssh = subprocess.run(["ssh", "-i", entry["identity_file"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                              "-o", "UserKnownHostsFile=/dev/null", f"root@{entry['address']}", "hostname"],
                             capture_output=True, text=True, timeout=30)
        assert ssh.stdout.strip() == "mol-srv-1"
    finally:
        gone = lab_molecule("destroy", "--state-dir", str(tmp_path))
    assert json.loads(gone.stdout)["changed"] is True
    assert subprocess.run(["podman", "network", "exists", lab.network]).returncode == 1
    assert json.loads(lab_molecule("destroy", "--state-dir", str(tmp_path)).stdout)["changed"] is False
