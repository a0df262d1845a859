"""medai keys …"""
from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from installer.core.errors import TrustError

app = typer.Typer(no_args_is_help=True)


def _password() -> bytes:
    from installer.trust.keys import PASSWORD_ENV

    env = os.environ.pop(PASSWORD_ENV, None)  # read once, never inherited by a child
    if env is not None:
        return env.encode()
    try:
        pw = typer.prompt("Password for the new private key", hide_input=True, confirmation_prompt=True)
    except typer.Abort:
        raise TrustError(f"no key password: set {PASSWORD_ENV} or answer the prompt") from None
    return pw.encode()


@app.command("generate")
def generate(
    out: Path = typer.Option(..., "--out", help="Path prefix: writes PREFIX.key (encrypted, 0600) and PREFIX.pub."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key pair."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Generate an ECDSA P-256 signing key pair in cosign's format (cosign reads it, and medai reads cosign's).

    The password comes from MEDAI_KEY_PASSWORD, or a hidden prompt. Keep PREFIX.key off the bundle and off the
    air-gapped side; give PREFIX.pub to the site.
    """
    from installer.trust.keys import fingerprint, generate_keypair, load_public_key

    key_path, pub_path = generate_keypair(out, _password(), force=force)
    fp = fingerprint(load_public_key(pub_path))
    if as_json:
        typer.echo(json.dumps({"privateKey": str(key_path), "publicKey": str(pub_path), "fingerprint": fp}))
    else:
        typer.echo(f"private key: {key_path} (mode 0600, encrypted)\npublic key:  {pub_path}\nfingerprint: {fp}")


@app.command("fingerprint")
def show_fingerprint(pub: Path = typer.Argument(..., help="A PEM public key (PREFIX.pub).")) -> None:
    """Print the sha256 fingerprint of a public key, as verification reports name it."""
    from installer.trust.keys import fingerprint, load_public_key

    typer.echo(fingerprint(load_public_key(pub)))
