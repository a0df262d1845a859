"""medai bundle build | inspect  (verify and push are registered onto this app by installer.cli.bundle_trust)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from installer.bundle.layout import BundleLayout

app = typer.Typer(no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


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
    mirror: Optional[list[str]] = typer.Option(None, "--mirror", help="fetch a registry through a mirror, e.g. quay.io=nexus.example/quay (repeatable)"),
    base: Optional[Path] = typer.Option(None, "--base", help="differential: the installed bundle's index.json (or directory); carry only what it lacks"),
) -> None:
    """Build an offline bundle from a manifest: images, charts, files, models, OS packages, tools, SBOMs."""
    from installer.bundle.build import BuildOptions, build_bundle
    from installer.bundle.mirrors import parse_mirror_option
    from installer.bundle.progress import Progress, RichProgress

    progress = RichProgress() if sys.stderr.isatty() else Progress()
    try:
        summary = build_bundle(BuildOptions(
            manifest=manifest, out=out_dir, lock=lock, locked=locked, sign_key=sign_key, sigstore=sigstore,
            platforms=list(platform) if platform else None, with_tools=tools, progress=progress, base=base,
            mirrors=dict(parse_mirror_option(m) for m in mirror or []),
        ))
    finally:
        progress.close()
    if as_json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=1, sort_keys=True) + "\n")
        return
    parts = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in summary.counts.items())
    out.print(f"[bold green]bundle built[/]: {summary.bundle}", highlight=False)
    out.print(f"  {summary.name} {summary.version}: {parts}; {human(summary.total_bytes)} in all", highlight=False)
    out.print(f"  fetched {human(summary.fetched_bytes)}, reused {human(summary.reused_bytes)}, "
              f"{summary.seconds:.1f} s", highlight=False)
    out.print(f"  index sha256 {summary.index_sha256}; "
              f"{'signed' if summary.signed else 'NOT signed (no --sign-key)'}; lock {summary.lock}", highlight=False)
    if summary.bootstrap_sha256:
        where = f" (written to {summary.bootstrap_fingerprint_file})" if summary.bootstrap_fingerprint_file else ""
        out.print(f"  [bold]bootstrap fingerprint[/] sha256 {summary.bootstrap_sha256}{where}: give it to the site "
                  "with the public key; they check bootstrap.py against it before running it", highlight=False)
    for note in summary.notes:
        out.print(f"  note: {note}", highlight=False)


def _sbom_counts(layout: BundleLayout) -> dict[str, int]:
    """image ref -> number of components in its generated SBOM (installer.trust.sbom), when the bundle has SBOMs."""
    if not layout.sbom.is_dir():
        return {}
    try:
        from installer.trust.sbom import component_counts
    except ImportError:
        return {}
    return component_counts(layout.root)


def inspect_bundle(bundle: Path) -> dict:
    layout = BundleLayout.at(bundle)
    index = layout.read_index()
    sboms = _sbom_counts(layout)
    by_kind: dict[str, list[dict]] = {}
    for a in index["artifacts"]:
        by_kind.setdefault(a["kind"], []).append(a)
    images = [{"ref": a["ref"], "digest": a.get("digest"), "size": a["size"], "neededBy": a.get("neededBy", []),
               "platforms": (a.get("meta") or {}).get("platforms", []),
               **({"sbomComponents": sboms[a["ref"]]} if a["ref"] in sboms else {})}
              for a in by_kind.get("image", [])]
    charts = [{"name": a["name"], "version": (a.get("meta") or {}).get("version"), "repo": (a.get("meta") or {}).get("repo"),
               "sha256": a["sha256"], "size": a["size"], "images": (a.get("meta") or {}).get("images", [])}
              for a in by_kind.get("chart", [])]
    files = [{"name": a["name"], "url": a["ref"], "sha256": a["sha256"], "size": a["size"]} for a in by_kind.get("file", [])]
    models = [{"name": a["name"], "source": a["ref"], "revision": (a.get("meta") or {}).get("revision"),
               "files": len(a.get("paths") or []), "size": a["size"]} for a in by_kind.get("model", [])]
    other = {k: len(v) for k, v in by_kind.items() if k not in ("image", "chart", "file", "model")}
    return {
        "bundle": str(layout.root), "name": index.get("name"), "version": index.get("version"),
        "created": index.get("created"), "platforms": index.get("platforms", []),
        "signed": layout.index_sig.is_file(), "images": images, "charts": charts, "files": files, "models": models,
        "other": other, "totalSize": sum(f["size"] for f in index["files"]), "fileCount": len(index["files"]),
    }


@app.command("inspect")
def inspect(
    bundle: Path = typer.Argument(..., help="bundle directory"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Show what a bundle holds: images (digest, size, which chart needs them), charts, files, models, size."""
    info = inspect_bundle(bundle)
    if as_json:
        sys.stdout.write(json.dumps(info, indent=1, sort_keys=True) + "\n")
        return
    out.print(f"[bold]{info['name']} {info['version']}[/]  {info['bundle']}  created {info['created']}  "
              f"platforms {', '.join(info['platforms'])}  {'signed' if info['signed'] else 'unsigned'}", highlight=False)
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


def _register_trust_commands() -> None:
    """verify/push live in the trust helper's module, which adds them to this app when imported."""
    try:
        import installer.cli.bundle_trust  # noqa: F401
    except ImportError as e:
        if e.name != "installer.cli.bundle_trust":
            raise


_register_trust_commands()
