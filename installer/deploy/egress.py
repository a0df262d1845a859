"""The egress ledger's reading: `nft -j list table inet medai_egress` -> one entry per destination the node sent
packets to outside the allowed networks (roles/egress loads the rules; its filter plugin calls this)."""
from __future__ import annotations

import json


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
