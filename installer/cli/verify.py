"""medai verify: scan every host with OpenSCAP (on the host itself) and the K3s CIS checks, then write one
evidence report (installer/deploy/compliance_run.py); exit 1 when an unwaived failure at or above --fail-on remains."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.compliance.report import DEFAULT_FAIL_ON, ReportResult
from installer.compliance.waivers import DEFAULT_WAIVERS

console = Console()


def _print(result: ReportResult) -> None:
    t = result.report["totals"]
    console.print(
        f"evidence: {result.html_path} (sha256 {result.sha256['evidence.html'][:16]}…), {result.json_path}\n"
        f"rules: pass={t['pass']} fail={t['fail']} error={t['error']} notapplicable={t['notapplicable']} "
        f"waived={t['waived']} unwaived failures={t['failNotWaived']}; K3s checks failed={t['k3sFail']} skipped={t['k3sSkipped']}\n"
        f"unwaived by severity: {', '.join(f'{k}={v}' for k, v in t['unwaivedBySeverity'].items())}",
        highlight=False,
    )
    if result.report["gate"].get("banner"):
        console.print(f"[bold yellow]gate at {result.fail_on}[/]: {result.report['gate']['banner']}", highlight=False)
    for name in result.report.get("unsignedInputs", []):
        console.print(f"[bold yellow]UNSIGNED input[/]: {name} (not checked against a signed bundle index)", highlight=False)
    if result.passed:
        console.print(f"[green]gate passed[/]: no unwaived failure at or above {result.fail_on}", highlight=False)
    else:
        console.print(f"[bold red]gate failed[/]: {len(result.blocking)} unwaived failure(s) at or above {result.fail_on}", highlight=False)
        for b in result.blocking[:15]:
            console.print(f"  {b['severity']:<7} {b['host']:<16} {b['rule']}", highlight=False)
        if len(result.blocking) > 15:
            console.print(f"  … and {len(result.blocking) - 15} more (see the report)", highlight=False)


def verify(
    inventory: Path = typer.Option(..., "--inventory", "-i", help="site inventory"),
    profile: Optional[str] = typer.Option(
        None, "--profile", help="XCCDF profile id for every host (default: by OS, or medai_compliance_profile per group)"
    ),
    out: Path = typer.Option(Path("evidence"), "--out", help="directory for ARF files and the evidence report"),
    fail_on: str = typer.Option(
        DEFAULT_FAIL_ON, "--fail-on", help="exit 1 if an unwaived rule of this severity or higher fails: low|medium|high|none"
    ),
    waivers: Optional[Path] = typer.Option(
        None, "--waivers", help=f"waivers YAML (rule, scope, justification, expires); default: medai's own, {DEFAULT_WAIVERS.name}"
    ),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="bundle directory (default: medai_bundle_dir)"),
    key: Optional[Path] = typer.Option(None, "--key", help="public key to check the bundle index signature with"),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="evaluate only this XCCDF rule id (repeatable)"),
) -> None:
    """Prove compliance: OpenSCAP on every host, K3s CIS checks on servers, one evidence report."""
    from installer.deploy.compliance_run import run_verify

    result = run_verify(inventory, bundle, out, profile, fail_on, waivers or DEFAULT_WAIVERS, key=key, rules=rule, console=console)
    _print(result)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
