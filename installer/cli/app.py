"""The typer application behind `medai` (installer/cli/main.py starts it). Each sub-command lives in its own module."""
from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from installer.core.errors import MedaiError
from installer.core.textsafe import safe_text

app = typer.Typer(
    name="medai",
    help=(
        "Air-gapped installer for a private medical-AI platform.\n\n"
        "Connected side:  medai bundle build bundles/platform.yaml --out /media/usb/bundle --sign-key site.key\n\n"
        "Behind the gap:  medai install --inventory site.yml --bundle /media/usb/bundle --key site.pub\n\n"
        "Prove it:        medai verify --inventory site.yml --out evidence/"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)

err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"medai {version('medai')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print medai's version and exit."),
) -> None:
    pass


def _register_bundle_only() -> None:
    # `medai bundle ...` needs only the bundle group: skipping the other groups' imports keeps start-up a small
    # share of a no-change rebuild
    from installer.cli import bundle

    app.add_typer(bundle.app, name="bundle", help="Build, verify, inspect and push offline bundles.")


def _register() -> None:
    from installer.cli import bundle, install, inventory, keys, lab, verify

    app.add_typer(bundle.app, name="bundle", help="Build, verify, inspect and push offline bundles.")
    app.add_typer(keys.app, name="keys", help="Signing keys (cosign-compatible).")
    app.add_typer(inventory.app, name="inventory", help="Check a site inventory before anything runs.")
    app.add_typer(lab.app, name="lab", help="A laptop-sized air-gapped lab: podman nodes on an internal network.")
    from installer.cli import vault

    app.add_typer(vault.app, name="vault", help="Vault: init (shares to named operators), unseal, status, setup, certificates.")
    from installer.cli import certs, harbor

    app.add_typer(certs.app, name="certs", help="Every certificate the site depends on, its expiry; rotate one group.")

    app.add_typer(harbor.app, name="harbor", help="Seed Harbor from the bundle (site key verified before and after).")
    install.register(app)
    from installer.cli import upgrade
    upgrade.register(app)
    verify.register(app)
    from installer.cli import render
    render.register(app)
    from installer.cli import backup

    app.add_typer(backup.app, name="backup", help="Encrypted backups onto removable media: create, verify, restore.")
    from installer.cli import status
    status.register(app)


def run() -> None:
    if sys.argv[1:2] == ["bundle"]:
        _register_bundle_only()
    else:
        _register()
    try:
        app()
    except MedaiError as e:
        # one problem per line (inventory check lists several); any other control character is escaped
        text = "\n".join(safe_text(line) for line in str(e).split("\n"))
        err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]: rerun the same command to resume")
        sys.exit(130)

