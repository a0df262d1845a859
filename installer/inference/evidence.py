"""The weight check's results in `medai verify`'s evidence report (kept small: one row per host and model).

The verify playbook runs the checker (installer/trust/model_check.py) on every gpu host for every model the
verified index lists, and fetches its JSON result to <out>/hosts/<host>/model-weights-<model>.json. A model that
did not pass blocks the gate like a failed high-severity rule.
"""
from __future__ import annotations

import json
from pathlib import Path

from installer.bundle.artifacts import BundleIndex
from installer.core.errors import ComplianceError
from installer.inference.weights import model_weights_index

PREFIX = "model-weights-"


def weights_to_check(index: dict) -> dict[str, str]:
    """{model name: weight list JSON} for every model in the (verified) index."""
    names = sorted(a.name for a in BundleIndex.of(index).artifacts("model"))
    return {n: json.dumps(model_weights_index(index, n), separators=(",", ":"), sort_keys=True) for n in names}


def collect(hosts_dir: Path) -> list[dict]:
    rows = []
    for f in sorted(hosts_dir.glob(f"*/{PREFIX}*.json")):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            raise ComplianceError(f"{f}: not JSON: the weight check's result is damaged") from None
        rows.append({"host": f.parent.name, "model": doc.get("model", f.stem[len(PREFIX):]), "result": doc.get("result", "error"),
                     "files": doc.get("files", 0), "bytesVerified": doc.get("bytesVerified", 0),
                     "problems": list(doc.get("problems") or [])[:5], "problemCount": doc.get("problemCount", 0)})
    return rows


def add_to_report(report: dict, hosts_dir: Path) -> dict:
    rows = collect(hosts_dir)
    report["modelWeights"] = rows
    for r in rows:
        if r["result"] != "passed":
            first = r["problems"][0] if r["problems"] else r["result"]
            report["gate"]["blocking"].append({"host": r["host"], "rule": "model-weights", "severity": "high",
                                               "result": "fail", "title": f"model {r['model']}: {first}"})
            report["gate"]["passed"] = False
    return report
