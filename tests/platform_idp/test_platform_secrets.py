"""Generated platform secrets: once, into the sink (Vault), in the shapes the charts require."""
from __future__ import annotations

import bcrypt
import yaml

from installer.deploy.platform_secrets import REGISTRY_USER, ensure_harbor_secrets, ensure_postgres_passwords, harbor_secret_layout
from tests.platform_idp.harbor_contract import DictSink
from tests.platform_idp.render import REPO


def test_postgres_passwords_are_generated_once():
    sink = DictSink()
    assert ensure_postgres_passwords("c1", ["keycloak", "harbor"], sink) == ["medai/c1/postgres/keycloak", "medai/c1/postgres/harbor"]
    first = dict(sink.data)
    assert len(first["medai/c1/postgres/keycloak"]["password"]) == 32
    assert ensure_postgres_passwords("c1", ["keycloak", "harbor"], sink) == [] and sink.data == first


def test_harbor_secrets_have_the_shapes_harbor_needs_and_cover_the_roles_secret_names():
    sink = DictSink()
    written = ensure_harbor_secrets("c1", sink)
    assert len(written) == 7 and ensure_harbor_secrets("c1", sink) == []
    d = sink.data
    assert len(d["medai/c1/harbor/secret-key"]["secretKey"]) == 16
    creds = d["medai/c1/harbor/registry-credentials"]
    user, _, hashed = creds["REGISTRY_HTPASSWD"].partition(":")
    assert user == REGISTRY_USER and bcrypt.checkpw(creds["REGISTRY_PASSWD"].encode(), hashed.encode())
    assert d["medai/c1/harbor/core-token"]["tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    names = yaml.safe_load((REPO / "roles/harbor/defaults/main.yml").read_text())["medai_harbor_secret_names"]
    layout = harbor_secret_layout("c1", names)
    # every Secret the chart is pointed at is filled from Vault, except TLS/CA (site PKI) and the Trivy pull robot
    assert set(names.values()) - set(layout) == {names["tls"], names["ca"], names["trivy_db_pull"]}
    assert set(layout.values()) == set(written)
