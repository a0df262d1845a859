"""Extra (vendor) OS package repositories, e.g. NVIDIA's container toolkit: trusted only through a pinned key.

Before apt or dnf resolves anything from such a repository, the build

1. fetches the repository's signing key (``key``: URL or path) and refuses unless it holds a primary key whose
   full fingerprint is exactly the pinned ``fingerprint``; only that key goes into the keyring written;
2. fetches the repository's signed index (apt: ``InRelease``, or ``Release`` + ``Release.gpg``; dnf:
   ``repodata/repomd.xml`` + ``repomd.xml.asc``) and checks it with ``gpgv`` against that one-key keyring, and
   refuses unless gpgv reports a good signature (VALIDSIG) whose primary key is the pinned fingerprint.

apt then reads the repository with ``Signed-By:`` that keyring, so every index it fetches afterwards is checked
against the same key again. The packages end up in the bundle's own signed repository; the vendor key never
goes behind the gap.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from installer.bundle.manifest import OsRepository
from installer.core.childenv import child_env
from installer.core.errors import SourceError


@dataclass(frozen=True)
class CheckedRepository:
    repo: OsRepository
    keyring: Path        # binary keyring holding only the pinned key
    index_url: str       # the signed index that was checked


def where(release: str, repo: OsRepository) -> str:
    return f"spec.osPackages[{release}].repositories[{repo.name}]"


def fetch_bytes(url: str, what: str) -> bytes:
    """http(s)://, file:// or an absolute path. A 404 is reported as such (callers may try an alternative)."""
    if url.startswith("file://") or url.startswith("/"):
        path = Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise _NotFound(f"{what}: {path} not found") from None
        except OSError as e:
            raise SourceError(f"{what}: cannot read {path}: {e.strerror}") from None
    try:
        resp = httpx.get(url, follow_redirects=True, trust_env=True, timeout=httpx.Timeout(60, connect=15))
    except httpx.HTTPError as e:
        raise SourceError(f"{what}: cannot fetch {url}: {e or type(e).__name__}") from None
    if resp.status_code == 404:
        raise _NotFound(f"{what}: not found at {url} (HTTP 404)")
    if resp.status_code >= 400:
        raise SourceError(f"{what}: {url} answered HTTP {resp.status_code}")
    return resp.content


class _NotFound(SourceError):
    pass


def _gpg(home: str, *args: str, what: str, stdin: bytes | None = None) -> str:
    try:
        res = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", "--quiet", *args],
                             input=stdin, capture_output=True, env=child_env())
    except FileNotFoundError:
        raise SourceError(f"{what}: gpg not found on this host (apt-get install gnupg)") from None
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip().splitlines()
        raise SourceError(f"{what}: gpg failed: {err[-1] if err else f'exit {res.returncode}'}")
    return res.stdout.decode(errors="replace")


def primary_fingerprints(colons: str) -> list[str]:
    """Primary-key fingerprints from ``gpg --with-colons`` output (the fpr line right after each pub line)."""
    out, after_pub = [], False
    for line in colons.splitlines():
        kind = line.split(":", 1)[0]
        if kind == "pub":
            after_pub = True
        elif kind == "fpr" and after_pub:
            out.append(line.split(":")[9].upper())
            after_pub = False
        elif kind in ("sub", "uid"):
            after_pub = False
    return out


def pinned_keyring(key_data: bytes, fingerprint: str, dest: Path, what: str) -> Path:
    """Write a binary keyring at dest holding only the key whose primary fingerprint is ``fingerprint``."""
    with tempfile.TemporaryDirectory(prefix="medai-vendor-gnupg-") as home:
        os.chmod(home, 0o700)
        _gpg(home, "--import", what=f"{what}.key", stdin=key_data)
        found = primary_fingerprints(_gpg(home, "--with-colons", "--list-keys", what=f"{what}.key"))
        if fingerprint not in found:
            raise SourceError(f"{what}.fingerprint: the key fetched holds {', '.join(found) or 'no key'}, "
                              f"not the pinned {fingerprint}: refusing the repository")
        exported = subprocess.run(["gpg", "--homedir", home, "--batch", "--export", fingerprint],
                                  capture_output=True, check=True, env=child_env()).stdout
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(exported)
    dest.chmod(0o644)  # apt's unprivileged _apt user reads it
    return dest


def check_signature(keyring: Path, fingerprint: str, data: bytes, signature: bytes | None, what: str) -> None:
    """gpgv over data (clear-signed when signature is None); a good signature by the pinned primary key or raise."""
    with tempfile.TemporaryDirectory(prefix="medai-gpgv-") as d:
        data_p = Path(d) / "data"
        data_p.write_bytes(data)
        cmd = ["gpgv", "--status-fd", "1", "--keyring", str(keyring)]
        if signature is not None:
            sig_p = Path(d) / "data.sig"
            sig_p.write_bytes(signature)
            cmd.append(str(sig_p))
        cmd.append(str(data_p))
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        except FileNotFoundError:
            raise SourceError(f"{what}: gpgv not found on this host (apt-get install gpgv)") from None
    # VALIDSIG <sig-key-fpr> <date> <ts> <expire> <ver> <rsv> <pk-algo> <hash-algo> <class> <primary-fpr>
    valid = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("[GNUPG:] VALIDSIG ")]
    if res.returncode != 0 or not valid:
        reason = next((ln.split(None, 2)[1] for ln in res.stdout.splitlines()
                       if ln.split()[1:2] and ln.split()[1] in ("BADSIG", "ERRSIG", "NO_PUBKEY", "NODATA")), "")
        raise SourceError(f"{what}: signature check failed{f' ({reason})' if reason else ''}: not signed by "
                          f"the pinned key {fingerprint}, or altered: refusing the repository")
    primaries = {v[-1].upper() for v in valid}
    if primaries != {fingerprint}:
        raise SourceError(f"{what}: signed by {', '.join(sorted(primaries))}, not the pinned {fingerprint}")


def apt_index_base(repo: OsRepository) -> str:
    """Directory URL holding InRelease: URL/dists/SUITE/ or, for a flat repository (suite ending in '/'), URL/SUITE."""
    suite = repo.suite or ""
    if suite.endswith("/"):
        flat = suite.strip("/")
        return f"{repo.url}/{flat}/" if flat not in ("", ".") else f"{repo.url}/"
    return f"{repo.url}/dists/{suite}/"


def check_apt_repository(release: str, repo: OsRepository, keyring_dir: Path) -> CheckedRepository:
    what = where(release, repo)
    if not repo.url or not repo.suite:
        raise SourceError(f"{what}: an apt repository needs url and suite")
    keyring = pinned_keyring(fetch_bytes(repo.key, f"{what}.key"), repo.fingerprint, keyring_dir / f"{repo.name}.gpg", what)
    base = apt_index_base(repo)
    try:
        data = fetch_bytes(base + "InRelease", f"{what}: InRelease")
        check_signature(keyring, repo.fingerprint, data, None, f"{what}: {base}InRelease")
        return CheckedRepository(repo, keyring, base + "InRelease")
    except _NotFound:
        pass
    data = fetch_bytes(base + "Release", f"{what}: Release")
    sig = fetch_bytes(base + "Release.gpg", f"{what}: Release.gpg")
    check_signature(keyring, repo.fingerprint, data, sig, f"{what}: {base}Release")
    return CheckedRepository(repo, keyring, base + "Release")


def check_dnf_repository(release: str, repo: OsRepository, keyring_dir: Path) -> CheckedRepository:
    what = where(release, repo)
    if not repo.baseurl:
        raise SourceError(f"{what}: a dnf repository needs baseurl")
    keyring = pinned_keyring(fetch_bytes(repo.key, f"{what}.key"), repo.fingerprint, keyring_dir / f"{repo.name}.gpg", what)
    md = f"{repo.baseurl}/repodata/repomd.xml"
    check_signature(keyring, repo.fingerprint, fetch_bytes(md, f"{what}: repomd.xml"),
                    fetch_bytes(md + ".asc", f"{what}: repomd.xml.asc"), f"{what}: {md}")
    return CheckedRepository(repo, keyring, md)


def apt_source_stanza(checked: CheckedRepository, arch: str) -> str:
    """deb822 stanza for the private apt root: the repository signed by its pinned one-key keyring only."""
    r = checked.repo
    suite = r.suite or ""
    lines = ["Types: deb", f"URIs: {r.url}", f"Suites: {suite}"]
    if not suite.endswith("/"):
        lines.append(f"Components: {' '.join(r.components)}")
    lines += [f"Architectures: {arch}", f"Signed-By: {checked.keyring}"]
    return "\n".join(lines) + "\n"
