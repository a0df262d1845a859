"""The install's own evidence in `medai verify`'s report: the egress ledger and the post-install check of the
latest `medai install` of this inventory, read from its run record (STATE/runs/<id>/run.json).

    report["egress"]     {"run", "result": clean|failed|not run, "packets", "nodes": {host: [...]}, "failures"}
    report["postcheck"]  {"run", "line": "N pods, all images from bundle SHA256", "pods", ...} or "not run"

A node that sent anything outside the allowed networks blocks the gate like a failed high-severity rule.
"""
from __future__ import annotations

import json
from pathlib import Path

from installer.core.hashing import sha256_file


def latest_install(runs: Path, inventory: Path) -> dict | None:
    """The newest finished `install` run record (not --check) of this inventory file, or None."""
    if not runs.is_dir():
        return None
    want = str(Path(inventory).resolve())
    for d in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):  # names start with a UTC stamp
        try:
            data = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if data.get("command") == "install" and (data.get("inventory") or {}).get("path") == want \
                and data.get("result") in ("successful", "failed"):
            return data
    return None


def add_install_evidence(report: dict, runs: Path, inventory: Path) -> dict:
    rec = latest_install(runs, inventory)
    run = rec.get("id") if rec else None
    egress = (rec or {}).get("egress") or {"result": "not run", "nodes": {}, "packets": 0, "failures": []}
    report["egress"] = {"run": run, **egress}
    post = (rec or {}).get("postcheck")
    report["postcheck"] = {"run": run, **post} if post else {"run": run, "line": "not run (no platform applied)"}
    if rec is not None:
        inv_sha = sha256_file(inventory)
        if (rec.get("inventory") or {}).get("sha256") != inv_sha:
            report["egress"]["note"] = "the inventory changed since this install"
    for f in egress.get("failures") or []:
        report["gate"]["blocking"].append({"host": f["node"], "rule": "egress-ledger", "severity": "high",
                                           "result": "fail", "title": f["line"]})
        report["gate"]["passed"] = False
    return report
