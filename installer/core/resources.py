"""Where medai's own files are: the source tree it runs from, and the tools `.ci/setup-host.sh` installs.

The one place that knows the package's position in the tree; nothing else walks up from its own file.
"""
from __future__ import annotations

import os
from pathlib import Path

from installer.core.errors import StateError

PACKAGE = Path(__file__).resolve().parents[1]  # installer/
SOURCE_ROOT = PACKAGE.parent  # the checkout (pyproject.toml, playbooks/, roles/, charts/)
# playbooks/ and roles/: the source tree, or the copy a bundle carries in tools/ansible (bootstrap.py sets it).
ANSIBLE_DIR = Path(os.environ.get("MEDAI_ANSIBLE_DIR") or SOURCE_ROOT)
LOCAL_TOOLS = SOURCE_ROOT / ".tools"


STATE_HOME = "/var/lib/medai"  # the default state directory (bootstrap.py's STATE_HOME says the same)


def state_dir() -> Path:
    """medai's state on this host: run records, secrets, private bundle copies. $MEDAI_HOME, else the fixed,
    root-owned /var/lib/medai: never the current directory (run from the stick, that would be the stick).
    An existing one is checked (check_state_dir); MEDAI_BUNDLE (set by bootstrap.py) names the bundle whose
    filesystem it must not be on."""
    raw = os.environ.get("MEDAI_HOME") or STATE_HOME
    if not os.path.isabs(raw):
        raise StateError(f"MEDAI_HOME={raw}: not an absolute path (the state directory is never relative "
                            "to the current one)")
    home = Path(os.path.normpath(raw))
    bundle = os.environ.get("MEDAI_BUNDLE")
    check_state_dir(home, Path(bundle) if bundle else None)
    return home


def _system_devices() -> set[int]:
    """The host's own filesystems ("/" and the default state directory's parent): never a stick."""
    devs = set()
    for d in ("/", os.path.dirname(STATE_HOME)):
        try:
            devs.add(os.stat(d).st_dev)
        except OSError:
            pass
    return devs


def check_state_dir(home: Path, bundle: Path | None = None) -> None:
    """Refuse, naming it, a state directory that is a symlink or not a directory, not owned by the user medai
    runs as (root), writable by group or others, inside the bundle, or on the bundle's filesystem (unless that
    is the host's own). A state directory that does not exist yet is checked on its nearest existing parent's
    filesystem only."""
    home = Path(home)
    if bundle is not None:
        b = Path(os.path.abspath(bundle))
        if home == b or b in home.parents:
            raise StateError(f"{home}: the state directory is inside the bundle {b}: refused (set MEDAI_HOME "
                                "elsewhere)")
    try:
        st = os.lstat(home)
    except FileNotFoundError:
        st = None
    if st is not None:
        import stat as _stat

        if not _stat.S_ISDIR(st.st_mode):
            raise StateError(f"{home}: the state directory is not a directory (a symlink is refused)")
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise StateError(f"{home}: the state directory must be owned by uid {os.geteuid()} and writable by no "
                                f"one else (owner {st.st_uid}, mode {_stat.S_IMODE(st.st_mode):o})")
    if bundle is None:
        return
    probe = home
    while st is None and probe != probe.parent:
        probe = probe.parent
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            continue
    try:
        bdev = os.stat(bundle).st_dev
    except OSError:
        return
    if st is not None and st.st_dev == bdev and bdev not in _system_devices():
        raise StateError(f"{home}: the state directory is on the bundle's filesystem ({bundle}): refused; use "
                            f"the default {STATE_HOME} or another local directory (MEDAI_HOME)")


def cache_dir() -> Path:
    """medai's cache on the connected host (SBOM layer facts, build stamps): $MEDAI_CACHE, else
    $XDG_CACHE_HOME/medai, else ~/.cache/medai. Only what can be gathered again goes here."""
    return Path(os.environ.get("MEDAI_CACHE")
                or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "medai"))


def package_file(*parts: str) -> Path:
    """A file shipped inside the installer package (e.g. a checker copied to the nodes)."""
    return PACKAGE.joinpath(*parts)


def local_tool(name: str) -> Path:
    """A binary `.ci/setup-host.sh` put under .tools/bin (helm, cosign)."""
    return LOCAL_TOOLS / "bin" / name
