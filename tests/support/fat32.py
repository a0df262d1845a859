"""A real FAT32 filesystem for tests: mkfs.vfat on a sparse image, mounted with fusefat (FUSE; no kernel module)."""
from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest


def need_fat_tools() -> None:
    missing = [t for t in ("mkfs.vfat", "fusefat", "fusermount") if shutil.which(t) is None]
    if missing or not Path("/dev/fuse").exists():
        pytest.skip(f"real FAT32 needs {', '.join(missing) or '/dev/fuse'} (apt: dosfstools fusefat; .ci/setup-host.sh)")


def make_image(path: Path, size: str = "256M") -> Path:
    need_fat_tools()
    subprocess.run(["truncate", "-s", size, str(path)], check=True)
    subprocess.run(["mkfs.vfat", "-F", "32", str(path)], check=True, capture_output=True)
    return path


@contextmanager
def mounted(image: Path, mountpoint: Path, read_only: bool = False):
    """Mount ``image`` at ``mountpoint`` with fusefat (rw+ or ro); unmounted on exit."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["fusefat", "-f", "-o", "ro" if read_only else "rw+", str(image), str(mountpoint)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while str(mountpoint.resolve()) not in Path("/proc/self/mounts").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"fusefat did not mount {image}")
        time.sleep(0.05)
    try:
        yield mountpoint
    finally:
        for _ in range(50):
            if subprocess.run(["fusermount", "-u", str(mountpoint)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        proc.wait(timeout=30)  # fusefat goes on writing the image after the unmount returns: wait for it to end
