"""medai bundle build | inspect | verify | push | export | import (verify/push in bundle_trust, export/import in bundle_media)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from installer.bundle.layout import BundleLayout
from installer.core.sizes import human

app = typer.Typer(no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@app.command("build")
def build(
    manifest: Path = typer.Argument(..., help="bundle manifest (apiVersion medai/v1, kind Bundle)"),
    out_dir: Path = typer.Option(..., "--out", help="bundle directory (created; a rerun resumes and reuses what is there)"),
    locked: bool = typer.Option(False, "--locked", help="fail if any source drifted from the lock file; write nothing"),
    lock: Optional[Path] = typer.Option(None, "--lock", help="lock file (default: <manifest stem>.lock.yaml beside it)"),
    sign_key: Optional[Path] = typer.Option(None, "--sign-key", help="cosign-format private key (password: MEDAI_KEY_PASSWORD or prompt)"),
    sigstore: bool = typer.Option(False, "--sigstore", help="also sign index.json keyless with Sigstore (needs an OIDC identity)"),
    platform: Optional[list[str]] = typer.Option(None, "--platform", help="override spec.platforms (repeatable), e.g. linux/amd64"),
    tools: bool = typer.Option(True, "--with-tools/--no-tools", help="carry the installer wheelhouse, collections and helm"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
    mirror: Optional[list[str]] = typer.Option(
        None, "--mirror", help="fetch a registry through a mirror, e.g. quay.io=nexus.example/quay (repeatable)"
    ),
    base: Optional[Path] = typer.Option(
        None, "--base", help="differential: the installed bundle's index.json (or directory); carry only what it lacks"
    ),
) -> None:
    """Build an offline bundle from a manifest: images, charts, files, models, OS packages, tools, SBOMs."""
    from installer.collect.build import BuildOptions, build_bundle
    from installer.core.progress import Progress, RichProgress
    from installer.oci.mirrors import parse_mirror_option

    progress = RichProgress() if sys.stderr.isatty() else Progress()
    started_ns = time.time_ns()
    try:
        summary = build_bundle(
            BuildOptions(
                manifest=manifest,
                out=out_dir,
                lock=lock,
                locked=locked,
                sign_key=sign_key,
                sigstore=sigstore,
                platforms=list(platform) if platform else None,
                with_tools=tools,
                progress=progress,
                base=base,
                mirrors=dict(parse_mirror_option(m) for m in mirror or []),
            )
        )
    finally:
        progress.close()
    _stamp(started_ns, summary.to_json())
    if as_json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=1, sort_keys=True) + "\n")
        return
    parts = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in summary.counts.items())
    out.print(f"[bold green]bundle built[/]: {summary.bundle}", highlight=False)
    out.print(f"  {summary.name} {summary.version}: {parts}; {human(summary.total_bytes)} in all", highlight=False)
    out.print(f"  fetched {human(summary.fetched_bytes)}, reused {human(summary.reused_bytes)}, {summary.seconds:.1f} s", highlight=False)
    out.print(
        f"  index sha256 {summary.index_sha256}; {'signed' if summary.signed else 'NOT signed (no --sign-key)'}; lock {summary.lock}",
        highlight=False,
    )
    if summary.bootstrap_sha256:
        where = f" (written to {summary.bootstrap_fingerprint_file})" if summary.bootstrap_fingerprint_file else ""
        out.print(
            f"  [bold]bootstrap fingerprint[/] sha256 {summary.bootstrap_sha256}{where}: give it to the site "
            "with the public key; they check bootstrap.py against it before running it",
            highlight=False,
        )
    for note in summary.notes:
        out.print(f"  note: {note}", highlight=False)


def _stamp(started_ns: int, summary: dict) -> None:
    """Record what this build read and wrote, so the same command answers 'up to date' while nothing changed
    (installer/collect/uptodate.py). A stamp that cannot be written only costs the next rebuild its speed."""
    from installer.collect import uptodate

    if uptodate.ARGV is None:  # not started as `medai bundle build ...` (tests calling the typer app)
        return
    try:
        uptodate.record(uptodate.ARGV, started_ns, summary)
    except Exception as e:  # noqa: BLE001 - the bundle is built; say why the next rebuild will be a full one
        err.print(f"note: no up-to-date stamp written ({type(e).__name__}: {e})", highlight=False, markup=False)


@app.command("inspect")
def inspect(
    bundle: Path = typer.Argument(..., help="bundle directory"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show what a bundle holds: images (digest, size, which chart needs them), charts, files, models, size."""
    from installer.bundle.inspect import inspect_bundle
    from installer.sbom import component_counts

    info = inspect_bundle(bundle, component_counts(bundle) if BundleLayout.at(bundle).sbom.is_dir() else None)
    if as_json:
        sys.stdout.write(json.dumps(info, indent=1, sort_keys=True) + "\n")
        return
    out.print(
        f"[bold]{info['name']} {info['version']}[/]  {info['bundle']}  created {info['created']}  "
        f"platforms {', '.join(info['platforms'])}  {'signed' if info['signed'] else 'unsigned'}",
        highlight=False,
    )
    t = Table("image", "digest", "size", "needed by", title="images", show_edge=False)
    show_sbom = any("sbomComponents" in i for i in info["images"])
    if show_sbom:
        t.add_column("SBOM components")
    for i in info["images"]:
        row = [i["ref"], (i["digest"] or "")[:19], human(i["size"]), ", ".join(i["neededBy"]) or "(listed)"]
        if show_sbom:
            row.append(str(i.get("sbomComponents", "-")))
        t.add_row(*row)
    out.print(t)
    t = Table("chart", "version", "repo", "sha256", "images", title="charts", show_edge=False)
    for c in info["charts"]:
        t.add_row(c["name"], c["version"] or "", c["repo"] or "", c["sha256"][:12], str(len(c["images"])))
    out.print(t)
    t = Table("file", "size", "sha256", title="files", show_edge=False)
    for f in info["files"]:
        t.add_row(f["name"], human(f["size"]), f["sha256"][:12])
    out.print(t)
    t = Table("model", "source", "revision", "files", "size", title="models", show_edge=False)
    for m in info["models"]:
        t.add_row(m["name"], m["source"], m["revision"] or "", str(m["files"]), human(m["size"]))
    out.print(t)
    if info["other"]:
        out.print("other: " + ", ".join(f"{n} {k}" for k, n in sorted(info["other"].items())), highlight=False)
    out.print(f"total: {info['fileCount']} files, {human(info['totalSize'])}", highlight=False)


def _register_sub_commands() -> None:
    from installer.cli import bundle_media, bundle_trust

    app.command("verify")(bundle_trust.verify)
    app.command("push")(bundle_trust.push)
    app.command("export")(bundle_media.export)
    app.command("import")(bundle_media.import_)


_register_sub_commands()
