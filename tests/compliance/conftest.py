"""Compliance fixtures: real oscap runs inside a lab-image container (network none), real SCAP content.

`scan_node` is a plain podman container of the lab image with openscap-scanner installed by apt from the local
repo of tests/support/debrepo.py. ARF files for parsing and report tests come from real scans in it.
"""
from __future__ import annotations

import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from installer.lab.podman import podman, podman_env
from tests.support.debrepo import build_repo, install_repo

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_DS = ROOT / ".tools" / "scap" / "ssg-debian12-ds.xml"
UBUNTU_DS = Path("/usr/share/xml/scap/ssg/content/ssg-ubuntu2204-ds.xml")  # bookworm's ssg-debderived
DEBIAN_PROFILE = "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary"
UBUNTU_PROFILE = "xccdf_org.ssgproject.content_profile_cis_level1_server"
REPO_CACHE = ROOT / ".tools" / "cache" / "compliance-debs"


def sh(container: str, cmd: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["podman", "exec", container, "sh", "-c", cmd], env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{container}: {cmd}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return p


@dataclass
class Scan:
    arf: Path
    stdout: str  # oscap's own per-rule listing: an independent source for the counts
    rc: int


@pytest.fixture(scope="session")
def local_repo(lab_image) -> Path:
    return build_repo(lab_image, REPO_CACHE)


@pytest.fixture(scope="session")
def scan_node(lab_image, local_repo):
    name = f"medai-compliance-{secrets.token_hex(3)}"
    podman("run", "-d", "--name", name, "--network", "none", "--systemd=always", "--privileged", lab_image)
    try:
        install_repo(name, local_repo)
        sh(
            name,
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openscap-scanner >/dev/null"
            " && mkdir -p /var/lib/scan",
        )
        yield name
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def oscap_eval(node: str, ds: Path, profile: str, dest: Path) -> Scan:
    podman("cp", str(ds), f"{node}:/var/lib/scan/{ds.name}")
    p = sh(node, f"oscap xccdf eval --profile {profile} --results-arf /var/lib/scan/arf.xml /var/lib/scan/{ds.name}", check=False)
    assert p.returncode in (0, 2), p.stderr[-800:]
    podman("cp", f"{node}:/var/lib/scan/arf.xml", str(dest))
    return Scan(dest, p.stdout, p.returncode)


@pytest.fixture(scope="session")
def debian_scan(scan_node, tmp_path_factory) -> Scan:
    """A real ANSSI BP-028 intermediary scan of a minbase Debian 12 node (full profile, a few seconds)."""
    return oscap_eval(scan_node, DEBIAN_DS, DEBIAN_PROFILE, tmp_path_factory.mktemp("arf") / "debian-arf.xml")


@pytest.fixture(scope="session")
def ubuntu_scan(scan_node, tmp_path_factory) -> Scan:
    """Ubuntu 22.04 CIS content evaluated on the Debian node: every rule is notapplicable (platform check), but the
    ARF is a real one carrying the CIS benchmark: good for parsing titles, profile and content version."""
    return oscap_eval(scan_node, UBUNTU_DS, UBUNTU_PROFILE, tmp_path_factory.mktemp("arf") / "ubuntu-arf.xml")


def oscap_listing(stdout: str) -> dict[str, str]:
    """rule id -> result from oscap's plain-text output ("Rule\r\t<id>" / "Result\r\t<result>" per rule)."""
    return dict(re.findall(r"^Rule\s+(\S+)\s+Result\s+(\S+)", stdout, re.M))
