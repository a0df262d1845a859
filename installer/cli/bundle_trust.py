"""medai bundle verify / push: the trust side of the bundle commands (registered on installer.cli.bundle.app)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.cli.output import emit
from installer.core.textsafe import safe_text

err = Console(stderr=True)


def _progress_hook(quiet: bool):
    """A rich bar on stderr while hashing; returns (advance, set_total, stop)."""
    if quiet or not err.is_terminal:
        return None, None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bars = Progress("hashing", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True)
    task = bars.add_task("hash", total=None)
    bars.start()
    return (lambda n: bars.advance(task, n)), (lambda total: bars.update(task, total=total)), bars.stop


def _verify_model(res, bundle: Path, key: Optional[Path], as_json: bool) -> int:
    """Print one model's re-hash (medai bundle verify --model); the exit status."""
    doc = {
        "model": res.model,
        "path": str(res.path),
        "result": "passed" if res.ok else "failed",
        "files": res.files,
        "bytes": res.bytes,
        "indexSignature": res.index_signature,
        "problems": res.problems,
    }
    emit(doc, as_json, [
        f"model {res.model} at {res.path}: {'PASSED' if res.ok else 'FAILED'} "
        f"({res.files} files, index signature {res.index_signature})",
        *(f"problem: model {res.model}: {p}" for p in res.problems),
    ])
    if key is None:
        err.print(
            f"[bold yellow]WARNING:[/] SIGNATURES NOT CHECKED: no --key; {bundle}/index.json itself is not authenticated",
            highlight=False,
        )
    return 0 if res.ok else 1


def verify(
    bundle: Path = typer.Argument(..., help="The bundle directory."),
    key: Optional[Path] = typer.Option(None, "--key", help="Public key (PREFIX.pub) the bundle was signed with."),
    sigstore_identity: Optional[str] = typer.Option(
        None, "--sigstore-identity", help="Expected signer identity (certificate SAN) of index.sigstore.json."
    ),
    sigstore_issuer: Optional[str] = typer.Option(None, "--sigstore-issuer", help="Expected OIDC issuer URL of that identity."),
    sigstore_trusted_root: Optional[Path] = typer.Option(
        None,
        "--sigstore-trusted-root",
        help="Sigstore trusted_root.json obtained out of band (default: sigstore-python's production root).",
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Only re-hash this model's directory (see --path) against the index."),
    path: Optional[Path] = typer.Option(None, "--path", help="With --model: the model directory on this node."),
    report: Optional[Path] = typer.Option(
        None,
        "--report",
        help="Directory for the JSON report and its .txt summary (default: the state directory, $MEDAI_HOME/reports), "
        "or an explicit PATH.json; never inside the bundle.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    volume: Optional[list[Path]] = typer.Option(None, "--volume", help="Media: further volumes' mount points (else asked for)."),
    base: Optional[Path] = typer.Option(None, "--base", help="Differential bundle: its base bundle directory; checks the union."),
) -> None:
    """Check the index signature, every file's sha256 and every image signature, offline; write the evidence.

    Exit 0 when everything checked passed, 1 when anything failed. Without --key only hashes are checked and the
    output says SIGNATURES NOT CHECKED.
    """
    from installer.media.manifest import is_media

    if base is not None:
        from installer.cli.bundle_media import verify_differential_cli

        raise typer.Exit(verify_differential_cli(bundle, base, key, as_json))
    if is_media(bundle):  # USB media written by `bundle export`: read in place, parts checked, nothing written
        from installer.cli.bundle_media import verify_media_cli

        raise typer.Exit(verify_media_cli(bundle, key, list(volume or []), as_json))
    from installer.trust.verify import verify_bundle, verify_model

    if model or path:
        if not (model and path):
            raise typer.BadParameter("--model and --path go together")
        raise typer.Exit(_verify_model(verify_model(bundle, model, path, key=key), bundle, key, as_json))

    advance, set_total, stop = _progress_hook(as_json)
    try:
        res = verify_bundle(
            bundle,
            key=key,
            sigstore_identity=sigstore_identity,
            sigstore_issuer=sigstore_issuer,
            sigstore_trusted_root=sigstore_trusted_root,
            progress=advance,
            report=report,
            on_total=set_total,
        )
    finally:
        stop()
    if as_json:
        typer.echo(json.dumps({**res.to_report(), "reportPath": str(res.report_path)}, indent=2))
    else:
        typer.echo(res.summary(), nl=False)
        typer.echo(f"report:      {safe_text(res.report_path)}")
    for w in res.warnings:
        err.print(f"[bold yellow]WARNING: {w}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(0 if res.ok else 1)


def push(
    bundle: Path = typer.Argument(..., help="The bundle directory."),
    registry: str = typer.Argument(
        ..., help="Destination registry HOST or HOST:PORT, optionally with a /PREFIX; images keep their repository path below it."
    ),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="PEM CA bundle to trust for the registry's TLS certificate."),
    insecure: bool = typer.Option(False, "--insecure", help="Plain HTTP (loopback registries always use it)."),
    as_json: bool = typer.Option(False, "--json", help="Print what was pushed as JSON."),
    key: Optional[Path] = typer.Option(None, "--key", help="Public key: the bundle is verified with it before anything is pushed."),
    skip_signature: bool = typer.Option(False, "--insecure-skip-signature", help="Push without --key: signatures NOT checked (loud)."),
    platform_manifest: bool = typer.Option(
        False,
        "--platform-manifest",
        help="Where the registry refuses a platform-reduced multi-arch index (Harbor 2), tag the site's platform manifest instead.",
    ),
) -> None:
    """Verify the bundle (--key), then copy exactly the image digests its signed index lists, with their cosign
    signature manifests, into an OCI registry.

    Digests are unchanged, so `cosign verify --key PREFIX.pub REGISTRY/REPO@DIGEST` works against the copy.
    """
    from installer.deploy.push import push_bundle

    if key is None and skip_signature:
        from installer.core.textsafe import not_checked_banner
        from installer.deploy.working_copy import NOT_CHECKED_BANNER

        not_checked_banner(err, f"bundle push {bundle}: {NOT_CHECKED_BANNER}")
    results = push_bundle(
        bundle,
        registry,
        ca_file=ca_file,
        insecure=insecure,
        progress=None if as_json else err,
        key=key,
        skip_signature=skip_signature,
        platform_manifest=platform_manifest,
    )
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "dest": r.dest,
                        "digest": r.digest,
                        "uploadedBytes": r.uploaded_bytes,
                        "signatures": r.signatures,
                        "fallback": r.fallback,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        for r in results:
            sig = f" + {len(r.signatures)} signature manifest(s)" if r.signatures else " (NO signature)"
            typer.echo(f"{r.dest}@{r.digest}{sig}")
