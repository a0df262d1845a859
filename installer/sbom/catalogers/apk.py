"""Alpine: lib/apk/db/installed (one-letter keys, blank-line separated records)."""
from __future__ import annotations

import tarfile
from typing import IO

from packageurl import PackageURL

from installer.sbom.package import Distro, Package, read_small, text

PATHS = ("lib/apk/db/installed", "usr/lib/apk/db/installed")


class ApkCataloger:
    name = "apk"

    def __init__(self) -> None:
        self._records: list[tuple[str, dict[str, str]]] = []

    def wants(self, path: str, member: tarfile.TarInfo) -> bool:
        return path in PATHS

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        rec: dict[str, str] = {}
        for line in text(read_small(path, member, f)).splitlines() + [""]:
            if not line.strip():
                if rec.get("P") and rec.get("V"):
                    self._records.append((path, rec))
                rec = {}
            elif len(line) > 1 and line[1] == ":" and line[0] not in rec:
                # file lists (F:/R:/Z:) repeat keys; the package fields come first and only once
                rec[line[0]] = line[2:]

    def packages(self, distro: Distro) -> list[Package]:
        namespace = distro.id or "alpine"
        out = []
        for path, rec in self._records:
            qualifiers = {}
            if rec.get("A"):
                qualifiers["arch"] = rec["A"]
            if rec.get("o") and rec["o"] != rec["P"]:
                qualifiers["upstream"] = rec["o"]
            if distro.qualifier:
                qualifiers["distro"] = distro.qualifier
            out.append(Package(name=rec["P"], version=rec["V"], location="/" + path, cataloger=self.name,
                               purl=PackageURL("apk", namespace, rec["P"], rec["V"], qualifiers or None),
                               licenses=(rec["L"],) if rec.get("L") else ()))
        return out
