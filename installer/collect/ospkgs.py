"""OS packages for the hosts behind the gap: a signed local package repository per OS release.

Public API (called by installer/collect/build.py):

    collect_os_packages(layout, spec, *, cache_dir=None, log=None) -> OsRepo
        one ``spec.osPackages`` entry -> BUNDLE/os/<release>/ ; returns the Artifact (kind "ospkgs")
        and ``files`` {bundle-relative path: sha256} for index.json.
    collect_all_os_packages(layout, specs, *, cache_dir=None, log=None) -> (list[Artifact], dict[str, str])

Layout written for Debian/Ubuntu (a flat apt repository, ``deb [signed-by=...] file:/DIR ./``):

    os/<release>/pool/*.deb        the full dependency closure (see below)
    os/<release>/Packages(.gz)     apt-ftparchive packages
    os/<release>/Release           apt-ftparchive release (SHA256 of the indexes)
    os/<release>/InRelease         clear-signed Release
    os/<release>/Release.gpg       detached signature of Release
    os/<release>/medai-repo.gpg    the build key's PUBLIC key (binary keyring for apt's signed-by)
    os/<release>/medai-repo.asc    the same key, armored (RHEL's gpgkey=)
    os/<release>/medai-repo.fingerprint  its fingerprint
    os/<release>/packages.json     what the os role installs: {"release", "arch", "packages", "groups", "closure"}

The closure is resolved with apt against an EMPTY dpkg status in a private apt root (own sources list for the
target release and the release's archive keyring; the host's /etc/apt is never read nor changed). From an empty
status apt lists every package the requested ones depend on, libraries the target already has included
(libc6, ...), so a host at any point release of the target finds versions that satisfy the new packages. That
costs some megabytes; ``base_status`` (a target's /var/lib/dpkg/status) shrinks it when the base is known.
Recommends are not followed (the packages list is explicit). The -updates and -security suites are included
so the repository carries the current versions.

The build signs Release with a throw-away OpenPGP key generated in a temporary GNUPGHOME; the private key is
deleted with that directory when the build ends and never enters the bundle. Trust comes from the bundle's
own signature over index.json (which pins medai-repo.gpg and every .deb) and from apt checking InRelease
against the pinned key on the host.

RHEL/Rocky 9: ``dnf download --resolve --alldeps`` into an empty installroot, ``createrepo_c`` and a detached
armored signature of repodata/repomd.xml. It needs dnf and the distribution's repositories (a RHEL/Rocky staging
host); it was NOT executed on the Debian build machines of this project, only its command lines are tested.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import OsPackages
from installer.collect import vendor_repos
from installer.core.childenv import child_env
from installer.core.errors import SourceError
from installer.core.hashing import CHUNK, fsync_rename, sha256_file

Log = Callable[[str], None]


@dataclass(frozen=True)
class AptRelease:
    codename: str
    archive: str
    security: str
    components: tuple[str, ...]
    keyring: str
    keyring_package: str


APT_RELEASES: dict[str, AptRelease] = {
    "debian-12": AptRelease(
        "bookworm", "http://deb.debian.org/debian", "http://deb.debian.org/debian-security",
        ("main", "contrib", "non-free", "non-free-firmware"),
        "/usr/share/keyrings/debian-archive-keyring.gpg", "debian-archive-keyring"),
    # Ubuntu's keyring on a Debian staging host: `apt-get install ubuntu-keyring` (same path on Ubuntu itself).
    # amd64 only at these URLs; arm64 lives on ports.ubuntu.com (set spec.mirror).
    "ubuntu-22.04": AptRelease(
        "jammy", "http://archive.ubuntu.com/ubuntu", "http://security.ubuntu.com/ubuntu",
        ("main", "restricted", "universe", "multiverse"),
        "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "ubuntu-keyring"),
    "ubuntu-24.04": AptRelease(
        "noble", "http://archive.ubuntu.com/ubuntu", "http://security.ubuntu.com/ubuntu",
        ("main", "restricted", "universe", "multiverse"),
        "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "ubuntu-keyring"),
}
RPM_RELEASES = {"rhel-9": "9", "rocky-9": "9"}
RPM_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "x86_64": "x86_64", "aarch64": "aarch64"}

KEY_UID = "medai bundle OS repository (build-time key, private part destroyed) <os-repo@medai.invalid>"
_PKG_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")


@dataclass
class OsRepo:
    artifact: Artifact
    files: dict[str, str] = field(default_factory=dict)  # bundle-relative path -> sha256


def default_cache_dir() -> Path:
    base = os.environ.get("MEDAI_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "medai")
    return Path(base) / "ospkgs"


def requested_packages(spec: OsPackages) -> list[str]:
    """Every package the repository must hold: the common list plus every group's extras, in order, once."""
    out: list[str] = []
    for i, name in enumerate(spec.packages):
        _check_name(name, f"spec.osPackages[{spec.release}].packages[{i}]")
        if name not in out:
            out.append(name)
    for group, names in sorted(spec.groups.items()):
        for i, name in enumerate(names):
            _check_name(name, f"spec.osPackages[{spec.release}].groups.{group}[{i}]")
            if name not in out:
                out.append(name)
    for repo in spec.repositories:
        for i, name in enumerate(repo.packages):
            _check_name(name, f"{vendor_repos.where(spec.release, repo)}.packages[{i}]")
            if name not in out:
                out.append(name)
    if not out:
        raise SourceError(f"spec.osPackages[{spec.release}]: no packages listed")
    return out


def package_groups(spec: OsPackages) -> dict[str, list[str]]:
    """Per-group extras, with each vendor repository's packages added to the groups it serves (gpu) only."""
    groups = {k: list(v) for k, v in spec.groups.items()}
    for repo in spec.repositories:
        for g in repo.groups:
            groups.setdefault(g, [])
            groups[g] += [p for p in repo.packages if p not in groups[g]]
    return dict(sorted(groups.items()))


def _repositories_meta(spec: OsPackages) -> list[dict]:
    return [{"name": r.name, "fingerprint": r.fingerprint, "groups": list(r.groups), "packages": list(r.packages),
             "source": r.baseurl or f"{r.url} {r.suite}"} for r in spec.repositories]


def _check_name(name: str, where: str) -> None:
    if not _PKG_NAME.match(name):
        raise SourceError(f"{where}: {name!r} is not a package name (NAME, NAME=VERSION or NAME:ARCH)")


def collect_os_packages(layout: BundleLayout, spec: OsPackages, *, cache_dir: Path | None = None,
                        base_status: Path | None = None, log: Log | None = None) -> OsRepo:
    """Resolve, download, index and sign one release's repository into BUNDLE/os/<release>/ (atomically)."""
    log = log or (lambda _m: None)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if spec.release in APT_RELEASES:
        build = lambda stage: _build_apt(spec, stage, cache / f"{spec.release}-{spec.arch}", base_status, log)  # noqa: E731
    elif spec.release in RPM_RELEASES:
        build = lambda stage: _build_rpm(spec, stage, cache / f"{spec.release}-{spec.arch}", log)  # noqa: E731
    else:  # the manifest schema already limits release; this guards direct callers
        raise SourceError(f"spec.osPackages: release {spec.release!r} is not supported")

    final = layout.os / spec.release
    layout.tmp.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f"os-{spec.release}-", dir=layout.tmp))
    stage.chmod(0o755)  # mkdtemp makes it 0700; the repository is world-readable like the rest of the bundle
    try:
        closure = build(stage)
        _write_packages_json(stage, spec, closure)
        files = {p.relative_to(stage).as_posix(): sha256_file(p) for p in sorted(stage.rglob("*")) if p.is_file()}
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    rel = layout.rel(final)
    bundle_files = {f"{rel}/{p}": sha for p, sha in files.items()}
    signed_index = "InRelease" if spec.release in APT_RELEASES else "repodata/repomd.xml"
    artifact = Artifact(
        kind="ospkgs",
        name=spec.release,
        ref=f"{spec.release}/{spec.arch}",
        path=f"{rel}/{signed_index}",
        size=sum((final / p).stat().st_size for p in files),
        sha256=files[signed_index],
        paths=sorted(bundle_files),
        meta={
            "release": spec.release,
            "arch": spec.arch,
            "packages": list(spec.packages),
            "groups": package_groups(spec),
            "closure": closure,
            "publicKey": f"{rel}/medai-repo.gpg",
            "repositories": _repositories_meta(spec),
        },
    )
    log(f"os/{spec.release}: {len(closure)} packages in the closure, signed repository written")
    return OsRepo(artifact, bundle_files)


def collect_all_os_packages(layout: BundleLayout, specs: list[OsPackages], *, cache_dir: Path | None = None,
                            log: Log | None = None) -> tuple[list[Artifact], dict[str, str]]:
    seen: set[str] = set()
    artifacts: list[Artifact] = []
    files: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if spec.release in seen:
            raise SourceError(f"spec.osPackages[{i}].release: {spec.release!r} appears twice")
        seen.add(spec.release)
        repo = collect_os_packages(layout, spec, cache_dir=cache_dir, log=log)
        artifacts.append(repo.artifact)
        files.update(repo.files)
    return artifacts, files


def _write_packages_json(stage: Path, spec: OsPackages, closure: list[str]) -> None:
    doc = {
        "release": spec.release,
        "arch": spec.arch,
        "packages": list(spec.packages),
        "groups": package_groups(spec),
        "closure": closure,
        "repositories": _repositories_meta(spec),
    }
    (stage / "packages.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------- Debian / Ubuntu


def apt_sources(spec: OsPackages, extra: list[vendor_repos.CheckedRepository] = ()) -> str:
    """deb822 sources for the target release: the release, -updates and -security, signed by its keyring."""
    rel = APT_RELEASES[spec.release]
    archive = (spec.mirror or rel.archive).rstrip("/")
    comps = " ".join(rel.components)
    security_suite = f"{rel.codename}-security"
    return (
        f"Types: deb\nURIs: {archive}\nSuites: {rel.codename} {rel.codename}-updates\n"
        f"Components: {comps}\nArchitectures: {spec.arch}\nSigned-By: {rel.keyring}\n\n"
        f"Types: deb\nURIs: {rel.security}\nSuites: {security_suite}\n"
        f"Components: {comps}\nArchitectures: {spec.arch}\nSigned-By: {rel.keyring}\n"
    ) + "".join("\n" + vendor_repos.apt_source_stanza(c, spec.arch) for c in extra)


def apt_config(root: Path, spec: OsPackages, status: Path) -> str:
    """An APT_CONFIG that keeps apt entirely inside ``root``: no host apt.conf.d, sources, keys or dpkg status."""
    d = root.as_posix()
    return "\n".join([
        f'Dir::Etc::Parts "{d}/etc/apt/apt.conf.d";',
        'Dir::Etc::main "/dev/null";',
        f'Dir::Etc::sourcelist "{d}/etc/apt/sources.list";',
        f'Dir::Etc::sourceparts "{d}/etc/apt/sources.list.d";',
        f'Dir::Etc::preferences "{d}/etc/apt/preferences";',
        f'Dir::Etc::preferencesparts "{d}/etc/apt/preferences.d";',
        f'Dir::Etc::trusted "{d}/etc/apt/trusted.gpg";',
        f'Dir::Etc::trustedparts "{d}/etc/apt/trusted.gpg.d";',
        f'Dir::State "{d}/var/lib/apt";',
        f'Dir::State::status "{status.as_posix()}";',
        f'Dir::Cache "{d}/var/cache/apt";',
        f'Dir::Log "{d}/var/log/apt";',
        f'APT::Architecture "{spec.arch}";',
        f'APT::Architectures {{ "{spec.arch}"; }};',
        'APT::Install-Recommends "false";',
        'APT::Install-Suggests "false";',
        'APT::Get::AllowUnauthenticated "false";',
        'Acquire::Languages "none";',
        'Debug::NoLocking "true";',
        "",
    ])


def prepare_apt_root(root: Path, spec: OsPackages, base_status: Path | None = None,
                     extra: list[vendor_repos.CheckedRepository] = ()) -> Path:
    """Create (or refresh) the private apt root; returns the APT_CONFIG file path."""
    for sub in ("etc/apt/apt.conf.d", "etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list").write_text("")
    (root / "etc/apt/sources.list.d/target.sources").write_text(apt_sources(spec, extra))
    status = root / "var/lib/dpkg/status"
    if base_status:
        shutil.copyfile(base_status, status)
    else:
        status.write_text("")
    conf = root / "apt.conf"
    conf.write_text(apt_config(root, spec, status))
    return conf


def _run(cmd: list[str], what: str, env: dict | None = None, cwd: Path | None = None) -> str:
    try:
        res = subprocess.run(cmd, env=env if env is not None else child_env(network=True), cwd=cwd,
                             capture_output=True, text=True)
    except FileNotFoundError:
        raise SourceError(f"{what}: {cmd[0]} not found on this host (install it: see .ci/setup-host.sh)") from None
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith(("E:", "gpg:", "Error", "error"))] or lines[-1:]
        raise SourceError(f"{what}: {cmd[0]} failed: {' | '.join(errs[-3:]) or f'exit {res.returncode}'}")
    return res.stdout


@dataclass(frozen=True)
class Deb:
    package: str
    version: str
    arch: str
    size: int
    sha256: str

    @property
    def archive_name(self) -> str:
        """The name apt gives the file in its archives cache (an epoch's ':' becomes %3a)."""
        return f"{self.package}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def parse_simulation(text: str) -> list[tuple[str, str, str]]:
    """`apt-get install -s` 'Inst NAME (VERSION ARCHIVES [ARCH])' lines -> (name, version, arch).

    The simulation lists the whole closure whatever the cache holds (--print-uris leaves out what is cached)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([a-z0-9]+)\]\)", line)
        if m:
            out.append((m.group(1).split(":")[0], m.group(2), m.group(3)))
    return out


def parse_records(text: str) -> dict[tuple[str, str, str], Deb]:
    """apt-cache show stanzas -> Deb keyed by (package, version, arch)."""
    out = {}
    for stanza in text.split("\n\n"):
        f = dict(re.findall(r"^([A-Za-z0-9-]+): ?(.*)$", stanza, re.M))
        if "Package" in f and "SHA256" in f:
            d = Deb(f["Package"], f["Version"], f["Architecture"], int(f["Size"]), f["SHA256"])
            out[(d.package, d.version, d.arch)] = d
    return out


def _build_apt(spec: OsPackages, stage: Path, cache: Path, base_status: Path | None, log: Log) -> list[str]:
    rel = APT_RELEASES[spec.release]
    where = f"spec.osPackages[{spec.release}]"
    if not Path(rel.keyring).is_file():
        raise SourceError(f"{where}: archive keyring {rel.keyring} not found (apt-get install {rel.keyring_package})")
    packages = requested_packages(spec)
    # vendor repositories are checked against their pinned keys BEFORE apt reads anything from them
    extra = [vendor_repos.check_apt_repository(spec.release, r, cache / "etc/apt/keyrings") for r in spec.repositories]
    for c in extra:
        log(f"os/{spec.release}: {c.repo.name}: {c.index_url} signed by the pinned key {c.repo.fingerprint}")
    conf = prepare_apt_root(cache, spec, base_status, extra)
    env = {**child_env(network=True), "APT_CONFIG": str(conf), "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}

    log(f"os/{spec.release}: apt-get update ({rel.codename}, -updates, -security)")
    _run(["apt-get", "-q", "update"], f"{where}: apt-get update", env)
    try:
        out = _run(["apt-get", "-y", "install", "--simulate", *packages], f"{where}: resolving", env)
    except SourceError as e:
        raise SourceError(f"{e} (packages: {', '.join(packages)})") from None
    closure = parse_simulation(out)
    if not closure:
        raise SourceError(f"{where}: apt resolved no packages to install (all already in base_status?)")
    records = parse_records(_run(["apt-cache", "show", "--no-all-versions", *(f"{n}={v}" for n, v, _ in closure)],
                                 f"{where}: apt-cache show", env))
    log(f"os/{spec.release}: {len(closure)} packages in the closure (cache {cache})")
    _run(["apt-get", "-q", "-y", "install", "--download-only", *packages], f"{where}: downloading", env)

    pool = stage / "pool"
    pool.mkdir(parents=True)
    archives = cache / "var/cache/apt/archives"
    debs = []
    for key in closure:
        d = records.get(key)
        if d is None:
            raise SourceError(f"{where}: no archive record for {key[0]}={key[1]} ({key[2]})")
        src = archives / d.archive_name
        if not src.is_file():
            raise SourceError(f"{where}: {d.archive_name} missing from the apt cache after download")
        _copy_checked(src, pool / d.archive_name, d, f"{where}: {d.archive_name}")
        debs.append(d)
    _apt_repo_index(stage, spec)
    _sign_repo(stage, apt=True)
    return sorted(f"{d.package}={d.version}" for d in debs)


def _copy_checked(src: Path, dst: Path, deb: Deb, what: str) -> None:
    """Copy from the apt cache, checking the SHA256 and size the signed Packages index gives."""
    h = hashlib.sha256()
    size = 0
    tmp = dst.with_name(dst.name + ".part")
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        while chunk := fi.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
            fo.write(chunk)
    if h.hexdigest() != deb.sha256 or size != deb.size:
        tmp.unlink()
        raise SourceError(f"{what}: sha256 {h.hexdigest()} / {size} bytes do not match the archive index's "
                          f"{deb.sha256} / {deb.size} bytes (delete it from the cache and rebuild)")
    fsync_rename(tmp, dst)


def _apt_repo_index(repo: Path, spec: OsPackages) -> None:
    rel = APT_RELEASES[spec.release]
    packages = _run(["apt-ftparchive", "packages", "pool"], "apt-ftparchive packages", cwd=repo)
    (repo / "Packages").write_text(packages)
    with gzip.GzipFile(repo / "Packages.gz", "wb", mtime=0) as gz:
        gz.write(packages.encode())
    opts = []
    for k, v in (("Origin", "medai"), ("Label", f"medai {spec.release}"), ("Suite", "medai"),
                 ("Codename", rel.codename), ("Architectures", spec.arch), ("Components", ""),
                 ("Description", f"medai bundle OS packages for {spec.release}")):
        opts += ["-o", f"APT::FTPArchive::Release::{k}={v}"]
    release = _run(["apt-ftparchive", *opts, "release", "."], "apt-ftparchive release", cwd=repo)
    (repo / "Release").write_text(release)


# ---------------------------------------------------------------- signing


def _sign_repo(repo: Path, apt: bool) -> str:
    """Sign with a key that exists only for this build. Returns the key fingerprint."""
    with tempfile.TemporaryDirectory(prefix="medai-gnupg-") as home:
        os.chmod(home, 0o700)
        gpg = ["gpg", "--homedir", home, "--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
        _run([*gpg, "--quick-generate-key", KEY_UID, "rsa3072", "sign", "never"], "gpg key generation")
        fpr = ""
        for line in _run([*gpg, "--with-colons", "--list-keys"], "gpg list-keys").splitlines():
            if line.startswith("fpr:"):
                fpr = line.split(":")[9]
                break
        _run([*gpg, "--output", str(repo / "medai-repo.gpg"), "--export", fpr], "gpg export")
        _run([*gpg, "--armor", "--output", str(repo / "medai-repo.asc"), "--export", fpr], "gpg export")
        if apt:
            _run([*gpg, "--digest-algo", "SHA512", "--clearsign", "--output", str(repo / "InRelease"), str(repo / "Release")],
                 "gpg clearsign")
            _run(
                [*gpg, "--digest-algo", "SHA512", "--detach-sign", "--armor", "--output", str(repo / "Release.gpg"), str(repo / "Release")],
                "gpg sign",
            )
        else:
            md = repo / "repodata" / "repomd.xml"
            _run([*gpg, "--digest-algo", "SHA512", "--detach-sign", "--armor", "--output", str(md) + ".asc", str(md)], "gpg sign")
    # the temporary GNUPGHOME (and with it the private key) is gone here
    (repo / "medai-repo.fingerprint").write_text(fpr + "\n")
    return fpr


# ---------------------------------------------------------------- RHEL / Rocky (not executed here)


def dnf_commands(spec: OsPackages, destdir: Path, installroot: Path, extra: list[vendor_repos.CheckedRepository] = ()) -> list[list[str]]:
    """The commands the RHEL/Rocky path runs, in order (tested for their construction only).

    ``--installroot`` on an empty directory makes ``--resolve --alldeps`` download the full closure, as for apt's
    empty dpkg status; ``--releasever`` and ``--forcearch`` select the target, not the staging host.
    """
    arch = RPM_ARCH.get(spec.arch)
    if not arch:
        raise SourceError(f"spec.osPackages[{spec.release}].arch: {spec.arch!r} is not an RPM architecture (amd64/arm64)")
    releasever = RPM_RELEASES[spec.release]
    dnf = [
        "dnf",
        "-y",
        "--quiet",
        f"--releasever={releasever}",
        f"--forcearch={arch}",
        f"--installroot={installroot}",
        "--setopt=install_weak_deps=False",
        "--setopt=reposdir=/etc/yum.repos.d",
    ]
    if spec.mirror:
        dnf += ["--disablerepo=*", f"--repofrompath=medai-mirror,{spec.mirror}", "--enablerepo=medai-mirror"]
    for c in extra:  # signature already checked against the pinned key; dnf checks packages and repomd with it
        n = c.repo.name
        dnf += [
            f"--repofrompath={n},{c.repo.baseurl}",
            f"--enablerepo={n}",
            f"--setopt={n}.gpgcheck=1",
            f"--setopt={n}.repo_gpgcheck=1",
            f"--setopt={n}.gpgkey=file://{c.keyring}",
        ]
    return [
        [
            *dnf,
            "download",
            "--resolve",
            "--alldeps",
            f"--arch={arch},noarch",
            f"--destdir={destdir / 'Packages'}",
            *requested_packages(spec),
        ],
        ["createrepo_c", "--no-database", "--unique-md-filenames", str(destdir)],
    ]


def _build_rpm(spec: OsPackages, stage: Path, cache: Path, log: Log) -> list[str]:
    where = f"spec.osPackages[{spec.release}]"
    if not shutil.which("dnf") or not shutil.which("createrepo_c"):
        raise SourceError(f"{where}: needs dnf and createrepo_c: build RHEL/Rocky repositories on a RHEL/Rocky 9 staging host")
    installroot = cache / "installroot"
    installroot.mkdir(parents=True, exist_ok=True)
    extra = [vendor_repos.check_dnf_repository(spec.release, r, cache / "keyrings") for r in spec.repositories]
    for cmd in dnf_commands(spec, stage, installroot, extra):
        log(f"os/{spec.release}: {' '.join(cmd[:3])} ...")
        _run(cmd, f"{where}: {cmd[0]}")
    _sign_repo(stage, apt=False)
    return sorted(p.name.removesuffix(".rpm") for p in (stage / "Packages").glob("*.rpm"))
