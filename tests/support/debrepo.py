"""A tiny local apt repository for lab nodes, which sit on an internal network with no way out.

Production nodes get openscap-scanner and libpam-pwquality from the bundle's signed OS package repo (the `os`
role). Tests do not build a bundle, so this module stands in for that repo only: the host's apt downloads exactly
the packages the node lacks (resolved against the node image's own dpkg status), `dpkg-scanpackages` indexes
them, and the directory is copied into the node as a `[trusted=yes] file:` source. Nothing is faked: apt inside
the node resolves and installs the real packages.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from installer.lab.podman import podman

# python3-apt: ansible.builtin.apt (behind ansible.builtin.package) needs it on Debian nodes.
PACKAGES = ("openscap-scanner", "libpam-pwquality", "python3-apt")
NODE_REPO = "/var/lib/medai-test-repo"


def build_repo(image: str, cache: Path, packages: tuple[str, ...] = PACKAGES) -> Path:
    """Download the closure of ``packages`` missing from ``image`` into ``cache`` and index it (cached)."""
    packages_file = cache / "Packages"
    if packages_file.is_file() and all(any(cache.glob(f"{p}_*.deb")) for p in packages):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        status = Path(t) / "status"
        status.write_text(podman("run", "--rm", "--network", "none", image, "cat", "/var/lib/dpkg/status").stdout)
        (Path(t) / "partial").mkdir()
        subprocess.run(["apt-get", "-qq", "-o", f"Dir::State::status={status}", "-o", f"Dir::Cache::archives={t}",
                        "-o", "APT::Sandbox::User=root", "install", "--download-only", "-y", "--no-install-recommends", *packages],
                       check=True, capture_output=True, text=True)
        for deb in Path(t).glob("*.deb"):
            deb.replace(cache / deb.name)
    index = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=cache, check=True, capture_output=True, text=True).stdout
    packages_file.write_text(index)
    return cache


def install_repo(container: str, repo: Path) -> None:
    """Make ``repo`` the node's only apt source (as the bundle repo is on an air-gapped node)."""
    podman("exec", container, "mkdir", "-p", NODE_REPO)
    podman("cp", f"{repo}/.", f"{container}:{NODE_REPO}/")
    podman("exec", container, "sh", "-c",
           "mkdir -p /etc/apt/sources.list.d.off && mv /etc/apt/sources.list.d/* /etc/apt/sources.list.d.off/ 2>/dev/null; "
           "mv /etc/apt/sources.list /etc/apt/sources.list.off 2>/dev/null; "
           f"echo 'deb [trusted=yes] file:{NODE_REPO} ./' > /etc/apt/sources.list.d/medai-test.list && apt-get update -qq", timeout=120)


def main() -> None:
    """`python -m tests.support.debrepo DIR`: build (or reuse) the repo in DIR; used by molecule prepare."""
    import sys

    from installer.lab.image import NODE_IMAGE

    print(build_repo(NODE_IMAGE, Path(sys.argv[1]).resolve()))


if __name__ == "__main__":
    main()
