"""Fetch Helm chart archives (HTTP Helm repositories and oci:// charts) into the bundle's charts/ folder, or
package the project's own chart directories (``path:``) with `helm package`.

Helm itself does the fetching (`helm pull`, through pyhelm3's command runner), so repository indexes, OCI
registries and helm's own credentials behave exactly as they do for the operator. The archive lands in the
bundle's .tmp/ first and is renamed to charts/<name>-<version>.tgz only after it was hashed (and, with a
lock, matched the locked sha256).
"""
from __future__ import annotations

import ipaddress
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

from installer.bundle.layout import archive_name
from installer.bundle.manifest import Chart
from installer.core.errors import LockDriftError, SourceError
from installer.core.hashing import fsync_rename, sha256_file
from installer.core.helm import run_helm

# pyhelm3 logs every failed helm command as a warning; medai reports the failure itself, on one line.
logging.getLogger("pyhelm3").setLevel(logging.ERROR)


@dataclass
class ChartResult:
    name: str
    version: str
    path: Path  # charts/<name>-<version>.tgz inside the bundle
    sha256: str
    size: int
    fetched: bool  # False when an archive already present (and matching the lock) was reused
    lock_sha256: str = ""  # what the lock records: the archive's sha256, for a local chart its source tree's

    def __post_init__(self):
        self.lock_sha256 = self.lock_sha256 or self.sha256


def is_loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _pull_args(chart: Chart, dest: Path) -> list[str]:
    if chart.repo.startswith("oci://"):
        # oci://host/path is the repository; the chart is oci://host/path/<name>
        ref = f"{chart.repo}/{chart.name}"
        args = ["pull", ref, "--version", chart.version, "--destination", str(dest)]
        if is_loopback_host(urlparse(chart.repo).netloc):
            args.append("--plain-http")  # as docker and containerd allow for loopback registries
        return args
    return ["pull", chart.name, "--repo", chart.repo, "--version", chart.version, "--destination", str(dest)]


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "helm failed").removeprefix("Error: ")


def tree_sha256(directory: Path) -> str:
    """sha256 over the chart directory's files (relative path and content): `helm package` stamps times into the
    archive, so the lock pins the source a local chart was packaged from."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(directory).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def package_chart(chart: Chart, base_dir: Path, charts_dir: Path, tmp_dir: Path, locked_sha256: str | None = None,
                  enforce_lock: bool = False) -> ChartResult:
    """charts/<name>-<version>.tgz from the project's chart directory, packaged each build (small); the
    directory's Chart.yaml must name the manifest's name and version."""

    src = (base_dir / chart.path).resolve()
    label = f"chart {chart.name} {chart.version} from {src}"
    meta = src / "Chart.yaml"
    if not meta.is_file():
        raise SourceError(f"{label}: no Chart.yaml there")
    declared = yaml.safe_load(meta.read_text()) or {}
    if (str(declared.get("name")), str(declared.get("version"))) != (chart.name, chart.version):
        raise SourceError(f"{meta}: declares {declared.get('name')} {declared.get('version')}, the manifest "
                          f"{chart.name} {chart.version}")
    tree = tree_sha256(src)
    if enforce_lock and tree != locked_sha256:
        raise LockDriftError(f"{label}: source tree sha256 {tree} differs from the lock's {locked_sha256 or 'none'}")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"chart-{chart.name}-", dir=tmp_dir))
    try:
        try:
            run_helm(["package", str(src), "--destination", str(work)])
        except Exception as e:
            raise SourceError(f"{label}: cannot package: {_one_line(str(e))}") from None
        got = work / archive_name(chart)
        if not got.is_file():
            raise SourceError(f"{label}: helm package did not write {got.name}")
        sha, size = sha256_file(got), got.stat().st_size
        final = charts_dir / archive_name(chart)
        charts_dir.mkdir(parents=True, exist_ok=True)
        fsync_rename(got, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ChartResult(chart.name, chart.version, final, sha, size, fetched=True, lock_sha256=tree)


def fetch_chart(chart: Chart, charts_dir: Path, tmp_dir: Path, locked_sha256: str | None = None,
                enforce_lock: bool = False, base_dir: Path | None = None) -> ChartResult:
    """Make charts/<name>-<version>.tgz present and checked; fetch it only when missing or not as locked.

    enforce_lock: the archive must hash to locked_sha256 (``--locked``), otherwise LockDriftError.
    base_dir: where a local chart's ``path`` is resolved from (the manifest's directory).
    """
    if chart.path is not None:
        return package_chart(chart, base_dir or Path.cwd(), charts_dir, tmp_dir, locked_sha256, enforce_lock)
    final = charts_dir / archive_name(chart)
    label = f"chart {chart.name} {chart.version} from {chart.repo}"
    if enforce_lock and not locked_sha256:
        raise LockDriftError(f"{label}: not in the lock file (rebuild without --locked to add it)")

    if final.is_file() and locked_sha256:
        sha = sha256_file(final)
        if sha == locked_sha256:
            return ChartResult(chart.name, chart.version, final, sha, final.stat().st_size, fetched=False)

    tmp_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"chart-{chart.name}-", dir=tmp_dir))
    try:
        try:
            run_helm(_pull_args(chart, work))
        except Exception as e:  # pyhelm3.errors.Error and its subclasses carry helm's stderr
            detail = _one_line(str(e))
            raise SourceError(f"{label}: cannot fetch: {detail}") from None
        got = sorted(work.glob("*.tgz"))
        if len(got) != 1:
            raise SourceError(f"{label}: helm pull produced {len(got)} archives, expected one")
        sha = sha256_file(got[0])
        if enforce_lock and sha != locked_sha256:
            raise LockDriftError(f"{label}: archive sha256 {sha} differs from the lock's {locked_sha256}")
        size = got[0].stat().st_size
        fsync_rename(got[0], final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ChartResult(chart.name, chart.version, final, sha, size, fetched=True)
