"""The evidence report's certificate section: what the newest `medai certs` of the inventory read, with days left
counted again at the report's time (the section of evidence.html rendered from the real template)."""
from __future__ import annotations

import datetime as dt
import json
import re

import jinja2

from installer.certs.model import Cert, Thresholds, from_pem
from installer.compliance.report import add_certificates
from installer.core.resources import package_file
from tests.certs.certmaker import openssl_cert

D = dt.timedelta


def _record(runs, name, inventory, summary, result="ok"):
    (runs / name).mkdir(parents=True)
    (runs / name / "run.json").write_text(json.dumps({
        "id": name, "command": "certs", "result": result, "finished": "2026-12-01T10:00:00+00:00",
        "inventory": {"path": str(inventory.resolve())}, "summary": summary}))


def test_every_certificate_with_days_left_goes_into_the_report(tmp_path):
    inv = tmp_path / "site.yml"
    inv.write_text("{}")
    now = dt.datetime.now(dt.UTC)
    th = Thresholds(20, 5)
    certs = [from_pem(openssl_cert(tmp_path / "a.crt", "kube-apiserver", end=D(days=300)).read_bytes(), "k3s",
                      "/var/lib/rancher/k3s/server/tls/serving-kube-apiserver.crt", "srv1"),
             from_pem(openssl_cert(tmp_path / "b.crt", "keycloak.site", end=D(days=10)).read_bytes(), "vault",
                      "keycloak.site", "vault pki_int/"),
             Cert("k3s", "/var/lib/rancher/k3s/server/tls/client-controller.crt", "srv1",
                  error="not a readable PEM certificate (no PEM data)")]
    runs = tmp_path / "runs"
    _record(runs, "20261201T100000Z-certs-aaaaaa", inv, {"certificates": [c.as_dict(now, th) for c in certs],
                                                         "warnDays": 20, "critDays": 5})
    _record(runs, "20261201T100001Z-certs-bbbbbb", tmp_path / "other.yml", {"certificates": []})
    report = add_certificates({}, runs, inv)
    sec = report["certificates"]
    assert sec["run"] == "20261201T100000Z-certs-aaaaaa" and (sec["warnDays"], sec["critDays"]) == (20, 5)
    rows = [(i["where"], i["name"].rsplit("/", 1)[-1], i["level"]) for i in sec["items"]]
    assert rows == [("srv1", "client-controller.crt", "crit"), ("vault pki_int/", "keycloak.site", "warn"),
                    ("srv1", "serving-kube-apiserver.crt", "ok")]
    assert 9 < sec["items"][1]["daysLeft"] < 10.1

    source = package_file("compliance", "templates", "evidence.html.j2").read_text()
    part = re.search(r'{% if r.certificates is defined %}<section id="certificates">.*?</section>\s*{% endif %}',
                     source, re.S).group(0)
    html = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(part).render(r=report)
    assert "warn under 20 days, crit under 5" in html and "client-controller.crt" in html
    assert "not a readable PEM certificate" in html and '<td class="fail">crit</td>' in html
    assert "Not read: run" in jinja2.Environment().from_string(part).render(r=add_certificates({}, tmp_path / "none", inv))
