"""The Debian 12 path of installer.collect.ospkgs, for real against Debian's archive (connected side);
the RHEL/Rocky path is tested only for its command lines (dnf cannot run here)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import OsPackages
from installer.collect import ospkgs
from installer.core.errors import SourceError
from installer.core.hashing import sha256_file
from tests.support.os_repo import DEBIAN_SPEC, TEST_CACHE


def _apt_from_repo_only(tmp: Path, repo_dir: Path, keyring: Path, packages: list[str]) -> subprocess.CompletedProcess:
    """apt with a private root whose ONLY source is the bundle repository, an empty dpkg status, then a simulated
    install: succeeds only if the repository's signature checks out and it holds the whole closure."""
    for sub in ("etc/apt/apt.conf.d", "etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    (tmp / "var/lib/dpkg/status").write_text("")
    (tmp / "etc/apt/sources.list").write_text(f"deb [signed-by={keyring}] file:{repo_dir} ./\n")
    spec = OsPackages(release="debian-12", packages=["x"])
    conf = tmp / "apt.conf"
    # pytest's tmp dirs are 0700: let apt read them as root instead of its _apt sandbox user
    conf.write_text(ospkgs.apt_config(tmp, spec, tmp / "var/lib/dpkg/status") + 'APT::Sandbox::User "root";\n')
    env = {**os.environ, "APT_CONFIG": str(conf), "LC_ALL": "C"}
    upd = subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
    if upd.returncode != 0 or "W: " in upd.stderr or "Err:" in upd.stdout:
        return upd
    return subprocess.run(["apt-get", "install", "-s", "-y", *packages], env=env, capture_output=True, text=True)


@pytest.mark.network
def test_repository_layout_and_index_entries(debian_repo):
    layout, repo = debian_repo
    d = layout.os / "debian-12"
    for name in ("InRelease", "Release", "Release.gpg", "Packages", "Packages.gz", "medai-repo.gpg", "packages.json"):
        assert (d / name).is_file(), name
    # every file written is returned with its real sha256, and nothing else is there
    on_disk = {p.relative_to(layout.root).as_posix() for p in d.rglob("*") if p.is_file()}
    assert set(repo.files) == on_disk
    for rel, sha in repo.files.items():
        assert sha256_file(layout.root / rel) == sha, rel
    a = repo.artifact
    assert a.kind == "ospkgs" and a.name == "debian-12" and a.path == "os/debian-12/InRelease"
    assert a.sha256 == repo.files["os/debian-12/InRelease"]
    assert sorted(a.paths) == sorted(repo.files)
    names = {c.split("=")[0] for c in a.meta["closure"]}
    assert {"chrony", "auditd", "pciutils", "libc6"} <= names  # closure from an empty base includes libraries
    assert len(list((d / "pool").glob("*.deb"))) == len(a.meta["closure"])
    pk = json.loads((d / "packages.json").read_text())
    assert pk["packages"] == ["chrony", "auditd"] and pk["groups"] == {"gpu": ["pciutils"]}
    assert not any(layout.tmp.iterdir()), "no staging leftovers"


@pytest.mark.network
def test_release_is_signed_by_the_bundled_key_only(debian_repo, tmp_path):
    layout, _ = debian_repo
    d = layout.os / "debian-12"
    ok = subprocess.run(["gpgv", "--keyring", str(d / "medai-repo.gpg"), str(d / "InRelease")], capture_output=True)
    assert ok.returncode == 0, ok.stderr
    ok = subprocess.run(["gpgv", "--keyring", str(d / "medai-repo.gpg"), str(d / "Release.gpg"), str(d / "Release")],
                        capture_output=True)
    assert ok.returncode == 0, ok.stderr
    # Debian's own key does not verify it: the signature really is the build key's
    bad = subprocess.run(["gpgv", "--keyring", "/usr/share/keyrings/debian-archive-keyring.gpg", str(d / "InRelease")],
                         capture_output=True)
    assert bad.returncode != 0
    # the private key never enters the bundle
    for p in layout.root.rglob("*"):
        if p.is_file() and p.suffix not in (".deb",):
            assert b"PRIVATE KEY" not in p.read_bytes(), p
    listed = subprocess.run(["gpg", "--homedir", str(tmp_path), "--batch", "--list-packets", str(d / "medai-repo.gpg")],
                            capture_output=True, text=True)
    assert ":public key packet:" in listed.stdout and ":secret key packet:" not in listed.stdout


@pytest.mark.network
def test_apt_installs_the_closure_from_the_repository_alone(debian_repo, tmp_path):
    layout, _ = debian_repo
    d = layout.os / "debian-12"
    res = _apt_from_repo_only(tmp_path / "root", d, d / "medai-repo.gpg", ["chrony", "auditd", "pciutils"])
    assert res.returncode == 0, res.stderr + res.stdout
    assert "Inst chrony" in res.stdout and "Inst libc6" in res.stdout


@pytest.mark.network
def test_a_tampered_release_is_refused_by_apt(debian_repo, tmp_path):
    layout, _ = debian_repo
    copy = tmp_path / "repo"
    shutil.copytree(layout.os / "debian-12", copy)
    text = (copy / "InRelease").read_text().replace("Origin: medai", "Origin: evil")
    (copy / "InRelease").write_text(text)
    (copy / "Release.gpg").unlink()
    (copy / "Release").unlink()
    res = _apt_from_repo_only(tmp_path / "root", copy, copy / "medai-repo.gpg", ["chrony"])
    assert res.returncode != 0 or "W: " in res.stderr
    assert "BADSIG" in res.stdout + res.stderr or "not signed" in res.stdout + res.stderr or "invalid" in (res.stdout + res.stderr).lower()


@pytest.mark.network
def test_rebuild_reuses_the_cache_and_replaces_the_repository(debian_repo, tmp_path):
    layout = BundleLayout.at(tmp_path / "b")
    first = ospkgs.collect_os_packages(layout, DEBIAN_SPEC, cache_dir=TEST_CACHE / "ospkgs")
    fpr1 = (layout.os / "debian-12" / "medai-repo.fingerprint").read_text()
    (layout.os / "debian-12" / "stray").write_text("x")
    second = ospkgs.collect_os_packages(layout, DEBIAN_SPEC, cache_dir=TEST_CACHE / "ospkgs")
    assert not (layout.os / "debian-12" / "stray").exists()
    assert first.artifact.meta["closure"] == second.artifact.meta["closure"]
    # a throw-away key per build: the fingerprints differ
    fpr2 = (layout.os / "debian-12" / "medai-repo.fingerprint").read_text()
    assert len(fpr1.strip()) == 40 and fpr1 != fpr2


@pytest.mark.network
@pytest.mark.xdist_group("serial")  # the OS package cache the lab's bundles fill (apt runs there unlocked)
def test_unknown_package_is_a_one_line_error_and_leaves_nothing(tmp_path):
    layout = BundleLayout.at(tmp_path / "b")
    spec = OsPackages(release="debian-12", packages=["chrony", "no-such-package-medai"])
    with pytest.raises(SourceError) as e:
        ospkgs.collect_os_packages(layout, spec, cache_dir=TEST_CACHE / "ospkgs")
    msg = str(e.value)
    assert "\n" not in msg and "spec.osPackages[debian-12]" in msg and "no-such-package-medai" in msg
    assert not (layout.os / "debian-12").exists()
    assert not any(layout.tmp.iterdir())


def test_bad_package_name_and_missing_keyring(tmp_path, monkeypatch):
    layout = BundleLayout.at(tmp_path / "b")
    with pytest.raises(SourceError, match=r"packages\[1\]: 'bad name; rm' is not a package name"):
        ospkgs.collect_os_packages(layout, OsPackages(release="debian-12", packages=["chrony", "bad name; rm"]),
                                   cache_dir=tmp_path / "c")
    rel = ospkgs.APT_RELEASES["ubuntu-24.04"]
    if not Path(rel.keyring).exists():
        with pytest.raises(SourceError, match="ubuntu-archive-keyring.gpg not found .apt-get install ubuntu-keyring"):
            ospkgs.collect_os_packages(layout, OsPackages(release="ubuntu-24.04", packages=["chrony"]), cache_dir=tmp_path / "c")


def test_ubuntu_sources_are_written_for_the_target_release():
    """Not executed against Ubuntu's archive here: only the private sources are checked."""
    src = ospkgs.apt_sources(OsPackages(release="ubuntu-22.04", packages=["chrony"]))
    assert "Suites: jammy jammy-updates" in src and "Suites: jammy-security" in src
    assert "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg" in src
    assert "universe" in src
    src = ospkgs.apt_sources(OsPackages(release="debian-12", packages=["x"], mirror="http://mirror.example/debian/"))
    assert "URIs: http://mirror.example/debian\n" in src


def test_rhel_command_lines(tmp_path):
    """The RHEL/Rocky path needs dnf and the distribution's repositories: NOT executed here, only its commands."""
    spec = OsPackages(release="rocky-9", arch="amd64", packages=["chrony", "audit"], groups={"gpu": ["pciutils"]})
    dl, cr = ospkgs.dnf_commands(spec, tmp_path / "repo", tmp_path / "root")
    assert dl[0] == "dnf" and "download" in dl and "--resolve" in dl and "--alldeps" in dl
    assert "--releasever=9" in dl and "--forcearch=x86_64" in dl and f"--installroot={tmp_path / 'root'}" in dl
    assert dl[-3:] == ["chrony", "audit", "pciutils"]
    assert cr[0] == "createrepo_c" and cr[-1] == str(tmp_path / "repo")
    m = ospkgs.dnf_commands(OsPackages(release="rhel-9", packages=["x"], mirror="https://m.example/rhel9"), tmp_path, tmp_path)[0]
    assert "--disablerepo=*" in m and "--repofrompath=medai-mirror,https://m.example/rhel9" in m
    if not shutil.which("dnf"):
        with pytest.raises(SourceError, match="RHEL/Rocky 9 staging host"):
            ospkgs.collect_os_packages(BundleLayout.at(tmp_path / "b"), spec, cache_dir=tmp_path / "c")


def test_parse_simulation_keeps_epochs_and_arch():
    text = ("Inst libaudit1 (1:3.0.9-1 Debian:12.12/stable [amd64])\n"
            "Inst tzdata [2024a-0] (2025b-0+deb12u1 Debian:12.12/stable [all])\nConf x (1 y [amd64])\n")
    assert ospkgs.parse_simulation(text) == [("libaudit1", "1:3.0.9-1", "amd64"), ("tzdata", "2025b-0+deb12u1", "all")]
    deb = ospkgs.Deb("libaudit1", "1:3.0.9-1", "amd64", 1, "0" * 64)
    assert deb.archive_name == "libaudit1_1%3a3.0.9-1_amd64.deb"

