"""etc/os-release (or usr/lib/os-release, which it usually links to): the distro for purl qualifiers."""
from __future__ import annotations

import shlex
import tarfile
from typing import IO

from installer.sbom.package import Distro, read_small, text

PATHS = ("etc/os-release", "usr/lib/os-release")


class OsReleaseReader:
    name = "os-release"

    def __init__(self) -> None:
        self._found: dict[str, dict[str, str]] = {}

    def wants(self, path: str, member: tarfile.TarInfo) -> bool:
        return path in PATHS

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        self._found[path] = parse(text(read_small(path, member, f)))

    def distro(self) -> Distro:
        for p in PATHS:  # etc/ wins when it is a real file; a symlink there is never "read"
            if p in self._found:
                d = self._found[p]
                return Distro(id=d.get("ID", "").lower(), version_id=d.get("VERSION_ID", ""),
                              name=d.get("NAME", ""), pretty_name=d.get("PRETTY_NAME", ""))
        return Distro()


def parse(content: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in content.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        out[key.strip()] = parts[0] if parts else ""
    return out
