"""A minimal real bundle for deploy tests: a few file artifacts written with installer.bundle.index.write_index.

Helper B's `medai bundle build` makes full bundles; the deploy tests need only what stage and k3s consume.
No K3s binary is included (none can be downloaded here), so K3s is configured but not started.
"""
from __future__ import annotations

import datetime
import itertools
import os
import shutil
from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.bundle.layout import BundleLayout
from installer.core.hashing import sha256_file

FILES = {
    # name: (content, groups)
    "site-ca.pem": (b"-----BEGIN CERTIFICATE-----\nmedai test site CA (not a real certificate)\n-----END CERTIFICATE-----\n", ["all"]),
    "gpu-notes.txt": (b"only GPU agents receive this file\n", ["gpu"]),
    "k3s-airgap-images-amd64.tar": (b"placeholder archive: placement and checksum are tested, K3s never imports it\n", ["all"]),
}


_BUILT = itertools.count()


def _build_time() -> str:
    """Now, one second later for each bundle this session makes: a later bundle is newer, as real builds are (the
    upgrade refuses an older or equal one)."""
    t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=next(_BUILT))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_bundle(root: Path, full: bool = False, extra_debs: tuple[Path, ...] = ()) -> Path:
    """files only; with ``full`` also a real Debian 12 repository (FULL_PACKAGES, from deb.debian.org on the
    connected side, cached) and the SCAP datastream, so that
    the os, hardening and compliance roles can run too; ``extra_debs`` (local .deb files) join that repository and
    its package list."""
    layout = BundleLayout.at(root)
    (layout.root / "files").mkdir(parents=True, exist_ok=True)
    artifacts, known = [], {}
    if full:
        _add_os_and_scap(layout, artifacts, known, extra_debs)
    for name, (content, groups) in FILES.items():
        rel = f"files/{name}"
        (layout.root / rel).write_bytes(content)
        sha = sha256_file(layout.root / rel)
        known[rel] = sha
        artifacts.append(Artifact(kind="file", name=name, path=rel, size=len(content), sha256=sha, neededBy=groups))
    write_index(layout, {"name": "deploy-test", "version": "0.0.1", "created": _build_time(),
                         "manifestSha256": "0" * 64, "platforms": ["linux/amd64"]}, artifacts, known)
    return layout.root


ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MEDAI_TEST_CACHE", Path.home() / ".cache" / "medai-test"))
# python3-apt: Ansible's apt module (hardening, compliance `package` tasks) needs it on Debian nodes;
# open-iscsi, nfs-common, multipath-tools: Longhorn's node prerequisites (bundles/platform.yaml carries them too)
FULL_PACKAGES = ["chrony", "auditd", "openscap-scanner", "libpam-pwquality", "python3-apt", "nftables", "open-iscsi",
                 "nfs-common", "multipath-tools"]


def _add_os_and_scap(layout: BundleLayout, artifacts: list, known: dict, extra_debs=()) -> None:
    from installer.bundle.manifest import OsPackages
    from installer.collect.ospkgs import collect_os_packages

    spec = OsPackages(release="debian-12", packages=FULL_PACKAGES)
    repo = collect_os_packages(layout, spec, cache_dir=CACHE / "ospkgs")
    artifact, files = (repo.artifact, repo.files) if not extra_debs else _with_debs(layout, spec, repo.artifact, extra_debs)
    artifacts.append(artifact)
    known.update(files)
    ds = ROOT / ".tools" / "scap" / "ssg-debian12-ds.xml"
    rel = "files/ssg-debian12-ds.xml"
    shutil.copyfile(ds, layout.root / rel)
    sha = sha256_file(layout.root / rel)
    known[rel] = sha
    # the compliance role reads the datastream on the control host; no node needs it staged
    artifacts.append(Artifact(kind="scap", name="ssg-debian12-ds.xml", path=rel, size=(layout.root / rel).stat().st_size,
                              sha256=sha))


def _with_debs(layout: BundleLayout, spec, artifact: Artifact, debs) -> tuple[Artifact, dict]:
    """The release's repository with local .debs added to its pool and package list, re-indexed and re-signed
    with the same code the build uses (apt-ftparchive, a throw-away key)."""
    import dataclasses
    import json
    import subprocess

    from installer.collect.ospkgs import _apt_repo_index, _sign_repo

    repo = layout.root / "os" / spec.release
    names = []
    for deb in debs:
        shutil.copyfile(deb, repo / "pool" / Path(deb).name)
        names.append(subprocess.run(["dpkg-deb", "-f", str(deb), "Package"], capture_output=True, text=True,
                                    check=True).stdout.strip())
    pk = json.loads((repo / "packages.json").read_text())
    pk["packages"] = pk["packages"] + [n for n in names if n not in pk["packages"]]
    (repo / "packages.json").write_text(json.dumps(pk, indent=1, sort_keys=True) + "\n")
    _apt_repo_index(repo, spec)
    for name in ("medai-repo.gpg", "medai-repo.asc", "InRelease", "Release.gpg", "medai-repo.fingerprint"):
        (repo / name).unlink(missing_ok=True)  # gpg will not overwrite the first build's signature files
    _sign_repo(repo, apt=True)
    rel = layout.rel(repo)
    files = {f"{rel}/{p.relative_to(repo).as_posix()}": sha256_file(p) for p in sorted(repo.rglob("*")) if p.is_file()}
    meta = {**artifact.meta, "packages": pk["packages"]}
    return dataclasses.replace(artifact, sha256=files[f"{rel}/InRelease"], paths=sorted(files), meta=meta,
                               size=sum((layout.root / f).stat().st_size for f in files)), files


def probe_deb(out_dir: Path, version: str) -> Path:
    """A tiny local package (medai-lab-probe VERSION, arch all) built with dpkg-deb: no network needed."""
    import subprocess

    src = out_dir / f"probe-{version}"
    (src / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (src / "usr/share/medai-lab-probe").mkdir(parents=True, exist_ok=True)
    (src / "usr/share/medai-lab-probe/version").write_text(version + "\n")
    (src / "DEBIAN/control").write_text(f"Package: medai-lab-probe\nVersion: {version}\nArchitecture: all\n"
                                        "Maintainer: medai tests <tests@medai.invalid>\nSection: misc\nPriority: optional\n"
                                        "Description: medai lab upgrade probe\n a package whose version the upgrade raises\n")
    deb = out_dir / f"medai-lab-probe_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(src), str(deb)], check=True, capture_output=True)
    return deb
