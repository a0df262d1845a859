"""What each host needs from the bundle, worked out from index.json on the control host.

The plan is handed to Ansible as extravars: ``medai_stage_files`` (one entry per file: src on the control
host, dest under the host's stage directory, sha256, size, inventory groups, OS release where it matters) and
the K3s facts the k3s role acts on. Whether K3s is started is decided here, from the bundle's metadata: only a
bundle that carries a file artifact named ``k3s`` holds a K3s binary.
"""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from installer.bundle.artifacts import Artifact, BundleIndex
from installer.bundle.private_copy import safe_relpath
from installer.core.errors import BundleError
from installer.core.hashing import fsync_rename, sha256_file

K3S_BINARY = "k3s"
K3S_INSTALL_SCRIPTS = ("k3s-install.sh", "install.sh")
K3S_AIRGAP_PREFIX = "k3s-airgap-images"
PLATFORM_IMAGES = "images/medai-platform-images.tar"
RELEASE = re.compile(r"[a-z0-9][a-z0-9.-]{0,31}")
# Artifact kinds a node needs on disk (default groups when the artifact names none). Images travel as one OCI
# archive; charts and SBOMs stay on the control host; OS repositories (ospkgs) are copied by the os role.
STAGED_KINDS = {"file": ["all"], "model": ["gpu"]}


@dataclass
class StagePlan:
    files: list[dict] = field(default_factory=list)
    k3s_binary: str | None = None
    k3s_install_script: str | None = None
    k3s_airgap_images: list[str] = field(default_factory=list)
    platform_images: str | None = None

    @property
    def k3s_present(self) -> bool:
        return self.k3s_binary is not None

    def extravars(self) -> dict:
        return {
            "medai_stage_files": self.files,
            "medai_k3s_present": self.k3s_present,
            "medai_k3s_binary_src": self.k3s_binary,
            "medai_k3s_install_script_src": self.k3s_install_script,
            "medai_k3s_airgap_images": self.k3s_airgap_images,
            "medai_k3s_platform_images": self.platform_images,
        }


def _groups(artifact: Artifact) -> list[str]:
    groups = artifact.neededBy or artifact.meta.get("hosts")
    return list(groups) if groups else list(STAGED_KINDS[artifact.kind])


def build_plan(index: dict, root: Path, cache: Path, index_sha256: str) -> StagePlan:
    """The stage plan from the VERIFIED index (installer.deploy.working_copy), never re-read from disk.

    ``root`` is the private working copy the files were checked into; every src lies inside it and every dest
    is a normalised relative path (refused otherwise), so the stage role can only write below its directory.
    """
    root = Path(root)
    sizes = {f["path"]: f for f in index["files"]}
    plan = StagePlan()
    for a in BundleIndex.of(index).artifacts():
        kind = a.kind
        if kind not in STAGED_KINDS:
            continue
        release = a.meta.get("release")
        if release is not None and not (isinstance(release, str) and RELEASE.fullmatch(release)):
            raise BundleError(f"index.json: artifact {kind} {a.name}: release {release!r} is not a release name: refused")
        for rel in a.paths:
            rel = safe_relpath(rel if isinstance(rel, str) else "", f"index.json: artifact {kind} {a.name}: path")
            entry = sizes.get(rel)
            if entry is None:
                raise BundleError(f"index.json: artifact {kind} {a.name}: {rel} is not in files[]")
            plan.files.append({
                "name": a.name, "kind": kind, "src": str(root / rel), "dest": rel,
                "sha256": entry["sha256"], "size": entry["size"], "groups": _groups(a), "release": release,
            })
        if kind == "file":
            name = a.name if isinstance(a.name, str) else ""
            if not isinstance(a.path, str) or a.path not in a.paths:
                raise BundleError(f"index.json: artifact file {name}: path {a.path!r} is not one of its paths: refused")
            if name == K3S_BINARY:
                plan.k3s_binary = a.path
            elif name in K3S_INSTALL_SCRIPTS:
                plan.k3s_install_script = a.path
            elif name.startswith(K3S_AIRGAP_PREFIX):
                plan.k3s_airgap_images.append(a.path)
    archive = platform_images_archive(root, index, cache, index_sha256)
    if archive is not None:
        plan.platform_images = PLATFORM_IMAGES
        plan.files.append({
            "name": "platform-images", "kind": "images", "src": str(archive), "dest": PLATFORM_IMAGES,
            "sha256": sha256_file(archive), "size": archive.stat().st_size, "groups": ["all"], "release": None,
        })
    return plan


def platform_images_archive(root: Path, index: dict, cache: Path, index_sha256: str) -> Path | None:
    """The bundle's OCI layout as one uncompressed OCI archive that K3s imports from its airgap images directory.

    Built once per bundle (named by the index digest), deterministically (sorted, fixed owner and mtime), from
    exactly the oci/ files the verified index lists (read from the working copy), streamed file by file.
    """
    members = sorted(f["path"] for f in index["files"] if f["path"].startswith("oci/"))
    if "oci/index.json" not in members:
        return None
    out = cache / f"platform-images-{index_sha256[:16]}.tar"
    record = out.with_suffix(".tar.sha256")  # written with the archive: a cached one is re-hashed before reuse
    if out.is_file() and not out.is_symlink() and record.is_file() and sha256_file(out) == record.read_text().strip():
        return out
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = out.with_suffix(".tar.partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel in members:
            p = root / rel
            info = tar.gettarinfo(str(p), arcname=rel.removeprefix("oci/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o644
            with open(p, "rb") as f:
                tar.addfile(info, f)
    fsync_rename(tmp, out)
    record.write_text(sha256_file(out) + "\n")
    return out
