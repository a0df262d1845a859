"""A minimal real bundle for deploy tests: a few file artifacts written with installer.bundle.index.write_index.

Helper B's `medai bundle build` makes full bundles; the deploy tests need only what stage and k3s consume.
No K3s binary is included (none can be downloaded here), so K3s is configured but not started.
"""
from __future__ import annotations

from pathlib import Path

import os
import shutil

from installer.bundle.index import Artifact, write_index
from installer.bundle.layout import BundleLayout
from installer.hashing import sha256_file

FILES = {
    # name: (content, groups)
    "site-ca.pem": (b"-----BEGIN CERTIFICATE-----\nmedai test site CA (not a real certificate)\n-----END CERTIFICATE-----\n", ["all"]),
    "gpu-notes.txt": (b"only GPU agents receive this file\n", ["gpu"]),
    "k3s-airgap-images-amd64.tar": (b"placeholder archive: placement and checksum are tested, K3s never imports it\n", ["all"]),
}


def make_bundle(root: Path, full: bool = False) -> Path:
    """files only; with ``full`` also a real Debian 12 repository (chrony, auditd, openscap-scanner,
    libpam-pwquality, python3-apt, from deb.debian.org on the connected side, cached) and the SCAP datastream, so that
    the os, hardening and compliance roles can run too."""
    layout = BundleLayout.at(root)
    (layout.root / "files").mkdir(parents=True, exist_ok=True)
    artifacts, known = [], {}
    if full:
        _add_os_and_scap(layout, artifacts, known)
    for name, (content, groups) in FILES.items():
        rel = f"files/{name}"
        (layout.root / rel).write_bytes(content)
        sha = sha256_file(layout.root / rel)
        known[rel] = sha
        artifacts.append(Artifact(kind="file", name=name, path=rel, size=len(content), sha256=sha, neededBy=groups))
    write_index(layout, {"name": "deploy-test", "version": "0.0.1", "created": "2026-01-01T00:00:00Z",
                         "manifestSha256": "0" * 64, "platforms": ["linux/amd64"]}, artifacts, known)
    return layout.root


ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MEDAI_TEST_CACHE", Path.home() / ".cache" / "medai-test"))
# python3-apt: Ansible's apt module (hardening, compliance `package` tasks) needs it on Debian nodes
FULL_PACKAGES = ["chrony", "auditd", "openscap-scanner", "libpam-pwquality", "python3-apt", "nftables"]


def _add_os_and_scap(layout: BundleLayout, artifacts: list, known: dict) -> None:
    from installer.bundle.manifest import OsPackages
    from installer.bundle.sources.ospkgs import collect_os_packages

    repo = collect_os_packages(layout, OsPackages(release="debian-12", packages=FULL_PACKAGES),
                               cache_dir=CACHE / "ospkgs")
    artifacts.append(repo.artifact)
    known.update(repo.files)
    ds = ROOT / ".tools" / "scap" / "ssg-debian12-ds.xml"
    rel = "files/ssg-debian12-ds.xml"
    shutil.copyfile(ds, layout.root / rel)
    sha = sha256_file(layout.root / rel)
    known[rel] = sha
    # the compliance role reads the datastream on the control host; no node needs it staged
    artifacts.append(Artifact(kind="scap", name="ssg-debian12-ds.xml", path=rel, size=(layout.root / rel).stat().st_size,
                              sha256=sha))
