"""Small formatting helpers the commands share."""
from __future__ import annotations

import json

import typer


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def emit(doc: dict, as_json: bool, lines: list[str]) -> None:
    """A result as JSON (--json) or as text lines for the operator."""
    typer.echo(json.dumps(doc, indent=2) if as_json else "\n".join(lines))
