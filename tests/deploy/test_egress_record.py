"""The egress ledger's way into the run record and the evidence report: a recorded ansible-runner event of the
report's set_fact, the record's `egress` entry, the newest install of the inventory found among run records,
and the gate blocked by a node that sent anything (naming node and destination)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from rich.console import Console

from installer.compliance.install_evidence import add_install_evidence, latest_install
from installer.deploy.egress import ledger_record
from installer.deploy.runner import Progress, Summary

ROOT = Path(__file__).resolve().parents[2]
SEEN = [{"address": "192.0.2.2", "packets": 4, "bytes": 116, "line": "192.0.2.2: 4 packet(s), 116 bytes"}]


def _event(host, facts):
    return {"event": "runner_on_ok", "event_data": {"host": host, "task": "Egress | ledger of this node",
                                                     "res": {"changed": False, "ansible_facts": facts}}}


def test_progress_keeps_each_nodes_ledger():
    s = Summary()
    p = Progress(Console(file=open("/dev/null", "w")), s)
    p(_event("srv1", {"medai_egress_entries": []}))
    p(_event("agt1", {"medai_egress_entries": SEEN}))
    p(_event("agt1", {"other_fact": 1}))  # other set_facts leave it alone
    assert s.egress == {"srv1": [], "agt1": SEEN}
    rec = ledger_record(s.egress)
    assert rec["result"] == "failed" and rec["packets"] == 4
    assert rec["nodes"] == {"agt1": [{"address": "192.0.2.2", "packets": 4, "bytes": 116}], "srv1": []}
    assert rec["failures"] == [{"node": "agt1", "line": "egress: agt1 sent packets outside the cluster, node and allowed "
                                                        "networks: 192.0.2.2: 4 packet(s), 116 bytes"}]
    assert json.loads(json.dumps(s.to_json()))["egress"]["agt1"][0]["address"] == "192.0.2.2"


def test_no_report_is_not_run_and_clean_is_clean():
    assert ledger_record(None)["result"] == "not run"
    assert ledger_record({"srv1": []}) == {"result": "clean", "nodes": {"srv1": []}, "packets": 0, "failures": []}


def _record(runs: Path, name: str, inv: Path, command="install", result="successful", **extra):
    from installer.core.hashing import sha256_file

    (runs / name).mkdir(parents=True)
    (runs / name / "run.json").write_text(json.dumps({"id": name, "command": command, "result": result,
                                                      "inventory": {"path": str(inv.resolve()), "sha256": sha256_file(inv)},
                                                      **extra}))


def _report():
    return {"gate": {"blocking": [], "passed": True}}


def test_evidence_reads_the_latest_install_of_this_inventory(tmp_path):
    inv, other = tmp_path / "site.yml", tmp_path / "other.yml"
    inv.write_text("all: {}\n")
    other.write_text("all: {vars: {}}\n")
    runs = tmp_path / "runs"
    _record(runs, "20260101T000000Z-install-aaaaaa", inv, egress=ledger_record({"srv1": SEEN}))
    _record(runs, "20260102T000000Z-install-bbbbbb", inv, egress=ledger_record({"srv1": []}),
            postcheck={"line": "7 pods, all images from bundle " + "a" * 64, "pods": 7})
    _record(runs, "20260103T000000Z-install-check-cccccc", inv, command="install-check")
    _record(runs, "20260104T000000Z-install-dddddd", other, egress=ledger_record({"x": SEEN}))
    _record(runs, "20260105T000000Z-install-eeeeee", inv, result="running")
    assert latest_install(runs, inv)["id"] == "20260102T000000Z-install-bbbbbb"
    rep = add_install_evidence(_report(), runs, inv)
    assert rep["egress"]["result"] == "clean" and rep["gate"]["passed"]
    assert rep["postcheck"]["line"] == "7 pods, all images from bundle " + "a" * 64


def test_a_count_blocks_the_gate_naming_node_and_destination(tmp_path):
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    _record(tmp_path / "runs", "20260101T000000Z-install-aaaaaa", inv, result="failed", egress=ledger_record({"agt1": SEEN}))
    rep = add_install_evidence(_report(), tmp_path / "runs", inv)
    assert rep["gate"]["passed"] is False
    b = rep["gate"]["blocking"][0]
    assert b["host"] == "agt1" and b["rule"] == "egress-ledger" and "192.0.2.2: 4 packet(s)" in b["title"]
    assert rep["postcheck"]["line"].startswith("not run")


def test_no_install_yet(tmp_path):
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    rep = add_install_evidence(_report(), tmp_path / "runs", inv)
    assert rep["egress"]["run"] is None and rep["egress"]["result"] == "not run" and rep["gate"]["passed"]


def test_site_yml_ledger_on_by_default_and_tagged_always():
    plays = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    ledger = [(p["name"], r) for p in plays for r in p.get("roles", []) if isinstance(r, dict) and r.get("role") == "egress"]
    assert [r["vars"]["medai_egress_state"] for _, r in ledger] == ["present", "report", "absent"]
    on = "medai_egress_ledger | default(true) | bool and not ansible_check_mode"
    assert ledger[0][1]["when"] == on
    for _, r in ledger[1:]:  # the report waits for egress-report.yml when the platform is applied after site.yml
        assert r["when"] == on + " and not medai_egress_report_later | default(false) | bool"
    for _, r in ledger:
        assert r["tags"] == ["always"]
    later = yaml.safe_load((ROOT / "playbooks" / "egress-report.yml").read_text())
    assert [r["vars"]["medai_egress_state"] for p in later for r in p["roles"]] == ["report", "absent"]
    tasks = yaml.safe_load((ROOT / "roles" / "egress" / "tasks" / "main.yml").read_text())
    names = [t["name"] for t in tasks if "report" in str(t.get("when"))]
    # the table is removed before the assert that may fail the host
    assert names.index("Egress | table removed after the report") < names.index("Egress | nothing left the allowed networks")
