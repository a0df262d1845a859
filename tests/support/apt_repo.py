"""A real signed apt repository for tests: one tiny .deb (dpkg-deb), indexes from apt-ftparchive, a throwaway
gpg key (its own GNUPGHOME) that clear-signs InRelease and signs Release.gpg. Also a signed repomd.xml for dnf."""
from __future__ import annotations

import gzip
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.daemons import stop_gpg_agent, wait_gone


@dataclass
class SignedRepo:
    root: Path          # serve this directory
    suite: str
    fingerprint: str
    key_asc: Path       # the armored public key (inside root, so it can be fetched over HTTP too)
    package: str


_EPOCH = 1700000000


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


class ThrowawayKey:
    """A signing key in its own GNUPGHOME; gpg starts a gpg-agent for it, which close() stops."""

    def __init__(self, home: Path, uid: str):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        self.gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback",
                    "--passphrase", ""]
        _run([*self.gpg, "--quick-generate-key", uid, "ed25519", "sign", "never"])
        self.fingerprint = next(ln.split(":")[9] for ln in _run([*self.gpg, "--with-colons", "--list-keys"]).splitlines()
                                if ln.startswith("fpr:"))

    def close(self) -> None:
        stop_gpg_agent(self.home)
        left = wait_gone(self.home)
        assert not left, f"gpg-agent still running for {self.home} after gpgconf --kill all: pids {sorted(left)}"

    def export(self, dest: Path) -> Path:
        _run([*self.gpg, "--armor", "--output", str(dest), "--export", self.fingerprint])
        return dest

    def clearsign(self, src: Path, dest: Path) -> None:
        _run([*self.gpg, "--yes", "--clearsign", "--output", str(dest), str(src)])

    def detach(self, src: Path, dest: Path) -> None:
        _run([*self.gpg, "--yes", "--armor", "--detach-sign", "--output", str(dest), str(src)])


def make_deb(work: Path, package: str, version: str = "1.0", arch: str = "amd64") -> Path:
    root = work / f"{package}-build"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/doc" / package).mkdir(parents=True)
    (root / "usr/share/doc" / package / "README").write_text("medai test package\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: medai tests <t@medai.invalid>\n"
        f"Description: medai test package\n")
    out = work / f"{package}_{version}_{arch}.deb"
    # byte-identical on every run: the OS-package download cache (shared across runs) keys .debs by file name
    for p in [root, *root.rglob("*")]:
        os.utime(p, (_EPOCH, _EPOCH))
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True, capture_output=True,
                   text=True, env={**os.environ, "SOURCE_DATE_EPOCH": str(_EPOCH)})
    return out


def make_signed_apt_repo(work: Path, key: ThrowawayKey, package: str = "medai-test-toolkit",
                         suite: str = "stable", arch: str = "amd64") -> SignedRepo:
    repo = work / "repo"
    pool = repo / "pool/main"
    pool.mkdir(parents=True)
    deb = make_deb(work, package, arch=arch)
    deb.rename(pool / deb.name)
    bindir = repo / f"dists/{suite}/main/binary-{arch}"
    bindir.mkdir(parents=True)
    packages = _run(["apt-ftparchive", "packages", "pool"], cwd=repo)
    (bindir / "Packages").write_text(packages)
    with gzip.GzipFile(bindir / "Packages.gz", "wb", mtime=0) as gz:
        gz.write(packages.encode())
    opts = []
    for k, v in (("Suite", suite), ("Codename", suite), ("Components", "main"), ("Architectures", arch),
                 ("Origin", "medai-test-vendor")):
        opts += ["-o", f"APT::FTPArchive::Release::{k}={v}"]
    dist = repo / "dists" / suite
    (dist / "Release").write_text(_run(["apt-ftparchive", *opts, "release", "."], cwd=dist))
    key.clearsign(dist / "Release", dist / "InRelease")
    key.detach(dist / "Release", dist / "Release.gpg")
    return SignedRepo(repo, suite, key.fingerprint, key.export(repo / "vendor-key.asc"), package)


def make_signed_repomd(work: Path, key: ThrowawayKey) -> Path:
    """A baseurl directory with repodata/repomd.xml and its armored detached signature (content is not parsed)."""
    base = work / "rpmrepo"
    (base / "repodata").mkdir(parents=True)
    md = base / "repodata/repomd.xml"
    md.write_text('<?xml version="1.0"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision></repomd>\n')
    key.detach(md, base / "repodata/repomd.xml.asc")
    key.export(base / "vendor-key.asc")
    return base
