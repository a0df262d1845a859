"""Waivers: scope, expiry (expired waivers are not honoured), and one-line errors for bad files."""
from __future__ import annotations

import datetime as dt

import pytest

from installer.compliance.waivers import load_waivers
from installer.core.errors import ComplianceError

TODAY = dt.date(2026, 11, 22)
RULE = "xccdf_org.ssgproject.content_rule_sudoers_no_root_target"


def write(tmp_path, text):
    p = tmp_path / "waivers.yml"
    p.write_text(text)
    return p


def test_scope_hosts_groups_and_all(tmp_path):
    w = load_waivers(write(tmp_path, """
waivers:
  - rule: sudoers_no_root_target
    scope: {hosts: [srv1]}
    justification: break-glass sudo for the on-call engineer, ticket SEC-1
    expires: 2027-01-31
  - rule: xccdf_org.ssgproject.content_rule_sudo_add_requiretty
    scope: {groups: [agents]}
    justification: Ansible become needs sudo without a tty
    expires: 2027-01-31
  - rule: k3s_1.2.29_secrets_encryption
    scope: all
    justification: encryption enabled after the first migration window
    expires: 2026-12-01
"""), today=TODAY)
    assert w.lookup(RULE, "srv1", ["servers"]).honoured
    assert w.lookup(RULE, "srv2", ["servers"]).waiver is None  # other host: not covered
    req = "xccdf_org.ssgproject.content_rule_sudo_add_requiretty"
    assert w.lookup(req, "gpu1", ["agents", "gpu"]).honoured
    assert w.lookup(req, "srv1", ["servers"]).waiver is None
    assert w.lookup("k3s_1.2.29_secrets_encryption", "anything", []).honoured
    assert "waived until 2027-01-31" in w.lookup(RULE, "srv1", []).note


def test_expired_waiver_is_not_honoured_and_says_so(tmp_path):
    p = write(tmp_path, f"""
waivers:
  - rule: {RULE}
    scope: all
    justification: accepted risk for the pilot phase only
    expires: 2026-11-21
""")
    d = load_waivers(p, today=TODAY).lookup(RULE, "srv1", [])
    assert d.waiver is not None and not d.honoured
    assert "EXPIRED on 2026-11-21 and is not honoured" in d.note
    # the expiry day itself is still covered
    assert load_waivers(p, today=dt.date(2026, 11, 21)).lookup(RULE, "srv1", []).honoured


def test_a_live_waiver_wins_over_an_expired_one(tmp_path):
    w = load_waivers(write(tmp_path, f"""
waivers:
  - {{rule: {RULE}, scope: all, justification: old pilot acceptance, expires: 2025-01-01}}
  - {{rule: {RULE}, scope: {{groups: [servers]}}, justification: renewed by the ISO board, expires: 2027-06-30}}
"""), today=TODAY)
    assert w.lookup(RULE, "srv1", ["servers"]).honoured
    assert not w.lookup(RULE, "gpu1", ["agents"]).honoured


@pytest.mark.parametrize(
    "body, message",
    [
        ("waivers:\n  - {rule: x_rule, scope: all, justification: long enough text}\n", r"waivers\[0\]\.expires: Field required"),
        (
            "waivers:\n  - {rule: x_rule, scope: all, justification: long enough text, expires: soon}\n",
            r"waivers\[0\]\.expires: Input should be a valid date",
        ),
        ("waivers:\n  - {rule: x_rule, scope: everyone, justification: long enough text, expires: 2027-01-01}\n", r"waivers\[0\]\.scope"),
        ("waivers:\n  - {rule: x_rule, scope: all, justification: short, expires: 2027-01-01}\n", r"waivers\[0\]\.justification"),
        ("waivers: [\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_bad_waivers_file_is_one_line_error_naming_the_field(tmp_path, body, message):
    with pytest.raises(ComplianceError, match=message) as e:
        load_waivers(write(tmp_path, body), today=TODAY)
    assert str(e.value).startswith(str(tmp_path / "waivers.yml")) and "\n" not in str(e.value)


def test_missing_waivers_file(tmp_path):
    with pytest.raises(ComplianceError, match="waivers file not found"):
        load_waivers(tmp_path / "nope.yml")
