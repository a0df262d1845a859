"""ARF parsing against real oscap output (run inside a lab-image container) and real SCAP content."""
from __future__ import annotations

from collections import Counter

import pytest

from installer.compliance.arf import datastream_info, parse_arf
from installer.core.errors import ComplianceError
from tests.compliance.conftest import DEBIAN_DS, DEBIAN_PROFILE, UBUNTU_DS, UBUNTU_PROFILE, oscap_listing

pytestmark = pytest.mark.lab


def test_debian_arf_matches_oscaps_own_listing(debian_scan):
    arf = parse_arf(debian_scan.arf)
    listing = oscap_listing(debian_scan.stdout)
    assert {r.id: r.result for r in arf.rules} == listing
    counts = arf.counts()
    assert counts == {**dict.fromkeys(counts, 0), **Counter(listing.values())}
    assert debian_scan.rc == 2 and counts["fail"] > 0  # a minbase node fails some rules: oscap exits 2
    assert arf.profile_id == DEBIAN_PROFILE and arf.profile_title == "ANSSI-BP-028 (intermediary)"
    assert arf.benchmark_id == "xccdf_org.ssgproject.content_benchmark_DEBIAN-12" and arf.content_version == "0.1.76"
    assert arf.start_time and arf.end_time and arf.target


def test_failed_rules_carry_title_severity_and_fix_with_profile_values(debian_scan):
    arf = parse_arf(debian_scan.arf)
    failed = {r.short_id: r for r in arf.failed()}
    assert "directory_permissions_etc_sudoersd" in failed
    d = failed["directory_permissions_etc_sudoersd"]
    assert d.title == "Verify Permissions On /etc/sudoers.d Directory" and d.severity == "medium"
    assert "chmod" in d.fix and d.fix_system == "urn:xccdf:fix:script:sh"
    minlen = failed["accounts_password_pam_minlen"]
    # the fix script's <sub idref="var_password_pam_minlen"/> is replaced by the profile's value (15)
    assert "var_password_pam_minlen='15'" in minlen.fix
    assert all(r.severity in ("high", "medium", "low", "unknown") for r in arf.rules)


def test_ubuntu_cis_arf_parses_profile_and_content_version(ubuntu_scan):
    arf = parse_arf(ubuntu_scan.arf)
    assert arf.profile_id == UBUNTU_PROFILE and arf.profile_title.startswith("CIS Ubuntu 22.04 Level 1 Server")
    assert arf.benchmark_id == "xccdf_org.ssgproject.content_benchmark_UBUNTU_22-04"
    assert arf.counts() == {**dict.fromkeys(arf.counts(), 0), **Counter(oscap_listing(ubuntu_scan.stdout).values())}
    assert len(arf.rules) > 100 and all(r.title for r in arf.rules)


def test_default_profiles_exist_in_the_content():
    assert DEBIAN_PROFILE in datastream_info(DEBIAN_DS).profiles
    ubuntu = datastream_info(UBUNTU_DS)
    assert UBUNTU_PROFILE in ubuntu.profiles and ubuntu.content_version


def test_not_an_arf_is_a_one_line_error(tmp_path):
    with pytest.raises(ComplianceError, match="expected one XCCDF TestResult, found 0"):
        parse_arf(UBUNTU_DS)
    bad = tmp_path / "arf.xml"
    bad.write_text("<arf><unclosed>")
    with pytest.raises(ComplianceError, match=r"arf.xml: not well-formed XML") as e:
        parse_arf(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ComplianceError, match="results file not found"):
        parse_arf(tmp_path / "missing.xml")
