"""Where medai's own files are: the source tree it runs from, and the tools `.ci/setup-host.sh` installs.

The one place that knows the package's position in the tree; nothing else walks up from its own file.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # installer/
SOURCE_ROOT = PACKAGE.parent  # the checkout (pyproject.toml, playbooks/, roles/, charts/)
# playbooks/ and roles/: the source tree, or the copy a bundle carries in tools/ansible (bootstrap.py sets it).
ANSIBLE_DIR = Path(os.environ.get("MEDAI_ANSIBLE_DIR") or SOURCE_ROOT)
LOCAL_TOOLS = SOURCE_ROOT / ".tools"


def state_dir() -> Path:
    """medai's state on this host: run records, secrets, private bundle copies ($MEDAI_HOME, else ./.medai)."""
    return Path(os.environ.get("MEDAI_HOME") or Path.cwd() / ".medai").absolute()


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
