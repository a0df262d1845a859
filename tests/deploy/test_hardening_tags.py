"""The hardening role's managed-files call writes for the controls the run's tags select: the file list and running
kernel parameters it is given, resolved by ansible-playbook from the role's own defaults and vars under real tags."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles/hardening"
PLAY = """
- name: Resolve the hardening role's managed-files arguments
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{role}/defaults/main.yml, {role}/vars/main.yml]
  vars:
    ansible_os_family: Debian
    ansible_virtualization_role: host
    ansible_virtualization_type: kvm
  tasks:
    - name: Hardening | what the call would get
      ansible.builtin.debug:
        msg: "{{{{ {{'files': _medai_hardening_files | map(attribute='path') | list,
                    'sysctl': _medai_hardening_sysctl_run}} | to_json }}}}"
      tags: [always]
"""
SUDO = ["/etc/sudoers.d", "/etc/sudoers.d/50-medai-hardening", "/etc/sudoers.d/50-medai-requiretty",
        "/etc/sudoers.d/50-medai-umask"]
PWQ, FAILLOCK, SYSCTL = "/etc/security/pwquality.conf", "/etc/security/faillock.conf", "/etc/sysctl.d/60-medai-hardening.conf"


@pytest.mark.parametrize(("args", "files", "sysctl"), [
    ([], SUDO + [PWQ, FAILLOCK, SYSCTL], 11),
    (["--tags", "rule_sysctl_kernel_sysrq"], [SYSCTL], {"kernel.sysrq": "0"}),
    (["--tags", "rule_sudo_add_umask"], ["/etc/sudoers.d/50-medai-umask"], {}),
    (["--tags", "anssi_bp28_minimal"], [PWQ, FAILLOCK], {}),
    (["--skip-tags", "anssi_bp28_minimal,rule_sysctl_kernel_sysrq,rule_sudo_add_ignore_dot"],
     ["/etc/sudoers.d", "/etc/sudoers.d/50-medai-requiretty", "/etc/sudoers.d/50-medai-umask", SYSCTL], 10),
    (["-e", "medai_hardening_sysctl_kernel_sysrq=false", "--tags", "rule_sysctl_kernel_sysrq"], [], {}),
], ids=["all", "one-sysctl-rule", "one-sudo-rule", "one-level", "skipped", "turned-off"])
def test_the_managed_files_call_writes_for_the_selected_controls_only(args, files, sysctl, tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=ROLE))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_PYTHON_INTERPRETER="auto_silent")
    r = subprocess.run(["ansible-playbook", "-i", "localhost,", *args, str(play)], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads(json.loads(r.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"])
    assert got["files"] == files
    assert (len(got["sysctl"]) if isinstance(sysctl, int) else got["sysctl"]) == sysctl
