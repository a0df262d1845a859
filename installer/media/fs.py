"""What the target of `medai bundle export` is: its filesystem type, the largest file it takes, its free space.

FAT32 stores a file's size in 32 bits, so no file may reach 4 GiB. statfs on a fusefat mount reports zero
blocks, so for fusefat the free space is counted from the image's own FAT (the clusters marked 0).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from installer.core.errors import BundleError

FAT32_MAX_FILE = 4 * 1024 ** 3 - 1
FAT_TYPES = {"vfat", "msdos", "fat", "fuse.fusefat", "fusefat"}
# Drivers below the format's limit: fusefat 1.0 (Debian 12) refuses any write past 2 GiB in one file (measured).
DRIVER_MAX_FILE = {"fuse.fusefat": 2 ** 31, "fusefat": 2 ** 31}


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    source: str
    options: str

    @property
    def is_fat(self) -> bool:
        return self.fstype in FAT_TYPES

    @property
    def read_only(self) -> bool:
        return "ro" in self.options.split(",")


def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_of(path: str | os.PathLike) -> Mount:
    """The mount holding ``path`` (the longest mount point that is a prefix of its real path)."""
    real = os.path.realpath(path)
    best: Mount | None = None
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 4:
                continue
            mp = _unescape(fields[1])
            if real == mp or real.startswith(mp.rstrip("/") + "/") or mp == "/":
                if best is None or len(mp) >= len(best.mountpoint):
                    best = Mount(mp, fields[2], _unescape(fields[0]), fields[3])
    if best is None:
        raise BundleError(f"{path}: no mount found in /proc/self/mounts")
    return best


def max_file_size(mount: Mount, requested: int | None) -> int | None:
    """The part size limit: FAT's own, or the operator's --max-file-size (never above FAT's); None = no split."""
    if mount.is_fat:
        limit = min(FAT32_MAX_FILE, DRIVER_MAX_FILE.get(mount.fstype, FAT32_MAX_FILE))
        if requested is not None and requested > limit:
            raise BundleError(f"--max-file-size {requested}: {mount.mountpoint} is FAT32 ({mount.fstype}), "
                              f"whose files hold at most {limit} bytes")
        return requested or limit
    return requested


def _fusefat_image(mountpoint: str) -> Path | None:
    """The image or device a fusefat process serves at ``mountpoint`` (from its command line)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if not argv or os.path.basename(argv[0]) != "fusefat":
            continue
        plain = [a for i, a in enumerate(argv[1:], 1) if not a.startswith("-") and argv[i - 1] != "-o"]
        if len(plain) >= 2 and os.path.realpath(plain[-1]) == mountpoint:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            return Path(cwd, plain[-2])
    return None


def fat32_free(image: Path) -> tuple[int, int]:
    """(free bytes, cluster size) counted from the first FAT of a FAT32 image or device."""
    with open(image, "rb") as f:
        bpb = f.read(512)
        bytes_per_sector, sectors_per_cluster, reserved, nfats = struct.unpack_from("<HBHB", bpb, 11)
        total = struct.unpack_from("<H", bpb, 19)[0] or struct.unpack_from("<I", bpb, 32)[0]
        fat_sectors = struct.unpack_from("<I", bpb, 36)[0]
        if bytes_per_sector == 0 or sectors_per_cluster == 0 or fat_sectors == 0:
            raise BundleError(f"{image}: not a FAT32 boot sector")
        cluster = bytes_per_sector * sectors_per_cluster
        data_sectors = total - reserved - nfats * fat_sectors
        clusters = data_sectors // sectors_per_cluster
        f.seek(reserved * bytes_per_sector)
        fat = f.read(4 * (clusters + 2))
    entries = struct.unpack_from(f"<{clusters + 2}I", fat)
    free = sum(1 for e in entries[2:] if e & 0x0FFFFFFF == 0)
    return free * cluster, cluster


def free_space(path: str | os.PathLike, mount: Mount) -> tuple[int, int]:
    """(bytes free to an unprivileged writer, allocation unit) on the filesystem holding ``path``."""
    st = os.statvfs(path)
    if st.f_blocks > 0:
        return st.f_bavail * st.f_frsize, max(st.f_bsize, 512)
    if mount.fstype in ("fuse.fusefat", "fusefat"):
        image = _fusefat_image(mount.mountpoint)
        if image is not None:
            return fat32_free(image)
    raise BundleError(f"{mount.mountpoint}: the filesystem ({mount.fstype}) reports no size, so its free space "
                      "cannot be checked before writing: refused")
