"""The OS-packages fixture (collect's tests and the os role's Molecule test): one real Debian 12 repository per
session, built from Debian's archive.

The apt cache (lists and .debs, ~30 MB) lives in ~/.cache/medai-test/ospkgs so reruns do not download again.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import OsPackages
from installer.collect.ospkgs import collect_os_packages

TEST_CACHE = Path(os.environ.get("MEDAI_TEST_CACHE", Path.home() / ".cache" / "medai-test"))
# Small on purpose: chrony and auditd (the os role's own packages) for all hosts, one extra for the gpu group.
DEBIAN_SPEC = OsPackages(release="debian-12", packages=["chrony", "auditd"], groups={"gpu": ["pciutils"]})


@pytest.fixture(scope="session")
def debian_repo(tmp_path_factory):
    """(layout, OsRepo) for a bundle holding os/debian-12 built for real from deb.debian.org."""
    layout = BundleLayout.at(tmp_path_factory.mktemp("os-bundle"))
    repo = collect_os_packages(layout, DEBIAN_SPEC, cache_dir=TEST_CACHE / "ospkgs")
    return layout, repo
