"""Test images for the SBOM tests, written as one OCI layout the way a bundle holds them.

Real package databases: a dpkg status, an apk installed db, an rpmdb.sqlite made by `rpmbuild` + `rpm --justdb`,
Python dist-info / egg-info metadata, and a Go binary compiled here by `go build` with a replaced local module.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from tests.support.oci_layout import LayoutWriter, file, hardlink, opaque, symlink, whiteout

OS_RELEASE_DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
OS_RELEASE_ALPINE = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME="Alpine Linux v3.18"\n'
OS_RELEASE_ROCKY = 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nVERSION_ID="9.3"\n'

DPKG_STATUS_V1 = """\
Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1
Description: basic utilities from 4.4BSD-Lite

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 0.9-1
Description: removed, only its conffiles remain
"""
# the upper layer's status replaces the lower one: libc6 upgraded, curl added, bsdutils removed
DPKG_STATUS_V2 = DPKG_STATUS_V1.replace("Version: 2.36-9+deb12u4", "Version: 2.36-9+deb12u7").replace(
    """Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1
Description: basic utilities from 4.4BSD-Lite
""",
    """Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1
Description: basic utilities from 4.4BSD-Lite

Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u5
Description: command line tool for transferring data with URL syntax
""")

APK_INSTALLED = """\
C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
F:lib
R:libc.musl-x86_64.so.1

C:Q1def=
P:busybox
V:1.36.1-r5
A:x86_64
L:GPL-2.0-only
o:busybox
F:bin
R:busybox

C:Q1ghi=
P:ssl_client
V:1.36.1-r5
A:x86_64
L:GPL-2.0-only
o:busybox
"""


def metadata(name: str, version: str, license_: str | None = None, body: str = "") -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "Summary: test"]
    if license_:
        lines.append(f"License: {license_}")
    return "\n".join(lines) + "\n\n" + body


def build_go_binary(work: Path) -> bytes:
    """A real Go binary: main module example.com/medaihello requiring example.com/greet v1.2.3, replaced by ./greet."""
    src = work / "src"
    (src / "greet").mkdir(parents=True)
    (src / "go.mod").write_text("module example.com/medaihello\n\ngo 1.19\n\nrequire example.com/greet v1.2.3\n\n"
                                "replace example.com/greet => ./greet\n")
    (src / "greet" / "go.mod").write_text("module example.com/greet\n\ngo 1.19\n")
    (src / "greet" / "greet.go").write_text('package greet\n\nfunc Hello() string { return "hello" }\n')
    (src / "main.go").write_text('package main\n\nimport (\n\t"os"\n\n\t"example.com/greet"\n)\n\n'
                                 'func main() { os.Stdout.WriteString(greet.Hello() + "\\n") }\n')
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOSUMDB": "off",
           "GOCACHE": str(work / "gocache"), "GOPATH": str(work / "gopath"), "CGO_ENABLED": "0", "HOME": str(work)}
    subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(work / "hello"), "."],
                   cwd=src, env=env, check=True, capture_output=True, timeout=300)
    return (work / "hello").read_bytes()


def go_version() -> str:
    out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True,
                         env={**os.environ, "GOTOOLCHAIN": "local"}).stdout.strip()
    return out


SPEC = """\
Name: {name}
Version: {version}
Release: {release}
{epoch}Summary: medai SBOM test package
License: {license}
BuildArch: noarch
%description
test package for the SBOM cataloger
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo hi > %{{buildroot}}/usr/share/{name}/hi
%files
/usr/share/{name}/hi
"""


def build_rpmdb(work: Path) -> bytes:
    """A real rpmdb.sqlite: two noarch packages built by rpmbuild and registered with `rpm --justdb`."""
    work.mkdir(parents=True, exist_ok=True)
    for name, version, release, epoch, license_ in (("medai-hello", "1.2.3", "4", "2", "MIT"),
                                                     ("medai-other", "0.5", "1.el9", None, "GPLv2+")):
        spec = work / f"{name}.spec"
        spec.write_text(SPEC.format(name=name, version=version, release=release, license=license_,
                                    epoch=f"Epoch: {epoch}\n" if epoch else ""))
        subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {work / 'top'}", str(spec)],
                       check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(work)})
    rpms = sorted(str(p) for p in (work / "top" / "RPMS" / "noarch").glob("*.rpm"))
    root = work / "root"
    root.mkdir()
    subprocess.run(["rpm", "--root", str(root), "--dbpath", "/usr/lib/sysimage/rpm", "--nodeps", "--justdb",
                    "-i", *rpms], check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(work)})
    return (root / "usr/lib/sysimage/rpm/rpmdb.sqlite").read_bytes()


@dataclass
class SbomTestImages:
    oci: Path
    images: list  # SimpleNamespace(ref, digest)
    debian: str
    alpine: str
    rocky: str
    multi: str
    go_version: str


def build_layout(oci: Path, work: Path) -> SbomTestImages:
    w = LayoutWriter(oci)
    go_bin = build_go_binary(work / "go")
    rpmdb = build_rpmdb(work / "rpm")
    pyd = "usr/lib/python3/dist-packages"

    # Debian: three layers (gzip, zstd, plain tar) exercising shadowing, whiteouts and an opaque directory
    base = w.layer([
        file("usr/lib/os-release", OS_RELEASE_DEBIAN), symlink("etc/os-release", "../usr/lib/os-release"),
        file("var/lib/dpkg/status", DPKG_STATUS_V1),
        file(f"{pyd}/requests-2.31.0.dist-info/METADATA", metadata("requests", "2.31.0", "Apache 2.0")),
        file(f"{pyd}/urllib3-2.0.7.dist-info/METADATA", metadata("urllib3", "2.0.7")),
        file(f"{pyd}/idna-3.4.dist-info/METADATA", metadata("idna", "3.4")),
        file(f"{pyd}/Typing_Extensions-4.8.0.dist-info/METADATA", metadata("Typing_Extensions", "4.8.0", "PSF-2.0")),
        file(f"{pyd}/six-1.16.0.egg-info/PKG-INFO", metadata("six", "1.16.0", "MIT")),
        file(f"{pyd}/chardet-5.1.0.egg-info", metadata("chardet", "5.1.0")),
        file("opt/app/lib/python/foo-1.0.dist-info/METADATA", metadata("foo", "1.0")),
        file("usr/local/bin/hello", go_bin, 0o755),
        hardlink("usr/bin/hello-link", "usr/local/bin/hello", 0o755),
        file("usr/bin/not-go", b"\x7fELF" + b"\0" * 4096, 0o755),
    ], "gzip")
    middle = w.layer([
        file("var/lib/dpkg/status", DPKG_STATUS_V2),
        whiteout(f"{pyd}/urllib3-2.0.7.dist-info"),
        opaque("opt/app/lib"),
        file("opt/app/lib/python/bar-2.0.dist-info/METADATA", metadata("bar", "2.0")),
    ], "zstd")
    top = w.layer([whiteout(f"{pyd}/idna-3.4.dist-info")], "tar")
    debian = w.image([base, middle, top], tag="registry.example:5000/medai/debian-app:1.0")

    alpine = w.image([w.layer([file("etc/os-release", OS_RELEASE_ALPINE),
                               file("lib/apk/db/installed", APK_INSTALLED)])], created="2024-02-03T04:05:06.123456789Z")

    rocky = w.image([w.layer([
        file("etc/os-release", OS_RELEASE_ROCKY),
        file("usr/lib/sysimage/rpm/rpmdb.sqlite", rpmdb),
        symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm"),
    ])], created=None)

    # multi-platform index: both manifests present, plus a BuildKit SPDX attestation for amd64
    amd = w.image([w.layer([file("etc/os-release", OS_RELEASE_ALPINE), file("lib/apk/db/installed", APK_INSTALLED)])])
    arm_db = APK_INSTALLED.replace("A:x86_64", "A:aarch64")
    arm = w.image([w.layer([file("etc/os-release", OS_RELEASE_ALPINE), file("lib/apk/db/installed", arm_db)])],
                  arch="arm64")
    statement = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://spdx.dev/Document",
                 "subject": [{"name": "x", "digest": {"sha256": amd["digest"][7:]}}],
                 "predicate": {"spdxVersion": "SPDX-2.3", "name": "buildkit-sbom", "packages": []}}
    att_layer = w.json_blob(statement, "application/vnd.in-toto+json",
                            annotations={"in-toto.io/predicate-type": "https://spdx.dev/Document"})
    att_cfg = w.json_blob({}, "application/vnd.oci.image.config.v1+json")
    att = w.json_blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": att_cfg, "layers": [att_layer]}, "application/vnd.oci.image.manifest.v1+json")
    multi = w.image_index([
        {**amd, "platform": {"os": "linux", "architecture": "amd64"}},
        {**arm, "platform": {"os": "linux", "architecture": "arm64"}},
        {**att, "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": amd["digest"]}},
    ])

    # upstream SBOMs attached to the Debian image: a cosign `attach sbom` tag, an OCI 1.1 referrer,
    # and a cosign attestation (DSSE in-toto) with a CycloneDX predicate
    hexd = debian["digest"][7:]
    cdx_upstream = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
                               "metadata": {"component": {"type": "container", "name": "upstream"}}}).encode()
    sbom_layer = w.blob(cdx_upstream, "application/vnd.cyclonedx+json")
    empty = w.blob(b"{}", "application/vnd.oci.empty.v1+json")
    w.add_to_index(w.json_blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": empty, "layers": [sbom_layer]},
                               "application/vnd.oci.image.manifest.v1+json"),
                   f"registry.example:5000/medai/debian-app:sha256-{hexd}.sbom")
    spdx = w.blob(b'{"spdxVersion":"SPDX-2.3","name":"referrer-sbom"}', "application/spdx+json")
    w.add_to_index(w.json_blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "artifactType": "application/spdx+json", "config": empty, "layers": [spdx],
                                "subject": debian}, "application/vnd.oci.image.manifest.v1+json"))
    payload = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://cyclonedx.org/bom",
               "subject": [], "predicate": {"bomFormat": "CycloneDX", "specVersion": "1.4", "name": "attested"}}
    envelope = {"payloadType": "application/vnd.in-toto+json", "signatures": [{"keyid": "", "sig": "AAAA"}],
                "payload": base64.b64encode(json.dumps(payload).encode()).decode()}
    dsse = w.json_blob(envelope, "application/vnd.dsse.envelope.v1+json")
    w.add_to_index(w.json_blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": empty, "layers": [dsse]}, "application/vnd.oci.image.manifest.v1+json"),
                   f"registry.example:5000/medai/debian-app:sha256-{hexd}.att")

    images = [
        SimpleNamespace(ref="registry.example:5000/medai/debian-app:1.0", digest=debian["digest"]),
        SimpleNamespace(ref="docker.io/library/alpine:3.18", digest=alpine["digest"]),
        SimpleNamespace(ref="quay.io/rocky/rocky:9.3", digest=rocky["digest"]),
        SimpleNamespace(ref="registry.example:5000/medai/multi:2.0", digest=multi["digest"]),
    ]
    return SbomTestImages(oci=oci, images=images, debian=debian["digest"], alpine=alpine["digest"],
                      rocky=rocky["digest"], multi=multi["digest"], go_version=go_version())


