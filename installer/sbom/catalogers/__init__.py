"""One cataloger per package database format; ``all_catalogers`` gives a fresh set for one image."""
from __future__ import annotations

from installer.sbom.catalogers.apk import ApkCataloger
from installer.sbom.catalogers.dpkg import DpkgCataloger
from installer.sbom.catalogers.golang import GoBinaryCataloger
from installer.sbom.catalogers.osrelease import OsReleaseReader
from installer.sbom.catalogers.python import PythonCataloger
from installer.sbom.catalogers.rpm import RpmCataloger


def all_catalogers() -> list:
    return [DpkgCataloger(), ApkCataloger(), RpmCataloger(), PythonCataloger(), GoBinaryCataloger()]


__all__ = ["all_catalogers", "OsReleaseReader"]
