"""Where the lab keeps its files: <state dir>/lab/ (state dir = $MEDAI_HOME or ./.medai)."""
from __future__ import annotations

from pathlib import Path

from installer.core.resources import state_dir


def lab_dir() -> Path:
    path = state_dir() / "lab"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def lab_state_file() -> Path:
    return lab_dir() / "lab.json"


def lab_inventory_file() -> Path:
    return lab_dir() / "site.yml"
