"""Python: installed distributions' *.dist-info/METADATA and *.egg-info/PKG-INFO (or a bare .egg-info file)."""
from __future__ import annotations

import tarfile
from email.parser import HeaderParser
from typing import IO

from packageurl import PackageURL

from installer.sbom.package import Distro, Package, read_small, text


class PythonCataloger:
    name = "python"

    def __init__(self) -> None:
        self._records: list[tuple[str, dict[str, object]]] = []

    def wants(self, path: str, member: tarfile.TarInfo) -> bool:
        return (path.endswith(".dist-info/METADATA") or path.endswith(".egg-info/PKG-INFO")
                or path.endswith(".egg-info"))

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        content = text(read_small(path, member, f))
        head = content.split("\n\n", 1)[0]  # the description body may follow the headers
        msg = HeaderParser().parsestr(head)
        name, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
        if name and version:
            self._records.append((path, {"name": name, "version": version, "licenses": _licenses(msg)}))

    def packages(self, distro: Distro) -> list[Package]:
        out = []
        for path, rec in self._records:
            name, version = str(rec["name"]), str(rec["version"])
            out.append(Package(name=name, version=version, location="/" + path, cataloger=self.name,
                               purl=PackageURL("pypi", None, _purl_name(name), version),
                               licenses=tuple(rec["licenses"])))  # type: ignore[arg-type]
        return out


def _purl_name(name: str) -> str:
    # purl spec for pypi: lower case, '_' replaced by '-'
    return name.lower().replace("_", "-")


def _licenses(msg) -> list[str]:
    expr = (msg.get("License-Expression") or "").strip()
    if expr:
        return [expr]
    lic = (msg.get("License") or "").strip()
    if lic and lic.upper() != "UNKNOWN" and "\n" not in lic and len(lic) <= 200:
        return [lic]
    classifiers = [c.split("::")[-1].strip() for c in msg.get_all("Classifier") or [] if c.startswith("License ::")]
    return sorted({c for c in classifiers if c and c != "OSI Approved"})
