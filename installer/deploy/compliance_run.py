"""`medai verify`'s run: OpenSCAP on every host (on the host itself) and the K3s CIS checks through
playbooks/verify.yml, the fetched results merged into one evidence report, its SHA-256 in the run record."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from installer.compliance.install_evidence import add_install_evidence
from installer.compliance.report import (
    DEFAULT_FAIL_ON,
    SEVERITY_CHOICES,
    ReportResult,
    add_certificates,
    bundle_status,
    check_inputs,
    merge,
    now,
    write_report,
)
from installer.compliance.waivers import DEFAULT_WAIVERS, Waivers, load_waivers
from installer.core.errors import ComplianceError
from installer.core.resources import package_file, state_dir
from installer.deploy.inventory import load_inventory
from installer.deploy.preinstall import bundle_path
from installer.deploy.runner import run_playbook
from installer.deploy.state import new_run
from installer.deploy.working_copy import verified_working_copy
from installer.inference.evidence import add_to_report, weights_to_check

K3S_CHECKER = package_file("compliance", "k3s_checks.py")


def run_verify(
    inventory: Path,
    bundle: Path | None,
    out_dir: Path,
    profile: str | None = None,
    fail_on: str = DEFAULT_FAIL_ON,
    waivers: Path | None = DEFAULT_WAIVERS,
    *,
    key: Path | None = None,
    rules: list[str] | None = None,
    console: Console | None = None,
) -> ReportResult:
    """Run playbooks/verify.yml on every host of ``inventory``, merge the fetched results, write the report.

    ``bundle`` is the bundle the hosts were installed from (default: the inventory's medai_bundle_dir): its
    files/ directory carries the SCAP datastreams and its index digest goes into the report. The SHA-256 of
    the report is recorded in the run record (.medai/runs/<id>/run.json, key "evidence").
    """
    console = console or Console()

    if fail_on not in SEVERITY_CHOICES:
        raise ComplianceError(f"--fail-on {fail_on!r}: choose one of {', '.join(SEVERITY_CHOICES)}")
    waiver_set = load_waivers(waivers) if waivers else Waivers.empty()  # bad waivers fail before any host is touched
    inv = load_inventory(inventory)
    root = bundle_path(inv, bundle)
    verified_index = None
    if key is not None:
        # the datastreams are read from the checked private copy; the report's signature line comes from it too
        vb = verified_working_copy(root, key)
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
    extravars.update(weight_check_vars(root))
    summary = run_playbook(record, "verify.yml", inventory, extravars, {}, console=console,
                           host_key_checking=inv.site.medai_ssh_host_key_checking)
    if not summary.succeeded:
        record.finish("failed", summary.to_json())
        raise ComplianceError(f"verify: scan failed ({summary.counts}): {summary.first_failure}; run record {record.dir}")

    report = merge(out_dir, waivers=waiver_set, fail_on=fail_on, bundle=bundle_info, started=started)
    check_inputs(report, verified_index, verified_index is not None, waiver_set.source)
    add_to_report(report, hosts_dir)
    add_install_evidence(report, state_dir() / "runs", inventory)
    add_certificates(report, state_dir() / "runs", inventory)
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


def weight_check_vars(root: Path) -> dict:
    """The weight check for gpu hosts (playbooks/verify.yml): the models the bundle index lists, if any."""
    index = root / "index.json"
    if not index.is_file():
        return {}
    weights = weights_to_check(json.loads(index.read_bytes()))
    if not weights:
        return {}
    return {"medai_inference_checker": str(package_file("trust", "model_check.py")), "medai_inference_weights_check": weights}
