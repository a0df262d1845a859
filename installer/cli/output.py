"""Small formatting helpers the commands share."""
from __future__ import annotations

import json
from collections.abc import Callable

import typer

from installer.core.errors import MedaiError


def emit(doc: dict, as_json: bool, lines: list[str]) -> None:
    """A result as JSON (--json) or as text lines for the operator."""
    typer.echo(json.dumps(doc, indent=2) if as_json else "\n".join(lines))


def confirmer(yes: bool, stdin: bool = False) -> Callable[[str], None] | None:
    """The operator's yes for a command that changes the site, passed into the library: None with --yes (nothing
    asked), else a prompt that stops the command on no. With --stdin the input is the automation's (the unseal
    shares): a question there would swallow a share, so --stdin needs --yes."""
    if yes:
        return None
    if stdin:
        raise MedaiError("--stdin reads the unseal shares from stdin, which cannot answer the confirmation too: "
                         "pass --yes as well", field="--yes")
    return _ask


def _ask(question: str) -> None:
    typer.confirm(question, abort=True)
