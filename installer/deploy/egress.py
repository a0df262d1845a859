"""The egress ledger's reading: `nft -j list table inet medai_egress` -> one entry per destination the node sent
packets to outside the allowed networks (roles/egress loads the rules; its filter plugin calls this)."""
from __future__ import annotations

import json

from installer.core.errors import InstallError
from installer.deploy.runner import run_playbook


def ledger(nft_json: str) -> list[dict]:
    """[{address, packets, bytes, line}] from the dynamic sets seen4/seen6 (per-element counters)."""
    out = []
    for item in json.loads(nft_json).get("nftables", []):
        s = item.get("set")
        if not isinstance(s, dict) or s.get("name") not in ("seen4", "seen6"):
            continue
        for el in s.get("elem") or []:
            e = el.get("elem", el) if isinstance(el, dict) else {"val": el}
            c = e.get("counter") or {}
            packets, nbytes = int(c.get("packets", 0)), int(c.get("bytes", 0))
            out.append({"address": e.get("val"), "packets": packets, "bytes": nbytes,
                        "line": f"{e.get('val')}: {packets} packet(s), {nbytes} bytes"})
    return sorted(out, key=lambda d: str(d["address"]))


def failure_line(node: str, entries: list[dict]) -> str | None:
    if not entries:
        return None
    return (f"egress: {node} sent packets outside the cluster, node and allowed networks: "
            + "; ".join(e["line"] for e in entries))


def ledger_record(per_host: dict[str, list[dict]] | None) -> dict:
    """The run record's `egress`: each node's count per destination, the total, and one failure line per node
    that sent anything ("not run" when no report came back, e.g. --check or medai_egress_ledger: false)."""
    if per_host is None:
        return {"result": "not run", "nodes": {}, "packets": 0, "failures": []}
    nodes = {h: [{k: e.get(k) for k in ("address", "packets", "bytes")} for e in entries]
             for h, entries in sorted(per_host.items())}
    failures = [{"node": h, "line": line} for h, entries in sorted(per_host.items()) if (line := failure_line(h, entries))]
    return {"result": "failed" if failures else "clean", "nodes": nodes,
            "packets": sum(int(e.get("packets") or 0) for es in per_host.values() for e in es), "failures": failures}


def report_after_platform(record, inv, console) -> dict:
    """playbooks/egress-report.yml once the platform's releases are applied (the ledger stayed on through them):
    the run record's `egress` is replaced by these counts; a count or a failed run raises naming node/destination."""

    summary = run_playbook(record, "egress-report.yml", inv.path, {}, {}, console=console,
                           host_key_checking=inv.site.medai_ssh_host_key_checking)
    record.data["egress"] = ledger_record(summary.egress)
    record.save()
    failures = record.data["egress"]["failures"]
    if failures or not summary.succeeded:
        first = failures[0]["line"] if failures else summary.first_failure
        if record.data.get("result") != "failed":
            record.finish("failed", error=first)
        raise InstallError(f"egress ledger: {first}; run record {record.dir}")
    return record.data["egress"]
