"""Go binaries: the embedded build info (``\\xff Go buildinf:``), read while the member streams by.

Go >= 1.18 writes the toolchain version and the module info inline after the 32-byte header as
varint-prefixed strings. Older binaries store pointers into the data segment instead; following them
would mean seeking backwards in the layer, so such binaries are counted as unread, not guessed at.
Only executable ELF files are scanned; the scan holds one chunk (plus the build info) in memory.
"""
from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import IO

from packageurl import PackageURL

from installer.sbom.package import Distro, Package

MAGIC = b"\xff Go buildinf:"
ALIGN = 16
HEADER = 32
CHUNK = 1 << 20
MAX_MODINFO = 4 << 20
_BUILD_PROPS = ("GOOS", "GOARCH", "CGO_ENABLED", "vcs.revision", "vcs.time", "vcs.modified")


@dataclass
class BuildInfo:
    go_version: str
    path: str = ""
    main: tuple[str, str] = ("", "")
    deps: list[tuple[str, str, str]] = field(default_factory=list)  # (path, version, replacement note)
    build: dict[str, str] = field(default_factory=dict)


class GoBinaryCataloger:
    name = "go-binary"

    def __init__(self) -> None:
        self._found: list[tuple[str, BuildInfo]] = []
        self.unread_old_format: list[str] = []

    def wants(self, path: str, member: tarfile.TarInfo) -> bool:
        if member.islnk():  # a hardlink has no size of its own; its target is read in a second pass
            return bool(member.mode & 0o111)
        return member.isreg() and bool(member.mode & 0o111) and member.size > 1024

    def read(self, path: str, member: tarfile.TarInfo, f: IO[bytes]) -> None:
        head = f.read(4)
        if head != b"\x7fELF":
            return
        result = scan(f, already=head)
        if result == "old-format":
            self.unread_old_format.append("/" + path)
        elif isinstance(result, BuildInfo):
            self._found.append(("/" + path, result))

    def packages(self, distro: Distro) -> list[Package]:
        out = []
        for location, bi in self._found:
            props = tuple((f"medai:go:build:{k}", v) for k, v in sorted(bi.build.items()) if k in _BUILD_PROPS)
            if bi.main[0]:
                out.append(_module(bi.main[0], bi.main[1], location, "application", props))
            elif bi.path:  # built outside module mode (e.g. distro packages): only the main package path is known
                out.append(_module(bi.path, "", location, "application", props))
            for path, version, replaced in bi.deps:
                extra = (("medai:go:replace", replaced),) if replaced else ()
                out.append(_module(path, version, location, "library", extra))
            toolchain = next((t for t in bi.go_version.split() if t.startswith("go")), bi.go_version)
            out.append(Package(name="stdlib", version=toolchain, location=location, cataloger=self.name,
                               purl=PackageURL("golang", None, "stdlib", toolchain.removeprefix("go") or None)))
        return out


def _module(path: str, version: str, location: str, kind: str, props: tuple) -> Package:
    namespace, _, name = path.rpartition("/")
    purl_version = version if version and version != "(devel)" else None
    return Package(name=path, version=version, location=location, cataloger=GoBinaryCataloger.name, kind=kind,
                   purl=PackageURL("golang", namespace or None, name, purl_version), properties=props)


def scan(f: IO[bytes], already: bytes = b"") -> BuildInfo | str | None:
    """Find and decode the build info blob in a stream; None when the file is not a Go binary."""
    buf = already + f.read(CHUNK)
    base = 0  # file offset of buf[0]
    start = 0
    eof = False
    while True:
        i = buf.find(MAGIC, start)
        if i >= 0:
            if (base + i) % ALIGN == 0:
                buf, base, i = buf[i:], base + i, 0
                while len(buf) < HEADER + 64 * 1024 and not eof:
                    more = f.read(CHUNK)
                    eof = not more
                    buf += more
                result = _decode(buf, f)
                if result is not None:
                    return result
            start = i + 1
            continue
        if eof:
            return None
        keep = len(MAGIC) - 1
        base += len(buf) - keep
        buf = buf[-keep:]
        more = f.read(CHUNK)
        eof = not more
        buf += more
        start = 0


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def _decode(buf: bytes, f: IO[bytes]) -> BuildInfo | str | None:
    if len(buf) < HEADER or buf[14] not in (4, 8):
        return None
    if not buf[15] & 2:
        return "old-format" if buf[15] in (0, 1) else None
    vlen, pos = _uvarint(buf, HEADER)
    if vlen <= 0 or vlen > 256 or pos + vlen > len(buf):
        return None
    version = buf[pos:pos + vlen].decode("utf-8", errors="replace")
    if not (version.startswith("go") or version.startswith("devel")):
        return None
    pos += vlen
    mlen, pos = _uvarint(buf, pos)
    if mlen < 0 or mlen > MAX_MODINFO:
        return None
    while pos + mlen > len(buf):  # a big module list: read exactly what is missing, still bounded
        more = f.read(pos + mlen - len(buf))
        if not more:
            return None
        buf += more
    mod = buf[pos:pos + mlen]
    # 16-byte sentinels frame the module info (cmd/go's infoStart/infoEnd)
    text = mod[16:-16].decode("utf-8", errors="replace") if len(mod) >= 33 and mod[-17:-16] == b"\n" else ""
    return parse_modinfo(version, text)


def parse_modinfo(version: str, text: str) -> BuildInfo:
    bi = BuildInfo(go_version=version)
    last: str | None = None  # which entry a "=>" line replaces
    for line in text.splitlines():
        parts = line.split("\t")
        key = parts[0]
        if key == "path" and len(parts) > 1:
            bi.path = parts[1]
        elif key == "mod" and len(parts) > 2:
            bi.main, last = (parts[1], parts[2]), "mod"
        elif key == "dep" and len(parts) > 2:
            bi.deps.append((parts[1], parts[2], ""))
            last = "dep"
        elif key == "=>" and len(parts) > 1 and last == "dep":
            path, version_ = bi.deps[-1][0], bi.deps[-1][1]
            new_path, new_version = parts[1], parts[2] if len(parts) > 2 else ""
            if new_version and new_version != "(devel)":  # replaced by another module version: that is what ships
                bi.deps[-1] = (new_path, new_version, f"{path}@{version_} => {new_path}@{new_version}")
            else:  # replaced by a local directory: keep the required module and version
                bi.deps[-1] = (path, version_, f"{path}@{version_} => {new_path}")
        elif key == "build" and len(parts) > 1 and "=" in parts[1]:
            k, _, v = parts[1].partition("=")
            bi.build[k] = v
    return bi
