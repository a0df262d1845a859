"""The certificate reader and its classification, on files openssl made (no cluster, no node)."""
from __future__ import annotations

import base64
import datetime as dt
import shutil

import pytest
import yaml

from installer.certs.collect import listing, nearest_per_group
from installer.certs.local import kubeconfig_certs, pgp_key
from installer.certs.model import CRIT, OK, WARN, Thresholds, thresholds
from installer.certs.nodes import fetched_certs
from installer.core.errors import InventoryError
from installer.deploy.inventory import load_inventory
from tests.certs.certmaker import openssl_cert
from tests.support.gpg_keys import operator_key

TLS = "var/lib/rancher/k3s/server/tls"
D = dt.timedelta


@pytest.fixture
def fetched(tmp_path):
    """What playbooks/certs.yml leaves on the control host for two hosts: srv1 with five files, srv2 with none."""
    root = tmp_path / "certs"
    openssl_cert(root / "srv1" / TLS / "serving-kube-apiserver.crt", "kube-apiserver", sans=("kubernetes.default",))
    openssl_cert(root / "srv1" / TLS / "client-admin.crt", "system:admin", end=D(days=20))
    openssl_cert(root / "srv1" / TLS / "client-kubelet.crt", "kubelet", start=D(days=-400), end=D(days=-3))
    openssl_cert(root / "srv1" / TLS / "etcd" / "peer-server-client.crt", "etcd-peer", start=D(days=2))
    (root / "srv1" / TLS / "client-controller.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n")
    return root


def test_each_file_is_one_line_naming_host_and_file_and_its_level(fetched):
    now = dt.datetime.now(dt.UTC)
    certs = fetched_certs(fetched, ["srv1", "srv2"], ["srv2: UNREACHABLE! ssh: connect to host 10.0.0.12 port 22"])
    rows = listing(certs, now, Thresholds())
    text = "\n".join(f"{lv} {t}" for lv, t in rows)
    by_file = {c.name.rsplit("/", 1)[-1]: c.classify(now, Thresholds()) for c in certs}
    assert by_file["client-kubelet.crt"][0] == CRIT and "expired" in by_file["client-kubelet.crt"][1]
    assert by_file["peer-server-client.crt"][0] == CRIT and "not yet valid" in by_file["peer-server-client.crt"][1]
    assert by_file["client-controller.crt"][0] == CRIT and "not a readable PEM certificate" in by_file["client-controller.crt"][1]
    assert by_file["client-admin.crt"][0] == WARN
    assert by_file["serving-kube-apiserver.crt"][0] == OK
    for f in ("client-kubelet.crt", "peer-server-client.crt", "client-controller.crt"):
        line = next(t for t in text.splitlines() if f in t)
        assert line.startswith("crit") and f"srv1 /{TLS}/" in line
    assert "crit k3s          srv2 /var/lib/rancher/k3s/server/tls: UNREACHABLE! ssh: connect" in text
    assert [lv for lv, _ in rows] == sorted((lv for lv, _ in rows), key=[CRIT, WARN, OK].index)
    assert "[kubernetes.default]" in text and "issuer kube-apiserver" in text
    assert nearest_per_group(certs, now, Thresholds())["k3s"][0] == CRIT


def test_thresholds_come_from_the_inventory(tmp_path, fetched):
    doc = {"all": {"vars": {"medai_cluster_name": "c1",
                            "medai_keycloak_hostname": "keycloak.example.internal", "medai_metallb_pool": "10.0.0.200-10.0.0.210",
                            "medai_cert_warn_days": 10, "medai_cert_crit_days": 2},
                   "children": {"servers": {"hosts": {"srv1": {"ansible_host": "10.0.0.11"}}}}}}
    inv = tmp_path / "site.yml"
    inv.write_text(yaml.safe_dump(doc))
    th = thresholds(load_inventory(inv))
    assert th == Thresholds(10, 2)
    admin = next(c for c in fetched_certs(fetched, ["srv1"], []) if c.name.endswith("client-admin.crt"))
    assert admin.classify(dt.datetime.now(dt.UTC), th)[0] == OK  # 20 days left: ok under a 10-day warning
    doc["all"]["vars"]["medai_cert_crit_days"] = 12
    inv.write_text(yaml.safe_dump(doc))
    with pytest.raises(InventoryError, match="medai_cert_crit_days: more than medai_cert_warn_days"):
        thresholds(load_inventory(inv))
    doc["all"]["vars"]["medai_cert_warn_days"] = "soon"
    inv.write_text(yaml.safe_dump(doc))
    with pytest.raises(InventoryError, match="all.vars.medai_cert_warn_days: 'soon' is not a number of days"):
        thresholds(load_inventory(inv))


def test_kubeconfig_client_certificate(tmp_path):
    pem = openssl_cert(tmp_path / "admin.crt", "system:admin", end=D(days=5)).read_bytes()
    kc = tmp_path / "kubeconfig-c1"
    kc.write_text(yaml.safe_dump({"users": [{"name": "default", "user": {
        "client-certificate-data": base64.b64encode(pem).decode(), "client-key-data": "eA=="}}]}))
    (c,) = kubeconfig_certs(kc)
    assert (c.group, c.subject, c.where) == ("kubeconfig", "system:admin", str(kc))
    assert c.classify(dt.datetime.now(dt.UTC), Thresholds())[0] == CRIT
    assert kubeconfig_certs(tmp_path / "absent") == []


def test_an_operator_key_whose_encryption_subkey_expires_soon_is_crit(tmp_path):
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed")
    key = operator_key(tmp_path / "gnupg", "dana", tmp_path / "dana.asc", expires="2y", encryption_expires="3d")
    c = pgp_key(key, "dana")
    level, fact = c.classify(dt.datetime.now(dt.UTC), Thresholds())
    assert (c.group, c.subject, level) == ("operators", "dana <dana@hospital.test>", CRIT) and "2 days" in fact
    bad = tmp_path / "bad.asc"
    bad.write_text("hello")
    assert pgp_key(bad, "eve").error == "not an OpenPGP public key"


def test_a_serial_is_printed_as_vault_prints_it_whole_bytes_even_with_a_leading_zero_nibble():
    from installer.certs.model import serial_text

    assert serial_text(0x0B) == "0b"
    assert serial_text(0x79D6_0B) == "79:d6:0b"
    assert serial_text(0x0123_4567) == "01:23:45:67"  # 7 hex digits: the first byte keeps its zero
