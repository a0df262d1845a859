"""What catalogers find: packages with purls, and the distribution they were found in."""
from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import IO, Protocol

from packageurl import PackageURL

from installer.core.errors import TrustError

# Metadata files are read whole; a dpkg status of a large image is a few MiB.
MAX_METADATA = 64 * 1024 * 1024


@dataclass(frozen=True)
class Distro:
    id: str = ""
    version_id: str = ""
    name: str = ""
    pretty_name: str = ""

    @property
    def qualifier(self) -> str:
        """purl ``distro`` qualifier: debian-12, alpine-3.19.1, rocky-9.3."""
        return f"{self.id}-{self.version_id}" if self.id and self.version_id else self.id


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    purl: PackageURL
    location: str  # path in the image the package was read from
    cataloger: str
    kind: str = "library"  # CycloneDX component type
    licenses: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = field(default=())

    @property
    def sort_key(self) -> tuple:
        return (self.purl.to_string(), self.location, self.name, self.version)


class Cataloger(Protocol):
    name: str

    def wants(self, path: str, member: tarfile.TarInfo) -> bool: ...

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None: ...

    def packages(self, distro: Distro) -> list[Package]: ...


def read_small(path: str, member: tarfile.TarInfo, f: IO[bytes]) -> bytes:
    if member.size > MAX_METADATA:
        raise TrustError(f"{path}: {member.size} bytes, larger than the {MAX_METADATA} bytes a package database may have")
    # read exactly the member's size: read(n) on a buffered stream allocates n bytes up front
    return f.read(member.size)


def text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
