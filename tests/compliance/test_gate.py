"""The evidence gate's defaults: medium, medai's default waivers, and what the hardening role remediates.

Result sets here are ARF-shaped documents whose Benchmark carries the real ComplianceAsCode rules (titles,
severities, fixes) copied from the Debian 12 datastream the bundle ships; only the per-host results are chosen.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from lxml import etree

from installer.compliance.arf import NS, RULE_PREFIX, XCCDF
from installer.compliance.report import DEFAULT_FAIL_ON, bundle_status, merge, write_report
from installer.compliance.waivers import DEFAULT_WAIVERS, load_waivers
from tests.compliance.conftest import DEBIAN_DS, DEBIAN_PROFILE

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "hardening"
DOCS = ROOT / "docs" / "compliance.md"
# The profile's medium rules that failed on every lab host before the hardening role remediated them: each has a block, toggle and tag.
ISSUE_RULES = [
    "accounts_passwords_pam_faillock_deny", "accounts_passwords_pam_faillock_interval",
    "accounts_passwords_pam_faillock_unlock_time", "sudo_add_requiretty", "sudo_add_umask",
    "sudoers_explicit_command_args", "sudoers_no_root_target",
]
# ... of which these are remediated by default (the other two conflict with medai's become: waived by default)
REMEDIATED = ISSUE_RULES[:5]
WAIVED_BY_DEFAULT = ["sudo_add_noexec", "sudoers_explicit_command_args", "sudoers_no_root_target"]


@pytest.fixture(scope="module")
def real_rules() -> dict[str, etree._Element]:
    if not DEBIAN_DS.is_file():
        pytest.fail(f"{DEBIAN_DS}: missing (bash .ci/setup-host.sh puts the ComplianceAsCode datastream there)")
    tree = etree.parse(str(DEBIAN_DS), etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True))
    out = {}
    for short in ISSUE_RULES + WAIVED_BY_DEFAULT:
        el = tree.find(f".//x:Rule[@id='{RULE_PREFIX}{short}']", NS)
        assert el is not None, f"{short} is not in {DEBIAN_DS.name}"
        out[short] = el
    return out


def write_results(out: Path, host: str, groups: list[str], rules: dict[str, etree._Element], results: dict[str, str]) -> None:
    """OUT/hosts/<host>/arf.xml + meta.json, as playbooks/verify.yml fetches them."""
    x = f"{{{XCCDF}}}"
    root = etree.Element("asset-report-collection")
    bench = etree.SubElement(root, x + "Benchmark", id="xccdf_org.ssgproject.content_benchmark_DEBIAN-12")
    etree.SubElement(bench, x + "version").text = "0.1.76"
    prof = etree.SubElement(bench, x + "Profile", id=DEBIAN_PROFILE)
    etree.SubElement(prof, x + "title").text = "ANSSI-BP-028 (intermediary)"
    for el in rules.values():
        bench.append(etree.fromstring(etree.tostring(el)))
    tr = etree.SubElement(root, x + "TestResult", id="xccdf_org.open-scap_testresult_" + DEBIAN_PROFILE)
    etree.SubElement(tr, x + "benchmark", id=bench.get("id"))
    etree.SubElement(tr, x + "profile", idref=DEBIAN_PROFILE)
    etree.SubElement(tr, x + "target").text = host
    for short, result in results.items():
        rr = etree.SubElement(tr, x + "rule-result", idref=RULE_PREFIX + short, severity=rules[short].get("severity"))
        etree.SubElement(rr, x + "result").text = result
    d = out / "hosts" / host
    d.mkdir(parents=True)
    (d / "arf.xml").write_bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    (d / "meta.json").write_text(json.dumps({"groups": groups, "os": "Debian 12"}))


def lab_results(out: Path, rules, turned_off: dict[str, str]) -> None:
    """Three lab hosts after the hardening role: remediated rules pass, the waived ones fail; a rule whose
    remediation is turned off on a host (turned_off: host -> rule) fails there."""
    for host, groups in (("srv1", ["servers"]), ("agent1", ["agents"]), ("agent2", ["agents"])):
        results = {r: ("pass" if r in REMEDIATED else "fail") for r in ISSUE_RULES} | {"sudo_add_noexec": "fail"}
        if host in turned_off:
            results[turned_off[host]] = "fail"
        write_results(out, host, groups, rules, results)


def test_default_gate_fails_naming_the_rule_and_host_when_one_remediation_is_off(real_rules, tmp_path):
    lab_results(tmp_path, real_rules, {"agent1": "accounts_passwords_pam_faillock_deny"})
    report = merge(tmp_path, waivers=load_waivers(DEFAULT_WAIVERS), fail_on=DEFAULT_FAIL_ON, bundle=bundle_status(None))
    result = write_report(tmp_path, report)
    assert DEFAULT_FAIL_ON == "medium" and result.exit_code == 1
    assert [(b["host"], b["rule"], b["severity"]) for b in result.blocking] == [
        ("agent1", RULE_PREFIX + "accounts_passwords_pam_faillock_deny", "medium")]
    assert report["totals"]["unwaivedBySeverity"] == {"high": 0, "medium": 1, "low": 0, "unknown": 0, "info": 0}
    html = result.html_path.read_text()
    assert "Gate <b>FAILED</b>" in html and "medium 1" in html and 'id="gate-banner"' not in html


def test_default_gate_passes_when_every_remediation_is_on_and_the_conflicts_are_waived(real_rules, tmp_path):
    lab_results(tmp_path, real_rules, {})
    report = merge(tmp_path, waivers=load_waivers(DEFAULT_WAIVERS), fail_on=DEFAULT_FAIL_ON, bundle=bundle_status(None))
    assert report["gate"]["passed"] and report["gate"]["banner"] is None
    assert report["totals"]["waived"] == 3 * len(WAIVED_BY_DEFAULT)
    assert report["totals"]["unwaivedBySeverity"]["medium"] == report["totals"]["unwaivedBySeverity"]["high"] == 0


def test_gate_at_high_passes_a_medium_failure_and_says_so_in_a_banner(real_rules, tmp_path):
    lab_results(tmp_path, real_rules, {"srv1": "sudo_add_requiretty"})
    report = merge(tmp_path, waivers=load_waivers(DEFAULT_WAIVERS), fail_on="high", bundle=bundle_status(None))
    result = write_report(tmp_path, report)
    assert result.passed
    assert "fails only on high" in report["gate"]["banner"] and "1 medium" in report["gate"]["banner"]
    html = result.html_path.read_text()
    assert 'id="gate-banner"' in html and html.index('id="gate-banner"') < html.index('<section id="failures">')


def test_default_waivers_are_justified_unexpired_documented_and_never_cover_a_remediated_rule():
    waivers = load_waivers(DEFAULT_WAIVERS)
    shorts = [w.rule.removeprefix(RULE_PREFIX) for w in waivers.items]
    assert set(WAIVED_BY_DEFAULT) <= set(shorts) and not set(REMEDIATED) & set(shorts)
    assert all(w.expires > dt.date.today() and w.scope == "all" for w in waivers.items)
    section = DOCS.read_text().split("## Default waivers", 1)[1].split("\n## ", 1)[0]
    for short in shorts:
        row = next((line for line in section.splitlines() if f"`{short}`" in line), None)
        assert row is not None, f"docs/compliance.md, Default waivers: no row for {short}"
        assert str(next(w.expires for w in waivers.items if w.rule.endswith(short))) in row, row


def _tasks(path: Path) -> list[dict]:
    out = []
    for t in yaml.safe_load(path.read_text()) or []:
        out.append(t)
        out.extend(_tasks_in(t))
    return out


def _tasks_in(task: dict) -> list[dict]:
    inner = []
    for t in task.get("block", []):
        inner.append(t)
        inner.extend(_tasks_in(t))
    return inner


def test_each_issue_rule_has_its_toggle_its_tag_and_its_id_in_the_task_names():
    """A rule's own tasks (a block, or one task such as removing its drop-in when turned off) carry its tag, its id
    in their names and its toggle; where its file is written by the shared managed-files call, that call carries its
    tag and the rule's entry is chosen by its toggle (vars/main.yml)."""
    tasks = [t for f in sorted((ROLE / "tasks").glob("*.yml")) if f.name != "reset.yml" for t in _tasks(f)]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    role_vars = (ROLE / "vars" / "main.yml").read_text()
    shared = [t for t in tasks if "medai_host_state" in t]
    for rule in ISSUE_RULES:
        toggle = f"medai_hardening_{rule}"
        assert toggle in defaults and specs[toggle]["default"] == defaults[toggle], toggle
        own = [t for t in tasks if f"rule_{rule}" in t.get("tags", []) and f"Rule {rule}:" in t["name"]]
        written = [t for t in shared if f"rule_{rule}" in t.get("tags", [])]
        assert own or written, f"no task of its own and no managed-files entry for {rule}"
        if written:
            assert toggle in role_vars, f"{rule}: its managed-files entry is not chosen by {toggle}"
        for t in own:
            # on the block or task, or on each of the block's tasks (a drop-in written when on, removed when off)
            assert toggle in str(t.get("when")) or all(toggle in str(i.get("when")) for i in _tasks_in(t)), rule
            assert all(rule in i["name"] for i in _tasks_in(t)), [i["name"] for i in _tasks_in(t)]


def test_faillock_values_are_documented_inventory_settable_defaults_at_the_profile_values():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    docs = DOCS.read_text()
    # the profile: deny <= 3, fail_interval >= 900, unlock_time >= 900 (or 0, never); root not locked by default
    assert (defaults["medai_hardening_faillock_deny"], defaults["medai_hardening_faillock_fail_interval"],
            defaults["medai_hardening_faillock_unlock_time"]) == (3, 900, 900)
    assert defaults["medai_hardening_faillock_even_deny_root"] is False
    for var in ("medai_hardening_faillock_deny", "medai_hardening_faillock_fail_interval",
                "medai_hardening_faillock_unlock_time", "medai_hardening_faillock_even_deny_root",
                "medai_hardening_sudo_exempt_users"):
        assert f"`{var}`" in docs, var


def test_ubuntu_2204_and_rocky_9_applicability_is_stated_per_rule_not_executed_here():
    """Ubuntu 22.04 and Rocky 9 hosts cannot run here: only the documentation of what applies there is checked."""
    section = DOCS.read_text().split("### Ubuntu 22.04 and Rocky Linux 9", 1)[1].split("\n## ", 1)[0]
    for rule in ISSUE_RULES:
        row = next((line for line in section.splitlines() if line.startswith(f"| `{rule}`")), None)
        assert row is not None and len([c for c in row.split("|") if c.strip()]) >= 3, f"{rule}: {row}"
    assert "none of it has been run here" in section
