"""The lab node image: Debian 12 minbase from Debian's own packages (mmdebstrap), never pulled from a registry."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from installer.core.errors import LabError
from installer.lab.podman import podman, podman_env, run

NODE_IMAGE = "localhost/medai-node:bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "systemd", "systemd-sysv", "openssh-server", "sudo", "iproute2", "dbus", "ca-certificates")


def image_exists(name: str = NODE_IMAGE) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def build_image(name: str = NODE_IMAGE, *, rebuild: bool = False, mirror: str = MIRROR) -> str:
    """Ensure `name` exists (cached by name); with rebuild, build it again from Debian's archive."""
    if image_exists(name) and not rebuild:
        return name
    with tempfile.TemporaryDirectory(prefix="medai-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), mirror],
            timeout=1800, what="mmdebstrap (building the lab node root filesystem)")
        _import_rootfs(rootfs, name)
    return name


def _import_rootfs(rootfs: Path, name: str) -> None:
    # Stream tar straight into podman import: the root filesystem is never held in memory.
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        imp = subprocess.run(
            ["podman", "import", "--change", 'CMD ["/sbin/init"]', "--change", "STOPSIGNAL SIGRTMIN+3", "-", name],
            stdin=tar.stdout, env=podman_env(), capture_output=True, text=True, timeout=900)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar_rc = tar.wait()
    if tar_rc != 0 or imp.returncode != 0:
        detail = (imp.stderr.strip().splitlines() or [f"tar exit {tar_rc}"])[-1]
        raise LabError(f"podman import {name}: {detail}")
