"""medai render  |  medai charts images"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.cli.inventory import load_or_exit

console = Console(soft_wrap=True)
charts_app = typer.Typer(no_args_is_help=True)


def render(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory (inventories/<site>/site.yml)"),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="bundle directory (charts, manifest and images come from it)"),
    out: Path = typer.Option(..., "--out", help="directory for one file per release (created)"),
    explain: bool = typer.Option(False, "--explain", help="also print every pod template's Pod Security level "
                                 "and violations, and the flows the NetworkPolicies allow"),
) -> None:
    """Write every manifest the install would apply, one file per release, validated and image-gated; refused
    (non-zero exit, one line per finding) unless the platform can come up as rendered (the coherence check)."""
    from installer.bundle.layout import BundleLayout
    from installer.deploy.coherence_step import refuse_incoherent
    from installer.platform.render import render_site, write_site

    inv = load_or_exit(inventory)
    result = render_site(inv, bundle)
    written = write_site(result, out)
    for r in result.releases:
        c = result.counts[r.name]
        console.print(f"[green]ok[/] {r.name}: {len(r.objects) + len(r.site_objects)} objects valid "
                      f"({c['core']} core, {c['crd']} custom)", highlight=False)
    console.print(f"{len(result.plan.needed)} images, all in the bundle; Kubernetes {result.kube_version} "
                  f"(schemas {result.schema_version}); {len(written)} files in {out}", highlight=False)
    if explain:
        from installer.platform.explain import explain as explain_site
        from installer.platform.explain import lines

        console.print("", highlight=False)
        from installer.platform.site_flows import declared

        for line in lines(explain_site(result, inv, declared(inv))):
            console.print(line, highlight=False, markup=False)
    refuse_incoherent(inv, result, BundleLayout.at(bundle).read_index())
    console.print("[green]ok[/] coherence: every reference resolves, every pod is admitted and fits a node, every "
                  "declared flow is allowed and no other", highlight=False)


@charts_app.command("images")
def images(
    archive: Path = typer.Argument(..., help="chart archive (.tgz)"),
    values: Optional[Path] = typer.Option(None, "--values", "-f", help="values file (YAML)"),
    why: Optional[str] = typer.Option(None, "--why", help="show every place this image reference is found"),
    namespace: str = typer.Option("default", "--namespace", "-n", help="release namespace"),
    kube_version: Optional[str] = typer.Option(None, "--kube-version", help="Kubernetes version the chart sees"),
    as_json: bool = typer.Option(False, "--json", help="findings as JSON"),
) -> None:
    """What image discovery finds in one chart, and where (chart, kind, object, field path)."""
    from installer.render.chart_images import chart_images

    res = chart_images(archive, values, namespace, kube_version, why)
    name, findings = res.name, res.findings
    if as_json:
        sys.stdout.write(json.dumps([{"ref": f.ref.name, "raw": f.ref.raw, "kind": f.kind, "name": f.name,
                                      "path": f.path, "how": f.how, "tagged": f.ref.tagged} for f in findings],
                                    indent=1) + "\n")
        return
    if why:
        for f in findings:
            console.print(f"{f.ref.name}  {f.kind} {f.name}  {f.path}  (as written: {f.ref.raw})", highlight=False)
        return
    by_ref: dict[str, list] = {}
    for f in findings:
        by_ref.setdefault(f.ref.name, []).append(f)
    for ref, fs in sorted(by_ref.items()):
        flag = "" if fs[0].ref.tagged and not fs[0].ref.latest else "  [red](refused: not pinned)[/]"
        console.print(f"{ref}{flag}", highlight=False)
        first = fs[0]
        more = f" (+{len(fs) - 1} more)" if len(fs) > 1 else ""
        console.print(f"    {first.kind} {first.name}  {first.path}{more}", highlight=False)
    console.print(f"{len(by_ref)} images in chart {name} {res.version}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("render")(render)
    app.add_typer(charts_app, name="charts", help="Inspect chart archives: the images discovery finds, and where.")
