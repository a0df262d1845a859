"""The merged evidence report, built from real ARF files (oscap in a lab-image container) and real K3s check output."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from installer.compliance import k3s_checks
from installer.compliance.arf import parse_arf
from installer.compliance.report import bundle_status, merge, render_html, write_report
from installer.compliance.waivers import load_waivers
from installer.core.errors import ComplianceError
from tests.compliance.conftest import oscap_listing
from tests.compliance.test_k3s_checks import write_tree

pytestmark = pytest.mark.lab
TODAY = dt.date(2026, 11, 22)
NO_ROOT = "xccdf_org.ssgproject.content_rule_sudoers_no_root_target"
SUDOERSD = "xccdf_org.ssgproject.content_rule_directory_permissions_etc_sudoersd"


@pytest.fixture
def evidence_dir(tmp_path, debian_scan):
    """Two hosts' fetched results, laid out as playbooks/verify.yml leaves them; srv1 is a K3s server (not running)."""
    out = tmp_path / "evidence"
    for host, groups in (("srv1", ["servers"]), ("agt1", ["agents"])):
        d = out / "hosts" / host
        d.mkdir(parents=True)
        shutil.copy(debian_scan.arf, d / "arf.xml")
        (d / "meta.json").write_text(json.dumps({"host": host, "groups": groups, "os": "Debian-12"}))
    root = tmp_path / "srv1-root"
    write_tree(root, compliant=False)
    (out / "hosts" / "srv1" / "k3s.json").write_text(json.dumps(k3s_checks.run(str(root))))
    return out


@pytest.fixture
def waivers(tmp_path):
    p = tmp_path / "waivers.yml"
    p.write_text(f"""
waivers:
  - rule: sudoers_no_root_target
    scope: {{hosts: [srv1]}}
    justification: break-glass root sudo on the first server, reviewed by the ISO (SEC-42)
    expires: 2027-02-28
    approvedBy: ISO
  - rule: {SUDOERSD}
    scope: all
    justification: pilot acceptance that has run out
    expires: 2026-10-01
""")
    return load_waivers(p, today=TODAY)


def test_totals_equal_the_arf_counts(evidence_dir, waivers, debian_scan):
    rep = merge(evidence_dir, waivers=waivers, fail_on="high", bundle={"signature": "none"})
    per_arf = Counter(oscap_listing(debian_scan.stdout).values())
    for h in rep["hosts"]:
        assert {k: v for k, v in h["totals"].items() if v} == dict(per_arf)
    assert {k: v for k, v in rep["totals"].items() if k in per_arf} == {k: 2 * v for k, v in per_arf.items()}
    assert rep["hosts"][1]["profile"]["title"] == "ANSSI-BP-028 (intermediary)"  # sorted: agt1, srv1
    assert rep["hosts"][1]["content"]["version"] == "0.1.76"


def test_waived_rule_is_waived_only_where_scoped_and_expired_waiver_is_not_honoured(evidence_dir, waivers):
    rep = merge(evidence_dir, waivers=waivers, fail_on="medium", bundle={"signature": "none"})
    rules = {h["host"]: {r["id"]: r for r in h["rules"]} for h in rep["hosts"]}
    assert rules["srv1"][NO_ROOT]["result"] == "fail" and rules["srv1"][NO_ROOT]["effective"] == "waived"
    assert rules["agt1"][NO_ROOT]["effective"] == "fail"  # scope is srv1 only
    for host in ("srv1", "agt1"):
        r = rules[host][SUDOERSD]
        assert r["effective"] == "fail" and r["waiver"]["honoured"] is False and "EXPIRED" in r["waiver"]["note"]
    assert rep["totals"]["waived"] == 1
    status = {w["rule"]: w["status"] for w in rep["waivers"]}
    assert status[NO_ROOT] == "honoured" and status[SUDOERSD].startswith("expired")
    blocking = {(b["host"], b["rule"]) for b in rep["gate"]["blocking"]}
    assert ("srv1", NO_ROOT) not in blocking and ("agt1", NO_ROOT) in blocking and ("srv1", SUDOERSD) in blocking


def test_fail_on_threshold_decides_the_gate(evidence_dir, waivers, debian_scan):
    sev = Counter(r.severity for r in parse_arf(debian_scan.arf).failed())
    gates = {f: merge(evidence_dir, waivers=waivers, fail_on=f, bundle={})["gate"] for f in ("none", "high", "medium", "low")}
    assert gates["none"]["passed"] and not gates["none"]["blocking"]
    assert len(gates["medium"]["blocking"]) > len(gates["high"]["blocking"])
    assert len(gates["low"]["blocking"]) >= len(gates["medium"]["blocking"])
    # high gate: only high-severity oscap rules and high-severity K3s checks block
    assert all(b["severity"] == "high" for b in gates["high"]["blocking"])
    assert any(b["rule"] == "k3s_1.2.29_secrets_encryption" for b in gates["high"]["blocking"])
    assert sev  # the node really failed rules
    with pytest.raises(ComplianceError, match="--fail-on 'critical'"):
        merge(evidence_dir, waivers=waivers, fail_on="critical", bundle={})


def test_html_has_summary_first_then_failures_by_severity_with_fix_text(evidence_dir, waivers, tmp_path):
    rep = merge(evidence_dir, waivers=waivers, fail_on="medium", bundle={"path": "/b", "indexSha256": "ab" * 32, "signature": "unsigned"})
    res = write_report(evidence_dir, rep)
    html = res.html_path.read_text()
    assert html.index('id="summary"') < html.index('id="failures"') < html.index('id="waivers"')
    assert "Gate <b>FAILED</b>" in html
    heads = re.findall(r'<h3 id="severity-(\w+)">', html)
    assert heads == sorted(heads, key=["high", "medium", "low", "unknown", "info"].index) and "medium" in heads
    sec = html[html.index('id="severity-medium"'):]
    assert "Verify Permissions On /etc/sudoers.d Directory" in sec
    assert "chmod u-s,g-ws,o-xwrt" in sec  # the fix script from the content, HTML-escaped where needed
    assert "var_password_pam_minlen=&#39;15&#39;" in html
    assert "EXPIRED on 2026-10-01" in html and "break-glass root sudo" in html
    assert "ab" * 32 in html and "K3s CIS checks" in html and "skipped: no API" in html
    # the sha256 file matches the written files (sha256sum -c format)
    for line in (evidence_dir / "evidence.sha256").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((evidence_dir / name).read_bytes()).hexdigest() == digest == res.sha256[name]
    assert json.loads(res.json_path.read_text())["totals"] == rep["totals"]


def test_invalid_bundle_signature_is_reported_and_blocks_the_gate(evidence_dir, waivers, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    from installer.trust.keys import SigningKey, public_key_pem

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "index.json").write_text('{"kind": "BundleIndex"}')
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    (bundle / "index.json.sig").write_bytes(base64.b64encode(key.sign(b"some other index")))
    pub = tmp_path / "k.pub"
    pub.write_bytes(public_key_pem(key.public))
    st = bundle_status(bundle, pub)
    assert st["signature"].startswith("INVALID")
    gate = merge(evidence_dir, waivers=waivers, fail_on="none", bundle=st)["gate"]
    assert not gate["passed"] and gate["blocking"][0]["rule"] == "bundle-index-signature"
    (bundle / "index.json.sig").write_bytes(base64.b64encode(key.sign((bundle / "index.json").read_bytes())))
    assert bundle_status(bundle, pub)["signature"] == f"verified with {pub}"


def test_bundle_status_and_missing_results(tmp_path):
    with pytest.raises(ComplianceError, match="index.json: missing"):
        bundle_status(tmp_path)
    (tmp_path / "index.json").write_text("{}")
    st = bundle_status(tmp_path)
    assert st["indexSha256"] == hashlib.sha256(b"{}").hexdigest() and st["signature"].startswith("unsigned")
    (tmp_path / "hosts" / "h1").mkdir(parents=True)
    with pytest.raises(ComplianceError, match=r"h1/arf.xml: missing: the scan of h1 left no ARF results"):
        merge(tmp_path, waivers=load_waivers.__globals__["Waivers"].empty(), fail_on="high", bundle={})


# ---------------------------------------------------------------- evidence inputs against the signed index


def _with_datastream(evidence_dir: Path, sha: str) -> None:
    for host in ("srv1", "agt1"):
        meta = evidence_dir / "hosts" / host / "meta.json"
        doc = json.loads(meta.read_text())
        doc["datastream"] = {"file": "ssg-debian12-ds.xml", "sha256": sha}
        meta.write_text(json.dumps(doc))


def test_swapped_datastream_blocks_the_gate_and_an_unverified_one_is_named_unsigned(evidence_dir, waivers):
    from installer.compliance.report import check_inputs

    signed_sha = "a" * 64
    index = {"files": [{"path": "files/ssg-debian12-ds.xml", "size": 1, "sha256": signed_sha}]}
    _with_datastream(evidence_dir, signed_sha)
    rep = merge(evidence_dir, waivers=waivers, fail_on="none", bundle={"path": "/b", "indexSha256": "c" * 64, "signature": "verified"})
    inputs = check_inputs(rep, index, True, waivers.source)
    assert {(i["kind"], i["status"]) for i in inputs} == {("datastream", "signed"), ("waivers", "UNSIGNED")}
    assert rep["gate"]["passed"] and rep["unsignedInputs"] == [f"waivers {waivers.source}"]

    _with_datastream(evidence_dir, "b" * 64)  # the stick's datastream was swapped: the hosts scanned other content
    rep = merge(evidence_dir, waivers=waivers, fail_on="none", bundle={"path": "/b", "indexSha256": "c" * 64, "signature": "verified"})
    check_inputs(rep, index, True, None)
    assert not rep["gate"]["passed"]
    first = rep["gate"]["blocking"][0]
    assert first["rule"] == "evidence-input-signature" and "ssg-debian12-ds.xml" in first["title"] and signed_sha in first["title"]
    assert "Evidence inputs" in render_html(rep) and "MISMATCH" in render_html(rep)

    rep = merge(evidence_dir, waivers=waivers, fail_on="none", bundle={"signature": "present, not verified (no --key given)"})
    check_inputs(rep, index, False, None)  # no key: nothing is called signed
    assert {i["status"] for i in rep["inputs"]} == {"UNSIGNED"} and len(rep["unsignedInputs"]) == 2


def test_install_evidence_egress_and_postcheck_in_the_report(evidence_dir, waivers, tmp_path):
    """The egress ledger and the post-install check of the newest install (its run record) in JSON and HTML."""
    import json as _json

    from installer.compliance.install_evidence import add_install_evidence
    from installer.core.hashing import sha256_file
    from installer.deploy.egress import ledger_record

    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    run = tmp_path / "runs" / "20260101T000000Z-install-abcdef"
    run.mkdir(parents=True)
    seen = [{"address": "203.0.113.9", "packets": 2, "bytes": 80, "line": "203.0.113.9: 2 packet(s), 80 bytes"}]
    run.joinpath("run.json").write_text(_json.dumps({
        "id": run.name, "command": "install", "result": "failed",
        "inventory": {"path": str(inv.resolve()), "sha256": sha256_file(inv)},
        "egress": ledger_record({"srv1": [], "agt1": seen}),
        "postcheck": {"line": "12 pods, all images from bundle " + "d" * 64, "pods": 12}}))
    rep = merge(evidence_dir, waivers=waivers, fail_on="none", bundle={"path": "/b", "indexSha256": "d" * 64, "signature": "verified"})
    add_install_evidence(rep, tmp_path / "runs", inv)
    assert rep["gate"]["passed"] is False and rep["gate"]["blocking"][-1]["host"] == "agt1"
    html = render_html(rep)
    assert "Egress ledger (install 20260101T000000Z-install-abcdef)" in html
    assert "failed: 2 packet(s) outside the allowed networks" in html and "egress: agt1 sent packets" in html
    assert "12 pods, all images from bundle " + "d" * 64 in html
    out = write_report(tmp_path / "out", rep)
    assert _json.loads(out.json_path.read_text())["egress"]["nodes"]["agt1"][0]["address"] == "203.0.113.9"
