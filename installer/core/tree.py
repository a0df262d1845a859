"""Directory trees medai owns (a bundle's charts/, files/, models/): remove what a build no longer produced."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def prune_tree(root: Path, is_kept: Callable[[Path], bool]) -> None:
    """Delete every file under ``root`` that ``is_kept`` rejects, then the directories left empty (not root)."""
    if not root.is_dir():
        return
    for dirpath, _dirs, names in os.walk(root, topdown=False):
        for n in names:
            p = Path(dirpath) / n
            if not is_kept(p):
                p.unlink()
        if Path(dirpath) != root and not os.listdir(dirpath):
            os.rmdir(dirpath)
