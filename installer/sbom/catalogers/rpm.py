"""RPM: the sqlite rpmdb (rpm >= 4.16; Fedora, RHEL/Rocky 9+, openSUSE) at its two usual paths.

sqlite needs a real file, so this one member (and its -wal, if the image kept one) is spooled to a
private temp directory; the blobs are then parsed as RPM headers. BerkeleyDB (``Packages``) and ndb
(``Packages.db``) databases of older distributions are not read.
"""
from __future__ import annotations

import shutil
import sqlite3
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from packageurl import PackageURL

from installer.core.errors import TrustError
from installer.sbom.catalogers import rpmheader as h
from installer.sbom.package import Distro, Package

DBS = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
_WANTED = {h.NAME, h.VERSION, h.RELEASE, h.EPOCH, h.LICENSE, h.ARCH, h.SOURCERPM, h.VENDOR}


class RpmCataloger:
    name = "rpm"

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._spooled: dict[str, Path] = {}

    def wants(self, path: str, member: tarfile.TarInfo) -> bool:
        return path in DBS or (path.endswith("-wal") and path[:-4] in DBS)

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="medai-rpmdb-")
        db = path[:-4] if path.endswith("-wal") else path
        d = Path(self._tmp.name) / str(DBS.index(db))
        d.mkdir(exist_ok=True)
        target = d / ("rpmdb.sqlite-wal" if path.endswith("-wal") else "rpmdb.sqlite")
        with open(target, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
        if target.name == "rpmdb.sqlite":
            self._spooled[path] = target

    def packages(self, distro: Distro) -> list[Package]:
        out: list[Package] = []
        for path, db in sorted(self._spooled.items()):
            out += self._read_db(path, db, distro)
        return out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _read_db(self, path: str, db: Path, distro: Distro) -> list[Package]:
        namespace = distro.id or "unknown"
        out = []
        try:
            con = sqlite3.connect(db)
            try:
                rows = con.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
            finally:
                con.close()
        except sqlite3.Error as e:
            raise TrustError(f"/{path}: not a readable rpm sqlite database: {e}") from None
        for hnum, blob in rows:
            try:
                tags = h.parse(bytes(blob), _WANTED)
            except h.HeaderError as e:
                raise TrustError(f"/{path}: package header {hnum}: {e}") from None
            name = str(tags.get(h.NAME, ""))
            if not name or name == "gpg-pubkey":  # imported signing keys are stored as pseudo-packages
                continue
            version = f"{tags.get(h.VERSION, '')}-{tags.get(h.RELEASE, '')}"
            qualifiers: dict[str, str] = {}
            if tags.get(h.ARCH):
                qualifiers["arch"] = str(tags[h.ARCH])
            if h.EPOCH in tags:
                qualifiers["epoch"] = str(tags[h.EPOCH])
            if tags.get(h.SOURCERPM):
                qualifiers["upstream"] = str(tags[h.SOURCERPM])
            if distro.qualifier:
                qualifiers["distro"] = distro.qualifier
            shown = f"{tags[h.EPOCH]}:{version}" if h.EPOCH in tags else version
            props = [("medai:rpm:vendor", str(tags[h.VENDOR]))] if tags.get(h.VENDOR) else []
            out.append(Package(name=name, version=shown, location="/" + path, cataloger=self.name,
                               purl=PackageURL("rpm", namespace, name, version, qualifiers or None),
                               licenses=(str(tags[h.LICENSE]),) if tags.get(h.LICENSE) else (),
                               properties=tuple(props)))
        return out
