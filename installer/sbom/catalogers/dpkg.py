"""Debian/Ubuntu: var/lib/dpkg/status, and the one-file-per-package var/lib/dpkg/status.d/ of distroless images."""
from __future__ import annotations

import tarfile
from typing import IO

from packageurl import PackageURL

from installer.sbom.package import Distro, Package, read_small, text

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
# dpkg keeps removed packages' config files in status as "deinstall ok config-files"
NOT_INSTALLED = {"not-installed", "config-files"}


class DpkgCataloger:
    name = "dpkg"

    def __init__(self) -> None:
        self._records: list[tuple[str, dict[str, str]]] = []

    def wants(self, path: str, member: tarfile.TarInfo) -> bool:
        if path == STATUS:
            return True
        return path.startswith(STATUS_D) and "/" not in path[len(STATUS_D):] and not path.endswith(".md5sums")

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        for rec in paragraphs(text(read_small(path, member, f))):
            status = rec.get("Status", "install ok installed").split()
            if rec.get("Package") and rec.get("Version") and (not status or status[-1] not in NOT_INSTALLED):
                self._records.append((path, rec))

    def packages(self, distro: Distro) -> list[Package]:
        namespace = distro.id if distro.id in ("debian", "ubuntu") else (distro.id or "debian")
        out = []
        for path, rec in self._records:
            name, version, arch = rec["Package"], rec["Version"], rec.get("Architecture", "")
            qualifiers = {}
            if arch:
                qualifiers["arch"] = arch
            source = rec.get("Source", "").split(" ")[0]
            if source and source != name:
                qualifiers["upstream"] = source
            if distro.qualifier:
                qualifiers["distro"] = distro.qualifier
            props = [("medai:dpkg:source", rec["Source"])] if rec.get("Source") else []
            out.append(Package(name=name, version=version, location="/" + path, cataloger=self.name,
                               purl=PackageURL("deb", namespace, name, version, qualifiers or None),
                               properties=tuple(props)))
        return out


def paragraphs(content: str) -> list[dict[str, str]]:
    """RFC 822-style stanzas separated by blank lines; continuation lines are appended to the field."""
    out: list[dict[str, str]] = []
    rec: dict[str, str] = {}
    key = ""
    for line in content.splitlines():
        if not line.strip():
            if rec:
                out.append(rec)
            rec, key = {}, ""
        elif line[0] in " \t":
            if key:
                rec[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            rec[key] = value.strip()
    if rec:
        out.append(rec)
    return out
