"""The os role refuses a bundle without a repository for the host's release, before it touches anything.

Run against this machine through a local connection: the role gathers facts and stops at its first check
(a Jinja file test on the control host), so nothing on this machine is changed.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_without_this_release_is_refused_naming_the_file(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "os" / "debian-99").mkdir(parents=True)
    (bundle / "os" / "debian-99" / "packages.json").write_text('{"packages": [], "groups": {}}')
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        f"  vars: {{medai_os_bundle_dir: {str(bundle)!r}, medai_os_release: debian-12,"
        f" ansible_python_interpreter: {sys.executable!r}}}\n"
        "  roles: [os]\n")
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    r = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(play)],
                       env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert f"{bundle}/os/debian-12/packages.json not found: the bundle carries no OS packages for debian-12" in out, \
        out[-3000:]
    assert "changed=0" in out  # refused before any change
