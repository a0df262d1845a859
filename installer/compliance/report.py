"""Merge what `playbooks/verify.yml` fetched from every host into one evidence report (JSON + HTML).

    OUT/hosts/<host>/arf.xml       ARF results of `oscap xccdf eval`, run on the host itself
    OUT/hosts/<host>/oscap.html    oscap's own HTML report for that host
    OUT/hosts/<host>/k3s.json      K3s CIS checks (servers only)
    OUT/hosts/<host>/meta.json     groups, OS, profile, datastream file and its sha256
    OUT/evidence.json, OUT/evidence.html, OUT/evidence.sha256   written here

Raw totals are the ARF counts, untouched; a waiver changes a rule's *effective* result to "waived", never its raw one.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from installer.compliance.arf import RESULTS, SEVERITIES, parse_arf, severity_rank, short_rule_id
from installer.compliance.waivers import Waivers
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import ComplianceError
from installer.core.hashing import sha256_file
from installer.trust.index_signature import index_signature_problem, read_signature_file
from installer.trust.keys import load_public_key

FAILING = ("fail", "error")
SEVERITY_CHOICES = ("low", "medium", "high", "none")
# The gate fails on an unwaived medium failure unless a site chooses otherwise; a laxer gate gets a banner.
DEFAULT_FAIL_ON = "medium"


@dataclass
class ReportResult:
    json_path: Path
    html_path: Path
    sha256: dict[str, str]
    report: dict
    blocking: list[dict] = field(default_factory=list)
    fail_on: str = DEFAULT_FAIL_ON

    @property
    def passed(self) -> bool:
        return not self.blocking

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def bundle_status(bundle: Path | None, key: Path | None = None) -> dict:
    """Index digest and signature status of the bundle the hosts were installed from."""
    if bundle is None:
        return {"path": None, "indexSha256": None, "signature": "no bundle given"}
    index = bundle / "index.json"
    if not index.is_file():
        raise ComplianceError(f"{index}: missing: --bundle must point at a finished medai bundle")
    out = {"path": str(bundle), "indexSha256": sha256_file(index)}
    sig = bundle / "index.json.sig"
    if not sig.is_file():
        out["signature"] = "unsigned (no index.json.sig)"
    elif key is None:
        out["signature"] = "present, not verified (no --key given)"
    else:
        problem = index_signature_problem(load_public_key(key), index.read_bytes(), read_signature_file(sig), sig.name)
        out["signature"] = f"verified with {key}" if problem is None else f"INVALID for {key}: {problem}"
    return out


def check_inputs(report: dict, index: dict | None, verified: bool, waivers_source: Path | None) -> list[dict]:
    """Every input of the evidence (each host's SCAP datastream, the waivers file) against the verified index.

    status "signed" (its sha256 is the one the verified, signed index lists), "UNSIGNED" (no verified index, or
    not a bundle file: the report names it so), or "MISMATCH" (differs from the signed index: blocks the gate).
    Returns the inputs, also stored as report["inputs"]; mismatches go to the front of report["gate"]["blocking"].
    """
    listed = {f["path"]: f["sha256"] for f in (index or {}).get("files", [])} if verified else {}
    inputs: list[dict] = []
    for h in report["hosts"]:
        ds = h.get("datastream") or {}
        name, sha = ds.get("file"), ds.get("sha256")
        if not name:
            continue
        want = listed.get(f"files/{name}")
        status = "UNSIGNED" if not verified else ("signed" if want and want == sha else "MISMATCH")
        inputs.append({"kind": "datastream", "name": name, "host": h["host"], "sha256": sha, "status": status,
                       **({"signedSha256": want} if status == "MISMATCH" else {})})
    if waivers_source is not None:
        sha = sha256_file(waivers_source)
        inputs.append({"kind": "waivers", "name": str(waivers_source), "host": None, "sha256": sha,
                       "status": "signed" if sha in listed.values() else "UNSIGNED"})
    report["inputs"] = inputs
    for i in inputs:
        if i["status"] == "MISMATCH":
            report["gate"]["blocking"].insert(0, {
                "host": i["host"], "rule": "evidence-input-signature", "severity": "high", "result": "fail",
                "title": f"{i['kind']} {i['name']}: sha256 {i['sha256']} is not the {i.get('signedSha256') or 'listed'} "
                         "of the signed bundle index (the scan used content nobody signed)"})
    report["gate"]["passed"] = not report["gate"]["blocking"]
    unsigned = [f"{i['kind']} {i['name']}" for i in inputs if i["status"] == "UNSIGNED"]
    if unsigned:
        report["unsignedInputs"] = unsigned
    return inputs


def _k3s_rules(doc: dict) -> list[dict]:
    return [{"id": c["id"], "result": c["result"], "severity": c.get("severity", "medium"), "title": c["title"],
             "fix": c.get("fix", ""), "detail": c.get("detail", ""), "cis": c.get("cis", "")} for c in doc.get("checks", [])]


def _host_entry(hdir: Path, waivers: Waivers, used: dict[int, set[str]]) -> dict:
    host = hdir.name
    meta_path = hdir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    groups = meta.get("groups", [])
    entry: dict = {"host": host, "groups": groups, "os": meta.get("os", ""), "datastream": meta.get("datastream", {})}
    arf_path = hdir / "arf.xml"
    if not arf_path.is_file():
        raise ComplianceError(f"{arf_path}: missing: the scan of {host} left no ARF results")
    arf = parse_arf(arf_path)
    entry.update({
        "profile": {"id": arf.profile_id, "title": arf.profile_title},
        "content": {"benchmark": arf.benchmark_id, "version": arf.content_version},
        "scan": {"start": arf.start_time, "end": arf.end_time, "score": arf.score, "target": arf.target},
        "arf": {"path": str(arf_path), "sha256": sha256_file(arf_path)},
        "oscapHtml": str(hdir / "oscap.html") if (hdir / "oscap.html").is_file() else None,
        "totals": arf.counts(),
    })
    rules = []
    for r in arf.rules:
        rules.append({"id": r.id, "short": r.short_id, "result": r.result, "severity": r.severity, "title": r.title,
                      "fix": r.fix, "fixSystem": r.fix_system, "source": "oscap"})
    k3s_path = hdir / "k3s.json"
    if k3s_path.is_file():
        k3s_doc = json.loads(k3s_path.read_text())
        entry["k3s"] = {"apiRunning": k3s_doc.get("apiRunning"), "configFiles": k3s_doc.get("configFiles", []),
                        "totals": dict(Counter(c["result"] for c in k3s_doc.get("checks", [])))}
        for c in _k3s_rules(k3s_doc):
            rules.append({**c, "short": c["id"], "source": "k3s"})
    for r in rules:
        d = waivers.lookup(r["id"], host, groups)
        r["effective"] = r["result"]
        if d.waiver is not None and r["result"] in FAILING:
            idx = waivers.items.index(d.waiver)
            used.setdefault(idx, set()).add(host)
            r["waiver"] = {"justification": d.waiver.justification, "expires": d.waiver.expires.isoformat(),
                           "honoured": d.honoured, "note": d.note, "approvedBy": d.waiver.approvedBy}
            if d.honoured:
                r["effective"] = "waived"
    entry["rules"] = rules
    eff = Counter(r["effective"] for r in rules if r["source"] == "oscap")
    entry["effective"] = {"failNotWaived": eff.get("fail", 0) + eff.get("error", 0), "waived": eff.get("waived", 0)}
    return entry


def merge(out_dir: Path, *, waivers: Waivers, fail_on: str, bundle: dict, started: str | None = None) -> dict:
    """The evidence report as a dict (see module doc); ``fail_on`` is low|medium|high|none."""
    if fail_on not in SEVERITY_CHOICES:
        raise ComplianceError(f"--fail-on {fail_on!r}: choose one of {', '.join(SEVERITY_CHOICES)}")
    hosts_dir = out_dir / "hosts"
    host_dirs = sorted(p for p in hosts_dir.iterdir() if p.is_dir()) if hosts_dir.is_dir() else []
    if not host_dirs:
        raise ComplianceError(f"{hosts_dir}: no host results to merge (did the verify playbook reach any host?)")
    used: dict[int, set[str]] = {}
    hosts = [_host_entry(h, waivers, used) for h in host_dirs]

    totals = Counter()
    for h in hosts:
        totals.update(h["totals"])
    threshold = severity_rank(fail_on) if fail_on != "none" else 99
    blocking = [{"host": h["host"], "rule": r["id"], "severity": r["severity"], "title": r["title"], "result": r["result"]}
                for h in hosts for r in h["rules"]
                if r["effective"] in FAILING and severity_rank(r["severity"]) >= max(threshold, 1)]
    if str(bundle.get("signature", "")).startswith("INVALID"):
        blocking.insert(0, {"host": "-", "rule": "bundle-index-signature", "severity": "high", "result": "fail",
                            "title": f"bundle index signature: {bundle['signature']}"})
    waiver_rows = []
    for i, w in enumerate(waivers.items):
        status = "unused" if i not in used else ("honoured" if not w.expired(waivers.today) else "expired: not honoured")
        waiver_rows.append({"rule": w.rule, "scope": w.scope_text(), "justification": w.justification, "expires": w.expires.isoformat(),
                            "approvedBy": w.approvedBy, "status": status, "appliedTo": sorted(used.get(i, set()))})
    all_rules = [r for h in hosts for r in h["rules"]]
    # per severity, every unwaived failing result (OpenSCAP rules and K3s checks, one per host and rule)
    unwaived = Counter(r["severity"] if r["severity"] in SEVERITIES else "unknown" for r in all_rules if r["effective"] in FAILING)
    return {
        "apiVersion": "medai/v1",
        "kind": "EvidenceReport",
        "started": started or now(),
        "generated": now(),
        "bundle": bundle,
        "failOn": fail_on,
        "waiversFile": {"path": str(waivers.source), "sha256": sha256_file(waivers.source)} if waivers.source else None,
        "totals": {k: totals.get(k, 0) for k in RESULTS} | {
            "waived": sum(1 for r in all_rules if r["effective"] == "waived" and r["source"] == "oscap"),
            "failNotWaived": sum(h["effective"]["failNotWaived"] for h in hosts),
            "k3sFail": sum(1 for r in all_rules if r["source"] == "k3s" and r["effective"] == "fail"),
            "k3sSkipped": sum(1 for r in all_rules if r["source"] == "k3s" and r["result"] == "skipped"),
            "unwaivedBySeverity": {s: unwaived.get(s, 0) for s in SEVERITIES},
        },
        "profiles": sorted({f"{h['profile']['id']} ({h['content']['benchmark']} {h['content']['version']})" for h in hosts}),
        "gate": {"failOn": fail_on, "passed": not blocking, "blocking": blocking,
                 "banner": gate_banner(fail_on, unwaived)},
        "waivers": waiver_rows,
        "hosts": hosts,
    }


def add_certificates(report: dict, runs: Path, inventory: Path, now: dt.datetime | None = None) -> dict:
    """report["certificates"]: every certificate the newest `medai certs` of this inventory read (its run record's
    summary), days left counted again at the report's time against the thresholds it recorded."""
    now = now or dt.datetime.now(dt.UTC)
    want = str(Path(inventory).resolve())
    recs = []
    for f in runs.glob("*/run.json") if runs.is_dir() else []:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if data.get("command") == "certs" and data.get("result") == "ok" and (data.get("inventory") or {}).get("path") == want:
            recs.append((f.stat().st_mtime_ns, data))
    if not recs:
        report["certificates"] = {"run": None, "read": None, "items": []}
        return report
    rec = max(recs, key=lambda r: r[0])[1]
    summary = rec.get("summary") or {}
    warn, crit = summary.get("warnDays", 30), summary.get("critDays", 7)
    items = []
    for c in summary.get("certificates") or []:
        left = None
        if c.get("notAfter") and not c.get("error"):
            left = round((dt.datetime.fromisoformat(c["notAfter"]) - now).total_seconds() / 86400, 1)
        level = "crit" if c.get("error") or (left is not None and left < crit) else \
            "warn" if left is not None and left < warn else "ok"
        items.append({k: c.get(k) for k in ("group", "where", "name", "subject", "issuer", "notAfter", "error")}
                     | {"daysLeft": left, "level": level})
    items.sort(key=lambda i: (i["daysLeft"] if i["daysLeft"] is not None else -1e9 if i["error"] else 1e9))
    report["certificates"] = {"run": rec.get("id"), "read": rec.get("finished"), "warnDays": warn, "critDays": crit,
                              "items": items}
    return report


def gate_banner(fail_on: str, unwaived: Counter) -> str | None:
    """The report's warning when the gate is laxer than medai's default: which unwaived failures it lets through."""
    if severity_rank(fail_on) <= severity_rank(DEFAULT_FAIL_ON) and fail_on != "none":
        return None
    below = [s for s in SEVERITIES if unwaived.get(s, 0) and (fail_on == "none" or severity_rank(s) < severity_rank(fail_on))]
    let_through = ", ".join(f"{unwaived[s]} {s}" for s in below) or "none at present"
    what = "is off (--fail-on none)" if fail_on == "none" else f"fails only on {fail_on}"
    return (f"The gate {what}: a site's choice, not medai's default ({DEFAULT_FAIL_ON}). "
            f"Unwaived failures it does not block: {let_through}.")


def _failures_by_severity(report: dict) -> list[tuple[str, list[dict]]]:
    """Failed rules across hosts, one entry per rule with the hosts it failed on, grouped high → low."""
    by_rule: dict[str, dict] = {}
    for h in report["hosts"]:
        for r in h["rules"]:
            if r["effective"] in FAILING:
                e = by_rule.setdefault(r["id"], {**r, "hosts": []})
                e["hosts"].append(h["host"])
    groups = []
    for sev in SEVERITIES:
        items = sorted((r for r in by_rule.values() if (r["severity"] if r["severity"] in SEVERITIES else "unknown") == sev),
                       key=lambda r: r["title"])
        if items:
            groups.append((sev, items))
    return groups


def render_html(report: dict) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("installer.compliance", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    waived = [(h["host"], r) for h in report["hosts"] for r in h["rules"] if r["effective"] == "waived"]
    expired = [(h["host"], r) for h in report["hosts"] for r in h["rules"] if r.get("waiver") and not r["waiver"]["honoured"]]
    return env.get_template("evidence.html.j2").render(
        r=report, failures=_failures_by_severity(report), waived=waived, expired=expired, results=RESULTS, short=short_rule_id
    )


def _write(path: Path, data: bytes) -> str:
    atomic_write_bytes(path, data)
    return sha256_file(path)


def write_report(out_dir: Path, report: dict) -> ReportResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "evidence.json", out_dir / "evidence.html"
    sums = {
        "evidence.json": _write(json_path, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode()),
        "evidence.html": _write(html_path, render_html(report).encode()),
    }
    # sha256sum -c format, so an auditor can check the pair without medai
    _write(out_dir / "evidence.sha256", "".join(f"{v}  {k}\n" for k, v in sums.items()).encode())
    return ReportResult(json_path, html_path, sums, report, report["gate"]["blocking"], report["failOn"])
