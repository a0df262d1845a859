"""roles/preflight's GPU checks (tasks/gpu.yml + files/gpu_probe.sh) run for real with ansible-playbook on this
machine against sysfs/procfs/dpkg trees laid out as a GPU host has them (MEDAI_SYSROOT). No GPU here: the trees
stand in for the host's /sys, /proc and /var/lib/dpkg; the probe and the judgement are the role's own code."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "6.1.0-28-amd64"


def host_tree(d: Path, *, device=True, loaded=None, userspace=None, module_kernel=KERNEL) -> Path:
    if device:
        for addr, cls in (("0000:41:00.0", "0x030200"), ("0000:41:00.1", "0x040300")):  # 3D controller + its audio
            p = d / "sys/bus/pci/devices" / addr
            p.mkdir(parents=True)
            (p / "vendor").write_text("0x10de\n")
            (p / "class").write_text(cls + "\n")
    other = d / "sys/bus/pci/devices/0000:00:1f.0"
    other.mkdir(parents=True)
    (other / "vendor").write_text("0x8086\n")
    (other / "class").write_text("0x060100\n")
    if loaded:
        (d / "proc/driver/nvidia").mkdir(parents=True)
        (d / "proc/driver/nvidia/version").write_text(
            f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {loaded}  Release Build  (dvs-builder@U16-I3-C01-3-3)\n"
            "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")
    (d / "var/lib/dpkg/info").mkdir(parents=True)
    status = ""
    if userspace:
        status = (f"Package: libnvidia-ml1\nStatus: install ok installed\nPriority: optional\nSection: non-free/libs\n"
                  f"Architecture: amd64\nVersion: {userspace}\nDescription: NVIDIA Management Library (NVML) runtime library\n\n")
    (d / "var/lib/dpkg/status").write_text(status)
    if module_kernel:
        m = d / "lib/modules" / module_kernel / "updates/dkms"
        m.mkdir(parents=True)
        (m / "nvidia.ko.xz").write_bytes(b"")
    return d


def run_checks(tmp: Path, tree: Path, require_driver: bool) -> tuple[dict, list[str]]:
    (tmp / "inv.yml").write_text("all:\n  children:\n    gpu:\n      hosts:\n        localhost:\n"
                                 "          ansible_connection: local\n          ansible_python_interpreter: "
                                 f"{ROOT / '.venv/bin/python'}\n")
    out = tmp / "out.json"
    (tmp / "play.yml").write_text(f"""
- hosts: gpu
  gather_facts: false
  environment: {{MEDAI_SYSROOT: "{tree}", MEDAI_KERNEL: "{KERNEL}"}}
  vars: {{medai_preflight_gpu_require_driver: {str(require_driver).lower()}}}
  tasks:
    - ansible.builtin.include_role: {{name: preflight, tasks_from: gpu.yml}}
    - ansible.builtin.copy:
        dest: "{out}"
        content: "{{{{ {{'gpu': medai_preflight_gpu, 'problems': _medai_preflight_problems}} | to_json }}}}"
""")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
    r = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(tmp / "inv.yml"), str(tmp / "play.yml")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    doc = json.loads(out.read_text())
    return doc["gpu"], doc["problems"]


def test_healthy_gpu_host(tmp_path):
    gpu, problems = run_checks(tmp_path, host_tree(tmp_path / "h", loaded="535.216.01", userspace="535.216.01-1"),
                               require_driver=True)
    assert gpu["devices"] == ["0000:41:00.0"] and gpu["driver_loaded"] == "535.216.01"
    assert gpu["driver_userspace"] == "535.216.01" and gpu["module_for_kernel"] is True
    assert problems == []


def test_before_install_only_the_device_is_required(tmp_path):
    gpu, problems = run_checks(tmp_path, host_tree(tmp_path / "h", module_kernel=None), require_driver=False)
    assert gpu["devices"] and problems == []


@pytest.mark.parametrize("tree, require_driver, problem", [
    (dict(device=False), False, "gpu: no NVIDIA device (PCI vendor 10de) on this gpu host"),
    (dict(userspace="535.216.01-1"), True, "gpu driver: not loaded although installed (userspace 535.216.01)"),
    (dict(loaded="535.183.01", userspace="535.216.01-1"), True,
     "kernel/driver mismatch: loaded NVIDIA module 535.183.01 but userspace driver 535.216.01"),
    (dict(userspace="535.216.01-1", loaded="535.216.01", module_kernel="6.1.0-27-amd64"), True,
     f"kernel/driver mismatch: no nvidia module built for the running kernel {KERNEL}"),
], ids=["no-device", "not-loaded", "version-mismatch", "no-module-for-kernel"])
def test_named_problems(tmp_path, tree, require_driver, problem):
    _, problems = run_checks(tmp_path, host_tree(tmp_path / "h", **tree), require_driver=require_driver)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
