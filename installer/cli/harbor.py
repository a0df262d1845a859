"""medai harbor seed: the bundle's images into Harbor, checked with the site key before and after."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("seed")
def seed(
    bundle: Path = typer.Argument(..., help="The bundle directory."),
    harbor: str = typer.Argument(..., help="Harbor HOST[:PORT] (https)."),
    key: Path = typer.Option(..., "--key", help="The site public key (out of band): every image must verify with it."),
    evidence: Path = typer.Option(Path("evidence"), "--evidence", help="Directory for harbor-seed.json and the verify report."),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="The site CA (PEM) Harbor's certificate is issued by."),
    project: str = typer.Option("platform", "--project", help="Harbor project receiving the bundle's images."),
    as_json: bool = typer.Option(False, "--json", help="Print what was pushed as JSON."),
) -> None:
    """Verify the bundle with the site key, push its images (platform manifests where Harbor refuses a reduced
    index), verify every pushed copy in Harbor with the key, and record it (Harbor itself only checks that some
    cosign signature exists, not whose)."""
    from installer.deploy.harbor.seed import seed_harbor

    res = seed_harbor(bundle, harbor, key, evidence, ca_file=ca_file, project=project)
    if as_json:
        typer.echo(json.dumps({"evidence": str(res.evidence), "images": res.pushed}, indent=2))
        return
    for p in res.pushed:
        how = f" (platform manifest: {p['platformManifest']})" if p["platformManifest"] else ""
        typer.echo(f"{p['dest']}@{p['digest']}{how}: site key verified")
    typer.echo(f"evidence: {res.evidence}")
