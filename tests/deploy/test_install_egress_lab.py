"""The egress ledger in a real `medai install` on a podman lab node (--internal network, no route out): the
bundle's Debian repository carries nftables, the os role installs it, the ledger is on by default, its counts
per node land in the run record, the table is gone afterwards, and `medai verify`'s evidence section reads
them from that record. The failing count itself (a deliberate send to an address the test owns) is the egress
Molecule scenario and tests/deploy/test_egress.py; here the whole install path is what runs.

Network: building the bundle's OS repository runs apt-get update against deb.debian.org (cached .debs reused)."""
from __future__ import annotations

import json

import pytest

from tests.support.lab import LAB_VARS, node_exec
from tests.support.lab_bundles import make_bundle
from tests.support.medai_cli import SITE_KEY, medai, runs, sign

pytestmark = [pytest.mark.lab, pytest.mark.network]


@pytest.fixture(scope="module")
def site(lab_nodes, tmp_path_factory):
    lab = lab_nodes(servers=1)
    tmp = tmp_path_factory.mktemp("egress-lab")
    bundle = make_bundle(tmp / "bundle", full=True)
    sign(bundle, tmp)
    lab_vars = {k: v for k, v in LAB_VARS.items() if k != "medai_egress_ledger"}  # the default: on
    inv = lab.inventory(tmp / "site.yml", cluster_name="lab-egress", bundle_dir=bundle, extra_vars=lab_vars)
    yield lab, inv, tmp / "home"
    lab.destroy()


def test_install_runs_the_ledger_and_records_it(site):
    lab, inv, home = site
    server = lab.servers[0]
    assert node_exec(server, "command -v nft", check=False).returncode != 0  # nothing but the bundle brings it
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), "--tags", "os", "--yes", timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    rec = runs(home)[-1]
    assert rec["command"] == "install" and rec["result"] == "successful"
    assert rec["egress"]["result"] == "clean" and rec["egress"]["packets"] == 0 and rec["egress"]["failures"] == []
    assert list(rec["egress"]["nodes"]) == [server.hostname]
    assert "Egress | nothing left the allowed networks" in out
    # the rules were loaded on the node (their file stays, 0600) and removed after the report
    assert node_exec(server, "stat -c %a /etc/medai/egress.nft").stdout.strip() == "600"
    assert "medai_egress" not in node_exec(server, "nft list tables").stdout
    assert node_exec(server, "dpkg-query -W -f='${Status}' nftables").stdout.strip() == "install ok installed"

    # the evidence report's egress section comes from this record
    from installer.compliance.install_evidence import add_install_evidence

    report = add_install_evidence({"gate": {"blocking": [], "passed": True}}, home / "runs", inv)
    assert report["egress"]["run"] == rec["id"] and report["egress"]["result"] == "clean"
    assert report["gate"]["passed"] is True

    # a rerun: still clean, nothing changed on the host (the ledger's load and removal are not changes)
    r2 = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(inv), "--tags", "os", "--yes", timeout=900)
    assert r2.returncode == 0, (r2.stdout + r2.stderr)[-3000:]
    again = runs(home)[-1]
    assert again["egress"]["result"] == "clean" and again["summary"]["changed"] == 0, json.dumps(again["summary"]["per_host"])


def test_ledger_kept_through_the_platform_then_reported_naming_node_and_destination(site, monkeypatch):
    """With the platform applied after site.yml (medai_egress_report_later, set by install when K3s runs and the
    bundle has releases; set in the inventory here, K3s cannot run) the rules stay loaded after the playbook; the
    later report (playbooks/egress-report.yml) then fails on a deliberate send to an address this test owns in a
    network namespace it creates on the node, naming node, destination and count, and removes the table."""
    import yaml
    from rich.console import Console

    from installer.core.errors import InstallError
    from installer.deploy.egress import report_after_platform
    from installer.deploy.inventory import load_inventory
    from installer.deploy.state import RunRecord

    lab, inv, home = site
    server = lab.servers[0]
    later = inv.parent / "site-later.yml"
    doc = yaml.safe_load(inv.read_text())
    doc["all"]["vars"]["medai_egress_report_later"] = True
    later.write_text(yaml.safe_dump(doc))
    r = medai(home, "install", "--key", str(SITE_KEY["pub"]), "--inventory", str(later), "--tags", "os", "--yes", timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    rec = runs(home)[-1]
    assert rec["egress"]["result"] == "not run"
    assert "medai_egress" in node_exec(server, "nft list tables").stdout  # still counting
    node_exec(server, "ip netns add medai-eg-t && ip link add medai-egt0 type veth peer name medai-egt1 netns medai-eg-t"
                      " && ip addr add 192.0.2.1/30 dev medai-egt0 && ip link set medai-egt0 up"
                      " && ip -n medai-eg-t addr add 192.0.2.2/30 dev medai-egt1 && ip -n medai-eg-t link set medai-egt1 up"
                      " && python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                      " [s.sendto(b'x', ('192.0.2.2', 9)) for _ in range(3)]\"")
    try:
        monkeypatch.setenv("MEDAI_HOME", str(home))
        record = RunRecord(home / "runs" / rec["id"], rec)
        with pytest.raises(InstallError) as e:
            report_after_platform(record, load_inventory(later), Console(file=open("/dev/null", "w")))
    finally:
        node_exec(server, "ip link del medai-egt0; ip netns del medai-eg-t", check=False)
    assert f"egress: {server.hostname} sent packets outside" in str(e.value) and "192.0.2.2: 3 packet(s)" in str(e.value)
    saved = json.loads((home / "runs" / rec["id"] / "run.json").read_text())
    assert saved["result"] == "failed" and saved["egress"]["result"] == "failed"
    assert saved["egress"]["failures"][0]["node"] == server.hostname
    assert saved["egress"]["nodes"][server.hostname][0]["address"] == "192.0.2.2"
    assert "medai_egress" not in node_exec(server, "nft list tables").stdout  # removed even though it failed
