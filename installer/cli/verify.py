"""medai verify: scan every host with OpenSCAP (on the host itself) and the K3s CIS checks, then write one
evidence report; exit 1 when an unwaived failure at or above --fail-on remains.

`medai install` calls ``run_verify`` at its end with the same arguments.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.compliance.report import SEVERITY_CHOICES, ReportResult, bundle_status, check_inputs, merge, now, write_report
from installer.compliance.waivers import Waivers, load_waivers
from installer.core.errors import ComplianceError
from installer.core.resources import package_file
from installer.inference.evidence import add_to_report

console = Console()
K3S_CHECKER = package_file("compliance", "k3s_checks.py")


def run_verify(
    inventory: Path,
    bundle: Path | None,
    out_dir: Path,
    profile: str | None = None,
    fail_on: str = "high",
    waivers: Path | None = None,
    *,
    key: Path | None = None,
    rules: list[str] | None = None,
    console: Console = console,
) -> ReportResult:
    """Run playbooks/verify.yml on every host of ``inventory``, merge the fetched results, write the report.

    ``bundle`` is the bundle the hosts were installed from (default: the inventory's medai_bundle_dir): its
    files/ directory carries the SCAP datastreams and its index digest goes into the report. The SHA-256 of
    the report is recorded in the run record (.medai/runs/<id>/run.json, key "evidence").
    """
    from installer.deploy.inventory import load_inventory
    from installer.deploy.preinstall import bundle_path
    from installer.deploy.runner import run_playbook
    from installer.deploy.state import new_run

    if fail_on not in SEVERITY_CHOICES:
        raise ComplianceError(f"--fail-on {fail_on!r}: choose one of {', '.join(SEVERITY_CHOICES)}")
    waiver_set = load_waivers(waivers) if waivers else Waivers.empty()  # bad waivers fail before any host is touched
    inv = load_inventory(inventory)
    root = bundle_path(inv, bundle)
    verified_index = None
    if key is not None:
        # the datastreams are read from the checked private copy; the report's signature line comes from it too
        from installer.deploy.state import state_dir
        from installer.deploy.working_copy import verified_working_copy

        vb = verified_working_copy(root, key, False, state_dir())
        root, verified_index = vb.root, vb.index
    bundle_info = bundle_status(root, key)
    content_dir = root / "files"

    out_dir = out_dir.absolute()
    hosts_dir = out_dir / "hosts"
    if hosts_dir.exists():
        shutil.rmtree(hosts_dir)  # results of an earlier run must never be merged into this one
    hosts_dir.mkdir(parents=True)

    started = now()
    record = new_run("verify", inventory, root / "index.json")
    extravars = {
        "medai_compliance_fetch_dir": str(out_dir),
        "medai_compliance_content_dir": str(content_dir),
        "medai_compliance_k3s_checker": str(K3S_CHECKER),
    }
    if profile:
        extravars["medai_compliance_profile"] = profile
    if rules:
        extravars["medai_compliance_rules"] = rules
    extravars.update(_weight_check_vars(root))
    summary = run_playbook(record, "verify.yml", inventory, extravars, {}, console=console,
                           host_key_checking=inv.site.medai_ssh_host_key_checking)
    if summary.status != "successful" or summary.failed or summary.unreachable:
        record.finish("failed", summary.to_json())
        first = summary.failures[0] if summary.failures else f"ansible-runner status {summary.status}, rc {summary.rc}"
        raise ComplianceError(
            f"verify: scan failed ({summary.failed} failed, {summary.unreachable} unreachable): {first}; run record {record.dir}"
        )

    report = merge(out_dir, waivers=waiver_set, fail_on=fail_on, bundle=bundle_info, started=started)
    check_inputs(report, verified_index, verified_index is not None, waiver_set.source)
    add_to_report(report, hosts_dir)
    from installer.compliance.install_evidence import add_install_evidence
    from installer.deploy.state import state_dir

    add_install_evidence(report, state_dir() / "runs", inventory)
    report["runRecord"] = str(record.dir)
    result = write_report(out_dir, report)
    record.data["evidence"] = {
        "dir": str(out_dir),
        "sha256": result.sha256,
        "failOn": fail_on,
        "gatePassed": result.passed,
        "totals": report["totals"],
    }
    record.finish("successful" if result.passed else "gate-failed", summary.to_json())
    return result


def _weight_check_vars(root: Path) -> dict:
    """The weight check for gpu hosts (playbooks/verify.yml): the models the bundle index lists, if any."""
    import json

    from installer.inference.evidence import weights_to_check

    index = root / "index.json"
    if not index.is_file():
        return {}
    weights = weights_to_check(json.loads(index.read_bytes()))
    if not weights:
        return {}
    return {"medai_inference_checker": str(package_file("trust", "model_check.py")), "medai_inference_weights_check": weights}


def _print(result: ReportResult) -> None:
    t = result.report["totals"]
    console.print(
        f"evidence: {result.html_path} (sha256 {result.sha256['evidence.html'][:16]}…), {result.json_path}\n"
        f"rules: pass={t['pass']} fail={t['fail']} error={t['error']} notapplicable={t['notapplicable']} "
        f"waived={t['waived']} unwaived failures={t['failNotWaived']}; K3s checks failed={t['k3sFail']} skipped={t['k3sSkipped']}",
        highlight=False,
    )
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
        "high", "--fail-on", help="exit 1 if an unwaived rule of this severity or higher fails: low|medium|high|none"
    ),
    waivers: Optional[Path] = typer.Option(None, "--waivers", help="waivers YAML (rule, scope, justification, expires)"),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="bundle directory (default: medai_bundle_dir)"),
    key: Optional[Path] = typer.Option(None, "--key", help="public key to check the bundle index signature with"),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="evaluate only this XCCDF rule id (repeatable)"),
) -> None:
    """Prove compliance: OpenSCAP on every host, K3s CIS checks on servers, one evidence report."""
    result = run_verify(inventory, bundle, out, profile, fail_on, waivers, key=key, rules=rule)
    _print(result)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
