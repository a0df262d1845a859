"""Small formatting helpers the commands share."""
from __future__ import annotations

import json

import typer


def emit(doc: dict, as_json: bool, lines: list[str]) -> None:
    """A result as JSON (--json) or as text lines for the operator."""
    typer.echo(json.dumps(doc, indent=2) if as_json else "\n".join(lines))
