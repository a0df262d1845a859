"""Byte counts for people: 1.4 GiB, not 1503238553. Standard library only (the up-to-date check imports it)."""
from __future__ import annotations


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
